//! Versions: immutable snapshots of which table files are live at which
//! level. A flush or compaction produces a [`VersionEdit`]; applying it to
//! the current [`Version`] yields the next one, which is swapped in
//! atomically. Readers hold an `Arc<Version>` and are never disturbed.

mod edit;
mod file_metadata;
mod read_cost;
mod set;

pub use edit::{MANIFEST_FORMAT_VERSION, VersionEdit};
pub use file_metadata::FileMetadata;
pub use read_cost::ReadCost;
pub use set::{VersionSet, read_current, write_current};

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Upper bound on `Options::num_levels` (the manifest stores levels as u8).
pub const MAX_LEVELS: usize = 16;

/// The live files, by level.
///
/// Invariants: level 0 is ordered newest first (by largest sequence number)
/// and its files may overlap; every deeper level is ordered by smallest key
/// and its files' key ranges are disjoint. For any user key, versions in a
/// shallower level are newer than versions in a deeper one.
#[derive(Debug, Clone, Default)]
pub struct Version {
    levels: Vec<Vec<Arc<FileMetadata>>>,
}

impl Version {
    /// An empty version with `num_levels` levels.
    pub fn empty(num_levels: usize) -> Self {
        Version {
            levels: vec![Vec::new(); num_levels],
        }
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// The files of `level`, in the order described on [`Version`].
    pub fn files(&self, level: usize) -> &[Arc<FileMetadata>] {
        self.levels.get(level).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Total size of the files of `level`.
    pub fn level_size_bytes(&self, level: usize) -> u64 {
        self.files(level).iter().map(|f| f.size_bytes).sum()
    }

    /// Every live file number.
    pub fn live_file_numbers(&self, out: &mut BTreeSet<u64>) {
        for level in &self.levels {
            out.extend(level.iter().map(|f| f.number));
        }
    }

    /// Files of `level` whose range intersects `[smallest, largest]`.
    pub fn overlapping_files(
        &self,
        level: usize,
        smallest: Option<&[u8]>,
        largest: Option<&[u8]>,
    ) -> Vec<Arc<FileMetadata>> {
        self.files(level)
            .iter()
            .filter(|f| f.overlaps(smallest, largest))
            .cloned()
            .collect()
    }

    /// The one file of a sorted level (>= 1) that may hold `user_key`.
    pub fn file_for_key(&self, level: usize, user_key: &[u8]) -> Option<&Arc<FileMetadata>> {
        debug_assert!(level > 0);
        let files = self.files(level);
        let index = files.partition_point(|f| f.largest_user_key() < user_key);
        // The files before `index` end below the key, so in a sorted level
        // no other file may hold it.
        debug_assert!(
            files
                .get(index + 1)
                .is_none_or(|next| next.smallest_user_key() > user_key)
        );
        files.get(index).filter(|f| f.may_contain(user_key))
    }

    /// Applies `edit`, checking that it names files consistently.
    pub fn apply(&self, edit: &VersionEdit) -> Result<Version> {
        let mut levels = self.levels.clone();
        for &(level, number) in &edit.deleted_files {
            let files = levels.get_mut(level).ok_or_else(|| {
                Error::corruption("manifest", format!("deletion at missing level {level}"))
            })?;
            let before = files.len();
            files.retain(|f| f.number != number);
            if files.len() == before {
                return Err(Error::corruption(
                    "manifest",
                    format!("deletes file {number} which is not live at level {level}"),
                ));
            }
        }
        for (level, file) in &edit.added_files {
            let files = levels.get_mut(*level).ok_or_else(|| {
                Error::corruption("manifest", format!("file added at missing level {level}"))
            })?;
            files.push(Arc::clone(file));
        }
        let mut next = Version { levels };
        next.sort_and_check()?;
        next.check_invariants();
        Ok(next)
    }

    /// Asserts the invariants described on [`Version`], which
    /// `sort_and_check` establishes (or refuses the edit): every file named
    /// once, with a key range; level 0 newest first; deeper levels sorted
    /// and disjoint.
    pub(crate) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut numbers = BTreeSet::new();
        for (level, files) in self.levels.iter().enumerate() {
            for file in files {
                debug_assert!(
                    numbers.insert(file.number),
                    "file {} is live twice",
                    file.number
                );
                debug_assert!(file.smallest_user_key() <= file.largest_user_key());
            }
            if level == 0 {
                debug_assert!(files.is_sorted_by(|a, b| {
                    (a.largest_sequence_number, a.number) >= (b.largest_sequence_number, b.number)
                }));
            } else {
                debug_assert!(
                    files
                        .windows(2)
                        .all(|pair| pair[0].largest_user_key() < pair[1].smallest_user_key()),
                    "level {level} is not sorted and disjoint"
                );
            }
        }
    }

    fn sort_and_check(&mut self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for (level, files) in self.levels.iter_mut().enumerate() {
            for file in files.iter() {
                if !seen.insert(file.number) {
                    return Err(Error::corruption(
                        "manifest",
                        format!("file {} is live twice", file.number),
                    ));
                }
            }
            if level == 0 {
                files.sort_by(|a, b| {
                    b.largest_sequence_number
                        .cmp(&a.largest_sequence_number)
                        .then(b.number.cmp(&a.number))
                });
                continue;
            }
            files.sort_by(|a, b| a.smallest_user_key().cmp(b.smallest_user_key()));
            for pair in files.windows(2) {
                if pair[0].largest_user_key() >= pair[1].smallest_user_key() {
                    return Err(Error::corruption(
                        "manifest",
                        format!(
                            "files {} and {} overlap at level {level}",
                            pair[0].number, pair[1].number
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};

    fn file(number: u64, smallest: &[u8], largest: &[u8], seq: u64) -> Arc<FileMetadata> {
        Arc::new(FileMetadata {
            number,
            size_bytes: 100,
            smallest_key: internal_key(smallest, seq, ValueKind::Value),
            largest_key: internal_key(largest, seq, ValueKind::Value),
            smallest_sequence_number: seq,
            largest_sequence_number: seq,
            num_entries: 1,
            num_range_tombstones: 0,
            reader: Default::default(),
            read_cost: Default::default(),
        })
    }

    #[test]
    fn apply_orders_levels_and_rejects_overlap() {
        let v = Version::empty(3);
        let edit = VersionEdit {
            added_files: vec![
                (0, file(1, b"a", b"z", 5)),
                (0, file(2, b"a", b"z", 9)),
                (1, file(3, b"m", b"p", 1)),
                (1, file(4, b"a", b"c", 1)),
            ],
            ..Default::default()
        };
        let v = v.apply(&edit).unwrap();
        assert_eq!(v.files(0)[0].number, 2, "newest level-0 file first");
        assert_eq!(v.files(1)[0].number, 4, "sorted by smallest key");
        assert_eq!(v.file_for_key(1, b"n").unwrap().number, 3);
        assert!(v.file_for_key(1, b"e").is_none());

        let overlapping = VersionEdit {
            added_files: vec![(1, file(5, b"b", b"d", 1))],
            ..Default::default()
        };
        assert!(v.apply(&overlapping).unwrap_err().is_corruption());
        let missing = VersionEdit {
            deleted_files: vec![(2, 3)],
            ..Default::default()
        };
        assert!(v.apply(&missing).unwrap_err().is_corruption());
    }
}
