//! How the log store behaves.

/// Options of [`RaftLogStore::open`](crate::RaftLogStore::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment that has reached this size is closed and a new one started
    /// before the next write. A segment exceeds it by at most one write
    /// (a write never spans two segments).
    pub segment_size_bytes: u64,
    /// The active segment is kept filled with zeros this far past its last
    /// write (never past `segment_size_bytes`), and the zeros are synced
    /// with the write that extends them. Writes then overwrite blocks that
    /// are already allocated and durable, so the `fdatasync` after them
    /// flushes data only, not the file size through the filesystem's
    /// journal (`FileSystem`'s `zero_extend` says why). Recovery reads a run
    /// of zeros at the end of the newest segment as the end of the log.
    /// 0 turns it off: every write then grows the file.
    pub zero_ahead_bytes: u64,
    /// What recovery does about damage that is not a torn tail.
    pub recovery_mode: RecoveryMode,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size_bytes: 64 * 1024 * 1024,
            zero_ahead_bytes: 1024 * 1024,
            recovery_mode: RecoveryMode::Strict,
        }
    }
}

/// What recovery does when it finds a damaged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Only a torn tail is repaired: damage at the end of the last segment
    /// with no valid record after it (what a crash during an unsynced write
    /// leaves). Any other damage is [`LogError::Corruption`](crate::LogError::Corruption),
    /// so no acknowledged state is ever silently lost.
    Strict,
    /// Recovery keeps the log up to the first damaged record anywhere and
    /// discards everything after it, deleting later segments. This can lose
    /// acknowledged entries and even a vote, which Raft's safety relies on:
    /// use it only to revive a member an operator will then treat as new
    /// (for example by removing and re-adding it).
    TruncateAtFirstDamage,
}
