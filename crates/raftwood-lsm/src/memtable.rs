//! The memtable: recent writes in a concurrent skiplist, ordered by internal
//! key, plus the range tombstones written since it was created.
//!
//! A memtable is mutable while it is the Db's active memtable; once frozen it
//! is only read (and flushed to a level-0 table). Readers never take a lock
//! on the point entries: the skiplist is lock-free.

mod mem_key;

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use crossbeam_skiplist::SkipMap;
use parking_lot::RwLock;

pub use mem_key::MemKey;

use crate::error::{Error, Result};
use crate::iterator::InternalIterator;
use crate::key::{self, MAX_SEQUENCE_NUMBER, RangeTombstone, ValueKind};

/// Bytes a skiplist node costs beyond its key and value (pointers, tower,
/// refcount). An estimate; it only decides when to freeze.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A point entry found by [`MemTable::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Sequence number of the entry.
    pub sequence_number: u64,
    /// Value or tombstone.
    pub kind: ValueKind,
    /// The value (empty for tombstones).
    pub value: Vec<u8>,
}

/// A memtable.
#[derive(Debug)]
pub struct MemTable {
    /// The WAL that holds this memtable's writes (0 when the WAL is off).
    wal_number: u64,
    /// Values are `Arc`s so that an iterator can hold its current value
    /// without copying it.
    entries: SkipMap<MemKey, Arc<[u8]>>,
    range_tombstones: RwLock<Vec<RangeTombstone>>,
    approximate_size_bytes: AtomicUsize,
    /// Largest sequence number inserted. Invariant: monotonically increasing.
    largest_sequence_number: AtomicU64,
    /// Largest applied-index marker among the batches inserted (0 if none).
    applied_index: AtomicU64,
}

impl MemTable {
    /// An empty memtable whose writes are logged in WAL `wal_number`.
    pub fn new(wal_number: u64) -> Self {
        MemTable {
            wal_number,
            entries: SkipMap::new(),
            range_tombstones: RwLock::new(Vec::new()),
            approximate_size_bytes: AtomicUsize::new(0),
            largest_sequence_number: AtomicU64::new(0),
            applied_index: AtomicU64::new(0),
        }
    }

    /// The WAL number that logs this memtable.
    pub fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Inserts a point entry. Sequence numbers are unique, so keys never collide.
    pub fn insert(&self, user_key: &[u8], sequence_number: u64, kind: ValueKind, value: &[u8]) {
        self.approximate_size_bytes.fetch_add(
            user_key.len() + key::TRAILER_LEN + value.len() + ENTRY_OVERHEAD_BYTES,
            AtomicOrdering::Relaxed,
        );
        let internal = MemKey::new(user_key, key::pack_trailer(sequence_number, kind));
        self.entries.insert(internal, Arc::from(value));
        self.largest_sequence_number
            .fetch_max(sequence_number, AtomicOrdering::Release);
    }

    /// Records a range tombstone.
    pub fn insert_range_tombstone(&self, start: &[u8], end: &[u8], sequence_number: u64) {
        self.approximate_size_bytes.fetch_add(
            start.len() + end.len() + ENTRY_OVERHEAD_BYTES,
            AtomicOrdering::Relaxed,
        );
        self.range_tombstones.write().push(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            sequence_number,
        });
        self.largest_sequence_number
            .fetch_max(sequence_number, AtomicOrdering::Release);
    }

    /// Raises the applied-index marker.
    pub fn note_applied_index(&self, index: u64) {
        self.applied_index.fetch_max(index, AtomicOrdering::AcqRel);
    }

    /// The largest applied-index marker written into this memtable.
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(AtomicOrdering::Acquire)
    }

    /// The newest point entry for `user_key` with sequence number <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot_sequence_number: u64) -> Result<Option<Found>> {
        let target = MemKey::new(
            user_key,
            key::pack_trailer(
                snapshot_sequence_number.min(MAX_SEQUENCE_NUMBER),
                ValueKind::FOR_SEEK,
            ),
        );
        let Some(entry) = self.entries.lower_bound(Bound::Included(&target)) else {
            return Ok(None);
        };
        let found = entry.key();
        if !found.has_user_key(user_key) {
            return Ok(None);
        }
        let trailer = found.trailer();
        let kind = ValueKind::from_u8((trailer & 0xff) as u8).ok_or_else(|| {
            Error::corruption("memtable", format!("unknown kind byte {}", trailer & 0xff))
        })?;
        Ok(Some(Found {
            sequence_number: trailer >> 8,
            kind,
            value: entry.value().to_vec(),
        }))
    }

    /// Largest sequence number of a tombstone covering `user_key` that is
    /// visible at `snapshot` (0 if none).
    pub fn max_covering_tombstone(&self, user_key: &[u8], snapshot_sequence_number: u64) -> u64 {
        key::max_covering_sequence_number(
            &self.range_tombstones.read(),
            user_key,
            snapshot_sequence_number,
        )
    }

    /// A copy of the range tombstones.
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_tombstones.read().clone()
    }

    /// Estimated memory used, in bytes.
    pub fn approximate_size_bytes(&self) -> usize {
        self.approximate_size_bytes.load(AtomicOrdering::Relaxed)
    }

    /// Largest sequence number inserted so far.
    pub fn largest_sequence_number(&self) -> u64 {
        self.largest_sequence_number.load(AtomicOrdering::Acquire)
    }

    /// True if nothing was inserted, judged by one atomic load (no lock).
    ///
    /// Every insert adds to `approximate_size_bytes` before it touches the
    /// skiplist or the tombstones, and a write becomes visible only after its
    /// inserts (its sequence number is published with Release and read with
    /// Acquire); so a reader that loads the visible sequence number first
    /// and then finds this true has missed no write it can see.
    pub fn has_no_writes(&self) -> bool {
        self.approximate_size_bytes.load(AtomicOrdering::Relaxed) == 0
    }

    /// True if nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.range_tombstones.read().is_empty()
    }

    /// Number of point entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Visits every point entry in order (used by flush), passing the
    /// encoded internal key.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        let mut encoded = Vec::new();
        for entry in self.entries.iter() {
            entry.key().encode_into(&mut encoded);
            visit(&encoded, entry.value())?;
        }
        Ok(())
    }

    /// A cursor over the point entries.
    pub fn iter(self: &Arc<Self>) -> MemTableIterator {
        MemTableIterator {
            table: Arc::clone(self),
            current: None,
            encoded_key: Vec::new(),
        }
    }
}

