//! The server's errors. Client-visible errors are etcd's texts; see
//! `grpc::status`.

use std::io;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The value is malformed or contradicts another setting.
    #[error("{0}")]
    Invalid(String),
}

/// Why a member could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The raft log store failed (fail-stop: the member stops).
    #[error("raft log: {0}")]
    Log(#[from] raftwood_log::LogError),
    /// The state machine's storage failed (fail-stop).
    #[error("state machine: {0}")]
    Kv(#[from] raftwood_kv::KvError),
    /// The raft core refused its initial state or an input.
    #[error("raft: {0}")]
    Raft(#[from] raftwood_raft::Error),
    /// Binding a socket or another OS-level failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The data directory could not be read or written (through the
    /// storage seam).
    #[error("{context}: {source}")]
    Storage {
        /// What was being done.
        context: String,
        /// The seam's error.
        source: raftwood_lsm::Error,
    },
    /// The live state machine cannot be told apart from old ones.
    #[error("data directory: {0}")]
    StateDir(#[from] crate::state_dir::StateDirError),
    /// The log and the state machine cannot be reconciled.
    #[error("recovery: {0}")]
    Recovery(#[from] crate::recovery::RecoveryError),
    /// Writing the bootstrap state failed.
    #[error("bootstrapping the raft log: {0}")]
    Bootstrap(String),
    /// The data directory belongs to a different member or cluster.
    #[error("data directory mismatch: {0}")]
    DataDirMismatch(String),
}

impl ServerError {
    /// A storage error with what was being attempted.
    pub fn storage(context: impl Into<String>, source: raftwood_lsm::Error) -> ServerError {
        ServerError::Storage {
            context: context.into(),
            source,
        }
    }

    /// An I/O error with what was being attempted.
    pub fn io(context: impl Into<String>, source: io::Error) -> ServerError {
        ServerError::Io {
            context: context.into(),
            source,
        }
    }
}
