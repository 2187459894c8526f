//! Errors the core returns to its caller. Input from the network can never
//! produce one of these as a panic; misuse by the caller is reported too.

use crate::ids::{Index, NodeId, Term};
use crate::membership::ConfChangeError;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The settings cannot work.
    #[error("invalid raft configuration: {0}")]
    InvalidConfig(String),
    /// The state given at start-up is inconsistent (for example a commit
    /// index past the last entry, or entries that do not follow the
    /// snapshot).
    #[error("inconsistent initial state: {0}")]
    InvalidInitialState(String),
    /// Only the leader accepts proposals and transfers; `leader` is who this
    /// member believes leads, if anyone.
    #[error("not the leader (leader is {leader:?})")]
    NotLeader {
        /// The leader this member knows of.
        leader: Option<NodeId>,
    },
    /// The leader is transferring leadership and accepts no proposals until
    /// the transfer ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A new leader cannot serve linearizable reads until it has committed
    /// an entry of its own term (before that its commit index may be
    /// behind the cluster's); retry shortly.
    #[error("the leader has not yet committed an entry in its term")]
    ReadIndexNotReady,
    /// The uncommitted-bytes budget is exhausted; retry later.
    #[error("too many uncommitted bytes; proposal dropped")]
    ProposalDropped,
    /// A membership change is already pending (proposed but not applied), or
    /// the leader has not yet committed an entry of its term.
    #[error("a configuration change is already pending")]
    ConfChangePending,
    /// The membership change is not valid for the current configuration.
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(#[from] ConfChangeError),
    /// The member is not part of the configuration.
    #[error("unknown member {0}")]
    UnknownMember(NodeId),
    /// A persistence or apply report does not match what was asked of the
    /// caller (a bug in the caller).
    #[error("out-of-order completion: {0}")]
    OutOfOrderCompletion(String),
    /// Log compaction asked for an index the core cannot compact to.
    #[error("cannot compact the log to {index}: {reason}")]
    InvalidCompaction {
        /// The requested index.
        index: Index,
        /// Why not.
        reason: String,
    },
    /// A message names a term and index that contradict what this member
    /// durably knows to be committed. Never applied; reported so a server
    /// can log the peer.
    #[error("message from {from} at term {term} contradicts the committed log")]
    ContradictsCommittedLog {
        /// The sender.
        from: NodeId,
        /// Its term.
        term: Term,
    },
}
