//! What the store knows about each segment file.

use std::path::PathBuf;

use raftwood_raft::Index;

/// One segment file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// The number in the file name. Segments are replayed in this order.
    pub(crate) sequence: u64,
    /// The file.
    pub(crate) path: PathBuf,
    /// The highest index of any entry written to this segment, whether or
    /// not a later record truncated it; `None` if it holds no entries.
    /// Compaction deletes the segment only when this is at or below the
    /// snapshot point.
    pub(crate) max_entry_index: Option<Index>,
}

impl SegmentInfo {
    pub(crate) fn note_entries(&mut self, last_index: Index) {
        self.max_entry_index = Some(
            self.max_entry_index
                .map_or(last_index, |m| m.max(last_index)),
        );
    }
}
