//! What the manifest records about one SSTable.

use crate::cache::ReaderSlot;
use crate::key;
use crate::version::ReadCost;

/// Metadata of a live table file. Immutable once the table is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// Size of the file.
    pub size_bytes: u64,
    /// Smallest internal key, including range-tombstone starts.
    pub smallest_key: Vec<u8>,
    /// Largest internal key, including range-tombstone ends.
    /// Invariant: user_key(smallest_key) <= user_key(largest_key).
    pub largest_key: Vec<u8>,
    /// Smallest sequence number of any entry in the file.
    pub smallest_sequence_number: u64,
    /// Largest sequence number of any entry in the file.
    pub largest_sequence_number: u64,
    /// Point entries in the file.
    pub num_entries: u64,
    /// Range tombstones in the file.
    pub num_range_tombstones: u64,
    /// The file's open reader, if the table cache holds one (a cache of the
    /// cache lookup; not part of the file's description).
    pub(crate) reader: ReaderSlot,
    /// Cursor seeks this file has slowed down (level 0 only; see
    /// [`ReadCost`]). Not part of the file's description either.
    pub(crate) read_cost: ReadCost,
}

impl FileMetadata {
    /// The smallest user key the file may hold.
    pub fn smallest_user_key(&self) -> &[u8] {
        key::user_key(&self.smallest_key)
    }

    /// The largest user key the file may hold (inclusive).
    pub fn largest_user_key(&self) -> &[u8] {
        key::user_key(&self.largest_key)
    }

    /// True if the file's user-key range intersects `[smallest, largest]`
    /// (`None` means unbounded on that side).
    pub fn overlaps(&self, smallest: Option<&[u8]>, largest: Option<&[u8]>) -> bool {
        let below = largest.is_some_and(|largest| largest < self.smallest_user_key());
        let above = smallest.is_some_and(|smallest| smallest > self.largest_user_key());
        !(below || above)
    }

    /// Charges one cursor seek that had to position itself in this file as
    /// well as in others. Returns true when that uses up the file's budget.
    pub(crate) fn charge_seek(&self) -> bool {
        self.read_cost.charge_seek(self.size_bytes)
    }

    /// True once cursor seeks have cost about as much as compacting the
    /// file would.
    pub fn seeks_exhausted(&self) -> bool {
        self.read_cost.exhausted(self.size_bytes)
    }

    /// True if the file's range contains `user_key`.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.smallest_user_key() <= user_key && user_key <= self.largest_user_key()
    }
}
