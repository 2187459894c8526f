//! Log entries: what the leader replicates and every member applies in order.

use bytes::Bytes;

use crate::ids::{Index, Term};
use crate::membership::ConfChange;

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log. Invariant: entries of a log have
    /// consecutive indexes.
    pub index: Index,
    /// What the entry carries.
    pub payload: EntryPayload,
}

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryPayload {
    /// The no-op a new leader appends so that it can commit an entry of its
    /// own term (paper §5.4.2 and §8): nothing for the state machine.
    Empty,
    /// A command for the state machine, opaque to Raft.
    Command(Bytes),
    /// A change of membership. The core applies it to its configuration
    /// when the caller reports the entry applied; the state machine sees it
    /// too (a server records the new member list).
    ConfChange(ConfChange),
}

impl Entry {
    /// Bytes this entry counts for in size limits (message size, flow
    /// control, the uncommitted-bytes budget). Only the payload counts, as
    /// in etcd, so that empty entries never exhaust a budget.
    pub fn payload_size_bytes(&self) -> u64 {
        match &self.payload {
            EntryPayload::Empty => 0,
            EntryPayload::Command(data) => data.len() as u64,
            EntryPayload::ConfChange(change) => change.encoded_size_hint_bytes(),
        }
    }

    /// Whether the entry changes membership.
    pub fn is_conf_change(&self) -> bool {
        matches!(self.payload, EntryPayload::ConfChange(_))
    }
}
