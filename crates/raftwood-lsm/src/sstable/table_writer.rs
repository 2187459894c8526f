//! [`TableWriter`]: writes a sorted stream of entries into one or more
//! tables, cutting files at a target size on user-key boundaries and giving
//! each file the part of the range tombstones that falls in its key range.
//! Used by flush (one file) and compaction (many).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;
use crate::filename;
use crate::fs::FileSystem;
use crate::key::{self, RangeTombstone};
use crate::options::TableOptions;
use crate::sstable::{TableBuilder, TableSummary};
use crate::version::FileMetadata;

struct OpenTable {
    number: u64,
    builder: TableBuilder,
    /// The file covers user keys from here (inclusive); `None` is -infinity.
    lower_bound: Option<Vec<u8>>,
}

/// Writes tables into `dir`.
pub struct TableWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    options: TableOptions,
    target_file_size_bytes: u64,
    tombstones: Vec<RangeTombstone>,
    current: Option<OpenTable>,
    last_user_key: Vec<u8>,
    finished: Vec<FileMetadata>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("dir", &self.dir)
            .field("finished", &self.finished.len())
            .finish()
    }
}

fn clip(
    tombstone: &RangeTombstone,
    lower: Option<&[u8]>,
    upper: Option<&[u8]>,
) -> Option<RangeTombstone> {
    let start = match lower {
        Some(lower) if lower > tombstone.start.as_slice() => lower,
        _ => tombstone.start.as_slice(),
    };
    let end = match upper {
        Some(upper) if upper < tombstone.end.as_slice() => upper,
        _ => tombstone.end.as_slice(),
    };
    (start < end).then(|| RangeTombstone {
        start: start.to_vec(),
        end: end.to_vec(),
        sequence_number: tombstone.sequence_number,
    })
}

fn metadata(number: u64, summary: TableSummary) -> FileMetadata {
    FileMetadata {
        number,
        size_bytes: summary.file_size_bytes,
        smallest_key: summary.smallest_key,
        largest_key: summary.largest_key,
        smallest_sequence_number: summary.smallest_sequence_number,
        largest_sequence_number: summary.largest_sequence_number,
        num_entries: summary.num_entries,
        num_range_tombstones: summary.num_range_tombstones,
        reader: Default::default(),
        read_cost: Default::default(),
    }
}