/// A cursor over a memtable.
///
/// It holds a copy of the current key and a reference to the current value
/// so that it owns no borrow of the skiplist (whose entries borrow the map);
/// each step is therefore one O(log n) skiplist search from the current key.
/// Short keys are copied without allocating (see [`MemKey`]).
#[derive(Debug)]
pub struct MemTableIterator {
    table: Arc<MemTable>,
    current: Option<(MemKey, Arc<[u8]>)>,
    /// The current key encoded as an internal key (what `key()` returns);
    /// reused across steps.
    encoded_key: Vec<u8>,
}

impl MemTableIterator {
    fn set(&mut self, entry: Option<crossbeam_skiplist::map::Entry<'_, MemKey, Arc<[u8]>>>) {
        self.current = entry.map(|e| (e.key().clone(), Arc::clone(e.value())));
        match &self.current {
            Some((key, _)) => key.encode_into(&mut self.encoded_key),
            None => self.encoded_key.clear(),
        }
    }
}

impl InternalIterator for MemTableIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let table = Arc::clone(&self.table);
        self.set(table.entries.front());
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let table = Arc::clone(&self.table);
        self.set(table.entries.back());
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let table = Arc::clone(&self.table);
        let target = MemKey::from_encoded(target);
        self.set(table.entries.lower_bound(Bound::Included(&target)));
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let table = Arc::clone(&self.table);
        let target = MemKey::from_encoded(target);
        self.set(table.entries.upper_bound(Bound::Included(&target)));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let table = Arc::clone(&self.table);
        if let Some((current, _)) = self.current.take() {
            self.set(table.entries.lower_bound(Bound::Excluded(&current)));
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let table = Arc::clone(&self.table);
        if let Some((current, _)) = self.current.take() {
            self.set(table.entries.upper_bound(Bound::Excluded(&current)));
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        &self.encoded_key
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map(|(_, v)| &v[..]).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_newest_visible_version() {
        let m = MemTable::new(1);
        m.insert(b"k", 1, ValueKind::Value, b"v1");
        m.insert(b"k", 3, ValueKind::Value, b"v3");
        m.insert(b"k", 5, ValueKind::Deletion, b"");
        m.insert(b"l", 2, ValueKind::Value, b"l2");
        assert_eq!(m.get(b"k", 0).unwrap(), None);
        assert_eq!(m.get(b"k", 2).unwrap().unwrap().value, b"v1");
        assert_eq!(m.get(b"k", 4).unwrap().unwrap().value, b"v3");
        assert_eq!(m.get(b"k", 9).unwrap().unwrap().kind, ValueKind::Deletion);
        assert_eq!(m.get(b"j", 9).unwrap(), None);
        assert_eq!(m.largest_sequence_number(), 5);
    }

    #[test]
    fn iterator_walks_both_ways() {
        let m = Arc::new(MemTable::new(1));
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            m.insert(*k, i as u64 + 1, ValueKind::Value, *k);
        }
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut forward = Vec::new();
        while it.valid() {
            forward.push(key::user_key(it.key()).to_vec());
            it.next().unwrap();
        }
        assert_eq!(forward, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        it.seek_to_last().unwrap();
        assert_eq!(key::user_key(it.key()), b"c");
        it.prev().unwrap();
        assert_eq!(key::user_key(it.key()), b"b");
        it.seek_for_prev(&key::seek_key(b"bb", 100)).unwrap();
        assert_eq!(key::user_key(it.key()), b"b");
    }

    #[test]
    fn tombstones_respect_snapshots() {
        let m = MemTable::new(1);
        m.insert_range_tombstone(b"a", b"m", 10);
        assert_eq!(m.max_covering_tombstone(b"c", 9), 0);
        assert_eq!(m.max_covering_tombstone(b"c", 10), 10);
        assert_eq!(m.max_covering_tombstone(b"m", 10), 0);
    }
}
