//! Snapshots: a read view pinned at a sequence number. While a snapshot
//! lives, compaction keeps every version it can see.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// The sequence numbers of live snapshots, with reference counts.
#[derive(Debug, Default)]
pub struct SnapshotList {
    live: Mutex<BTreeMap<u64, usize>>,
}

impl SnapshotList {
    fn acquire(&self, sequence_number: u64) {
        *self.live.lock().entry(sequence_number).or_insert(0) += 1;
    }

    fn release(&self, sequence_number: u64) {
        let mut live = self.live.lock();
        // Every `Snapshot` acquired its entry, and a count reaching zero
        // removes it.
        debug_assert!(
            live.get(&sequence_number).is_some_and(|&count| count > 0),
            "releasing snapshot {sequence_number}, which is not held"
        );
        if let Some(count) = live.get_mut(&sequence_number) {
            *count -= 1;
            if *count == 0 {
                live.remove(&sequence_number);
            }
        }
    }

    /// Live snapshot sequence numbers, ascending.
    pub fn sequence_numbers(&self) -> Vec<u64> {
        self.live.lock().keys().copied().collect()
    }
}

/// A consistent read view. Reads through it see exactly the writes
/// acknowledged before it was taken.
#[derive(Debug)]
pub struct Snapshot {
    sequence_number: u64,
    list: Arc<SnapshotList>,
}

impl Snapshot {
    pub(crate) fn new(list: Arc<SnapshotList>, sequence_number: u64) -> Self {
        list.acquire(sequence_number);
        Snapshot {
            sequence_number,
            list,
        }
    }

    /// The sequence number the view is pinned at.
    pub fn sequence_number(&self) -> u64 {
        self.sequence_number
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.list.release(self.sequence_number);
    }
}