impl TableWriter {
    /// A writer whose files hold (clipped) `tombstones` besides the entries.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        options: TableOptions,
        target_file_size_bytes: u64,
        mut tombstones: Vec<RangeTombstone>,
    ) -> Self {
        tombstones.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.sequence_number.cmp(&a.sequence_number))
        });
        TableWriter {
            fs,
            dir,
            options,
            target_file_size_bytes,
            tombstones,
            current: None,
            last_user_key: Vec::new(),
            finished: Vec::new(),
        }
    }

    fn open(
        &mut self,
        lower_bound: Option<Vec<u8>>,
        new_file_number: &mut dyn FnMut() -> u64,
    ) -> Result<()> {
        let number = new_file_number();
        let file = self
            .fs
            .create_file(&filename::table_path(&self.dir, number))?;
        self.current = Some(OpenTable {
            number,
            builder: TableBuilder::new(file, &self.options),
            lower_bound,
        });
        Ok(())
    }

    fn close(&mut self, upper_bound: Option<&[u8]>) -> Result<()> {
        let Some(mut table) = self.current.take() else {
            return Ok(());
        };
        for tombstone in &self.tombstones {
            if let Some(clipped) = clip(tombstone, table.lower_bound.as_deref(), upper_bound) {
                table.builder.add_range_tombstone(&clipped);
            }
        }
        let summary = table.builder.finish()?;
        let file = metadata(table.number, summary);
        // The file stays within the bounds it was cut at, so files of a
        // sorted level never share a user key (see `tombstone_reaches`).
        debug_assert!(
            table
                .lower_bound
                .as_deref()
                .is_none_or(|lower| file.smallest_user_key() >= lower)
        );
        debug_assert!(upper_bound.is_none_or(|upper| file.largest_user_key() < upper));
        if let Some(previous) = self.finished.last() {
            assert!(
                previous.largest_user_key() < file.smallest_user_key(),
                "files {} and {} share a user key",
                previous.number,
                file.number
            );
            assert!(previous.number < file.number, "file numbers go back");
        }
        self.finished.push(file);
        Ok(())
    }

    /// True if a range tombstone starts before `cut` and reaches it
    /// (`start < cut <= end`). Cutting there would give the closing file the
    /// tombstone's piece ending at `cut`, whose bound `(cut, max sequence)`
    /// makes the file's largest *user* key `cut`, the next file's smallest:
    /// two files of a sorted level sharing a user key, which the version
    /// rejects and `file_for_key` cannot tell apart. So the cut waits for a
    /// key no tombstone reaches (a tombstone spanning the whole output makes
    /// one large file).
    fn tombstone_reaches(&self, cut: &[u8]) -> bool {
        self.tombstones
            .iter()
            .any(|t| t.start.as_slice() < cut && cut <= t.end.as_slice())
    }

    /// Adds an entry; keys must arrive in internal-key order.
    pub fn add(
        &mut self,
        internal_key: &[u8],
        value: &[u8],
        new_file_number: &mut dyn FnMut() -> u64,
    ) -> Result<()> {
        let user_key = key::user_key(internal_key);
        debug_assert!(
            self.current.is_none() || user_key >= self.last_user_key.as_slice(),
            "user keys go back"
        );
        let boundary = self.current.is_some() && user_key != self.last_user_key.as_slice();
        if boundary
            && self.current.as_ref().is_some_and(|t| {
                t.builder.estimated_file_size_bytes() >= self.target_file_size_bytes
            })
            && !self.tombstone_reaches(user_key)
        {
            // Cut here: versions of one user key never straddle two files,
            // so files of a sorted level never share a user key.
            let cut = user_key.to_vec();
            self.close(Some(&cut))?;
            self.open(Some(cut), new_file_number)?;
        }
        if self.current.is_none() {
            let lower = if self.finished.is_empty() {
                None
            } else {
                Some(user_key.to_vec())
            };
            self.open(lower, new_file_number)?;
        }
        if let Some(table) = self.current.as_mut() {
            table.builder.add(internal_key, value)?;
        }
        self.last_user_key.clear();
        self.last_user_key.extend_from_slice(user_key);
        Ok(())
    }

    /// Finishes the last file, syncs the directory so that every new file's
    /// entry is durable, and returns the files written.
    pub fn finish(mut self, new_file_number: &mut dyn FnMut() -> u64) -> Result<Vec<FileMetadata>> {
        if self.current.is_none() && self.finished.is_empty() && !self.tombstones.is_empty() {
            self.open(None, new_file_number)?;
        }
        self.close(None)?;
        if !self.finished.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::CrashFs;
    use crate::key::ValueKind;

    fn write(tombstones: Vec<RangeTombstone>, user_keys: &[&[u8]]) -> Vec<FileMetadata> {
        let fs = CrashFs::new();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).unwrap();
        // A target of one byte asks for a cut at every user-key boundary.
        let mut writer =
            TableWriter::new(Arc::new(fs), dir, TableOptions::default(), 1, tombstones);
        let mut next_number = 10;
        let mut allocate = || {
            next_number += 1;
            next_number
        };
        for (sequence_number, user_key) in (1..).zip(user_keys) {
            let internal = key::internal_key(user_key, sequence_number, ValueKind::Value);
            writer.add(&internal, b"v", &mut allocate).unwrap();
        }
        writer.finish(&mut allocate).unwrap()
    }

    fn assert_disjoint(files: &[FileMetadata]) {
        for pair in files.windows(2) {
            assert!(
                pair[0].largest_user_key() < pair[1].smallest_user_key(),
                "{:?} and {:?} share a user key",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn files_never_share_a_user_key_through_a_range_tombstone() {
        let tombstone = |start: &[u8], end: &[u8]| RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            sequence_number: 100,
        };
        let keys: &[&[u8]] = &[b"a", b"b", b"c", b"d", b"e", b"f"];
        // No tombstone: a file per key.
        let files = write(Vec::new(), keys);
        assert_eq!(files.len(), keys.len());
        assert_disjoint(&files);
        // [c, e) reaches the cuts at d and e, which must not be made.
        let files = write(vec![tombstone(b"c", b"e")], keys);
        assert_eq!(files.len(), keys.len() - 2);
        assert_disjoint(&files);
        // A tombstone over everything keeps the output in one file.
        let files = write(vec![tombstone(b"a", b"z")], keys);
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn clipping_keeps_only_the_intersection() {
        let t = RangeTombstone {
            start: b"c".to_vec(),
            end: b"m".to_vec(),
            sequence_number: 9,
        };
        assert_eq!(clip(&t, None, None).unwrap(), t);
        let c = clip(&t, Some(b"e"), Some(b"g")).unwrap();
        assert_eq!(
            (c.start.as_slice(), c.end.as_slice()),
            (&b"e"[..], &b"g"[..])
        );
        assert!(clip(&t, Some(b"m"), None).is_none());
        assert!(clip(&t, None, Some(b"c")).is_none());
    }
}
