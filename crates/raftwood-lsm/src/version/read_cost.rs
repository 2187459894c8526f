//! [`ReadCost`]: how many cursor seeks a level-0 table has slowed down, and
//! when that is worth a compaction (LevelDB's "seek compaction", applied to
//! level 0 only).
//!
//! Every seek of a fresh cursor must position itself in each level-0 table
//! and in one table per deeper level: a data-block search (often a
//! block-cache miss) per table. Level 0 is compacted on a file count
//! (`level0_compaction_trigger_files`), so a tree that stops being written
//! can keep a few level-0 tables indefinitely, and every later scan pays
//! for them. Counting those seeks lets the picker fold level 0 into level 1
//! once the reads it slowed have cost about as much as compacting it would.
//!
//! The budget follows LevelDB (`version_set.cc`, `allowed_seeks`): one seek
//! is worth compacting 16 KiB, with at least 100 seeks per table.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of compaction one wasted seek is taken to be worth.
const BYTES_PER_SEEK: u64 = 16 * 1024;

/// Seeks every table is allowed, however small.
const MIN_ALLOWED_SEEKS: u64 = 100;

/// Seeks charged to one table file. A cache of read statistics, not part of
/// the file's description: copies start at zero and it takes no part in
/// comparing metadata.
#[derive(Default)]
pub struct ReadCost {
    seeks: AtomicU64,
}

impl ReadCost {
    /// Seeks a table of `size_bytes` may slow down before it is worth
    /// compacting.
    pub fn allowed_seeks(size_bytes: u64) -> u64 {
        (size_bytes / BYTES_PER_SEEK).max(MIN_ALLOWED_SEEKS)
    }

    /// Charges one seek to a table of `size_bytes`. Returns true exactly
    /// once: on the charge that uses up the table's budget (the caller then
    /// wakes the compaction thread).
    pub fn charge_seek(&self, size_bytes: u64) -> bool {
        let before = self.seeks.fetch_add(1, Ordering::Relaxed);
        before + 1 == Self::allowed_seeks(size_bytes)
    }

    /// True once the seeks charged reach the budget of a table of
    /// `size_bytes`.
    pub fn exhausted(&self, size_bytes: u64) -> bool {
        self.seeks.load(Ordering::Relaxed) >= Self::allowed_seeks(size_bytes)
    }
}

impl Clone for ReadCost {
    fn clone(&self) -> Self {
        ReadCost::default()
    }
}

impl PartialEq for ReadCost {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ReadCost {}

impl std::fmt::Debug for ReadCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadCost({} seeks)", self.seeks.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_one_seek_per_16_kib_with_a_floor() {
        assert_eq!(ReadCost::allowed_seeks(0), 100);
        assert_eq!(ReadCost::allowed_seeks(16 << 20), 1024);
    }

    #[test]
    fn reports_exhaustion_exactly_once() {
        let cost = ReadCost::default();
        let size = 1 << 20; // 64 seeks by size, so the floor of 100 applies
        let crossings = (0..250).filter(|_| cost.charge_seek(size)).count();
        assert_eq!(crossings, 1);
        assert!(cost.exhausted(size));
        assert!(!ReadCost::default().exhausted(size));
        assert!(!cost.clone().exhausted(size), "copies start at zero");
    }
}
