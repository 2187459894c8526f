//! raftwood-log: the Raft log of one member on disk.
//!
//! [`RaftLogStore`] persists what the Raft core's
//! [`PersistRequest`](raftwood_raft::PersistRequest)s carry — entries, the
//! hard state and the snapshot point — in segmented, checksummed,
//! append-only files, and rebuilds it on [`RaftLogStore::open`]. The caller
//! writes several requests and syncs once (group commit). Recovery repairs
//! a torn tail and refuses any other damage; after a failed write or sync
//! the store refuses further changes until reopened.
//!
//! Every byte goes through the storage engine's filesystem seam
//! ([`raftwood_lsm::fs::FileSystem`]), so the crash tests run on
//! [`CrashFs`](raftwood_lsm::fs::CrashFs). The byte layout and a crash
//! analysis are in `docs/raft-log-format.md`.

mod error;
mod format;
mod options;
mod record;
mod recovery;
mod segment;
mod state;
mod store;

pub use error::LogError;
pub use options::{LogOptions, RecoveryMode};
pub use store::{RaftLogStore, Recovered};
