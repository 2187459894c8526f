//! The read path: point lookups and iterators. Reads take the current
//! [`SuperVersion`] with one atomic load and never wait for writers,
//! flushes or compactions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DbInner, SeekCharges, SuperVersion};
use crate::error::Result;
use crate::iterator::DbIterator;
use crate::iterator::InternalIterator;
use crate::iterator::level::LevelIterator;
use crate::iterator::merge::MergeIterator;
use crate::key::{self, ValueKind};
use crate::snapshot::Snapshot;

/// Options for [`Db::iter`](crate::Db::iter).
#[derive(Debug, Default, Clone)]
pub struct ReadOptions<'a> {
    /// Only keys >= this.
    pub lower_bound: Option<Vec<u8>>,
    /// Only keys < this.
    pub upper_bound: Option<Vec<u8>>,
    /// Read at this snapshot instead of now.
    pub snapshot: Option<&'a Snapshot>,
}

/// The outcome of looking in one source.
enum Lookup {
    /// Decided: the value, or deleted.
    Done(Option<Vec<u8>>),
    /// Not in this source; look deeper.
    Continue,
}

/// Decides a key given the newest point entry in a source and the newest
/// covering tombstone in that source. Sources are visited newest first, so
/// anything deeper is older than both.
fn decide(point: Option<(u64, ValueKind, Vec<u8>)>, tombstone_sequence_number: u64) -> Lookup {
    match point {
        Some((sequence_number, kind, value)) => {
            if tombstone_sequence_number > sequence_number || kind == ValueKind::Deletion {
                Lookup::Done(None)
            } else {
                Lookup::Done(Some(value))
            }
        }
        None if tombstone_sequence_number > 0 => Lookup::Done(None),
        None => Lookup::Continue,
    }
}

impl DbInner {
    pub(super) fn get(&self, user_key: &[u8], snapshot: Option<u64>) -> Result<Option<Vec<u8>>> {
        // A guard, not a clone: a point read is short, and the guard spares
        // the reference-count traffic on the shared super version.
        let sv = self.super_version.load();
        let snapshot =
            snapshot.unwrap_or_else(|| self.visible_sequence_number.load(Ordering::Acquire));

        // Skipping an empty memtable (the usual state right after a flush)
        // saves a tombstone-lock and a skiplist search; see
        // `MemTable::has_no_writes` for why no visible write is missed.
        for mem in std::iter::once(&sv.mem)
            .chain(sv.imm.iter())
            .filter(|mem| !mem.has_no_writes())
        {
            let tombstone = mem.max_covering_tombstone(user_key, snapshot);
            let point = mem
                .get(user_key, snapshot)?
                .map(|f| (f.sequence_number, f.kind, f.value));
            if let Lookup::Done(result) = decide(point, tombstone) {
                return Ok(result);
            }
        }

        let version = &sv.version;
        let level0 = version.files(0).iter().filter(|f| f.may_contain(user_key));
        let deeper =
            (1..version.num_levels()).filter_map(|level| version.file_for_key(level, user_key));
        for file in level0.chain(deeper) {
            let table = self.tables.get(file)?;
            let tombstone =
                key::max_covering_sequence_number(table.range_tombstones(), user_key, snapshot);
            let point = match table.get(user_key, snapshot)? {
                Some((internal_key, value)) => {
                    let parsed = key::parse_internal_key(&internal_key)?;
                    Some((parsed.sequence_number, parsed.kind, value))
                }
                None => None,
            };
            if let Lookup::Done(result) = decide(point, tombstone) {
                return Ok(result);
            }
        }
        Ok(None)
    }

    pub(super) fn iter(self: &Arc<Self>, options: ReadOptions<'_>) -> Result<DbIterator> {
        let sv: Arc<SuperVersion> = self.super_version.load_full();
        let snapshot = match options.snapshot {
            Some(s) => s.sequence_number(),
            None => self.visible_sequence_number.load(Ordering::Acquire),
        };
        let lower = options.lower_bound.as_deref();
        let upper = options.upper_bound.as_deref();
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::with_capacity(
            1 + sv.imm.len() + sv.version.files(0).len() + sv.version.num_levels(),
        );
        let mut tombstones = Vec::new();
        // An empty memtable (the usual state right after a flush) has
        // nothing to merge; skipping it saves a skiplist search per seek.
        for mem in std::iter::once(&sv.mem)
            .chain(sv.imm.iter())
            .filter(|mem| !mem.is_empty())
        {
            children.push(Box::new(mem.iter()));
            tombstones.extend(mem.range_tombstones());
        }
        // Files entirely outside the bounds cannot contribute a key.
        let in_bounds = |f: &crate::version::FileMetadata| {
            !(upper.is_some_and(|u| f.smallest_user_key() >= u)
                || lower.is_some_and(|l| f.largest_user_key() < l))
        };
        let level0_files: Vec<_> = sv
            .version
            .files(0)
            .iter()
            .filter(|f| in_bounds(f))
            .cloned()
            .collect();
        for file in &level0_files {
            let table = self.tables.get(file)?;
            tombstones.extend(table.range_tombstones().iter().cloned());
            children.push(Box::new(table.iter()));
        }
        let mut deeper_levels = 0;
        for level in 1..sv.version.num_levels() {
            let files: Vec<_> = sv
                .version
                .files(level)
                .iter()
                .filter(|f| in_bounds(f))
                .cloned()
                .collect();
            if files.is_empty() {
                continue;
            }
            for file in files.iter().filter(|f| f.num_range_tombstones > 0) {
                let table = self.tables.get(file)?;
                tombstones.extend(table.range_tombstones().iter().cloned());
            }
            children.push(Box::new(LevelIterator::new(
                Arc::clone(&self.tables),
                files,
            )));
            deeper_levels += 1;
        }
        let seek_charges = SeekCharges::new(level0_files, deeper_levels, self);
        Ok(DbIterator::new(
            MergeIterator::new(children),
            snapshot,
            tombstones,
            options.lower_bound,
            options.upper_bound,
            sv,
            seek_charges,
        ))
    }
}
