//! The engine's error type. Every failure that input or the disk can cause is
//! one of these variants; nothing the disk returns is unwrapped.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `raftwood-lsm`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an I/O operation.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the engine was doing, including the path.
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A file's contents fail a checksum or do not parse. The engine never
    /// returns data from a corrupt region.
    #[error("corruption in {file}: {detail}")]
    Corruption {
        /// The file (or file kind) in which the corruption was found.
        file: String,
        /// What exactly failed to verify.
        detail: String,
    },

    /// An earlier write or fsync failed. The on-disk state after a failed
    /// write is unknown, so the engine refuses every further write until the
    /// database is reopened and recovers from what is durable (fail-stop).
    #[error("database refuses writes after an earlier storage error ({0}); reopen it")]
    Poisoned(String),

    /// The directory exists but does not hold a raftwood-lsm database.
    #[error("{path} is not a raftwood-lsm database: {detail}")]
    NotADatabase {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        detail: String,
    },

    /// Another process (or another `Db` in this process) holds the lock.
    #[error("database at {0} is locked by another process or handle")]
    Locked(PathBuf),

    /// The database was written by a newer version of the engine.
    #[error("unsupported {what} format version {found} (this build understands up to {supported})")]
    UnsupportedFormatVersion {
        /// Which file kind carries the version.
        what: &'static str,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A caller passed something the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A key is longer than `Options::max_key_size_bytes`.
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A value is longer than `Options::max_value_size_bytes`.
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The database has been closed.
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// Wraps an `std::io::Error` with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a corruption error for `file`.
    pub fn corruption(file: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            detail: detail.into(),
        }
    }

    /// True for corruption errors (useful in tests and for lenient recovery).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}
