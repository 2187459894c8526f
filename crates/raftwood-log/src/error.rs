//! What can go wrong with the log on disk.

use std::path::PathBuf;

use thiserror::Error;

/// Errors of [`RaftLogStore`](crate::RaftLogStore).
#[derive(Debug, Error)]
pub enum LogError {
    /// The filesystem refused an operation. After a failed write, sync or
    /// deletion the store is poisoned (see [`LogError::Poisoned`]).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the store was doing, including the path.
        context: String,
        /// The filesystem's error.
        #[source]
        source: raftwood_lsm::Error,
    },

    /// The log holds damage that is not a torn tail: a bad record with valid
    /// records after it, a bad record in a segment that is not the last, or
    /// records that decode but contradict each other. Nothing is returned
    /// from a corrupt log, and nothing on disk is changed.
    #[error("corruption in {file} at byte {offset}: {detail}")]
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset in that file of the damaged record.
        offset: u64,
        /// What failed to verify.
        detail: String,
    },

    /// The directory exists but does not hold a raftwood Raft log. Nothing
    /// in it was changed.
    #[error("{path} is not a raftwood raft log: {detail}")]
    NotALog {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        detail: String,
    },

    /// A segment was written by a newer version of raftwood.
    #[error(
        "unsupported raft log format version {found} in {file} (this build understands {supported})"
    )]
    UnsupportedVersion {
        /// The segment file.
        file: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },

    /// An earlier write, sync or deletion failed. What reached the disk is
    /// unknown, so the store refuses every further change until it is
    /// reopened and recovers from what is durable (fail-stop).
    #[error("raft log refuses writes after an earlier storage error ({0}); reopen it")]
    Poisoned(String),

    /// The caller asked for something the log cannot do (entries that leave
    /// a gap, a compaction past the last entry, a read outside the log).
    /// Nothing was written.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: raftwood_lsm::Error) -> LogError {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
