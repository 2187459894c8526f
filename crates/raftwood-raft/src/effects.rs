//! What the core asks its caller to do. The caller carries out a batch of
//! effects and reports completion; the core never does I/O itself.
//!
//! The ordering rules are enforced by construction:
//! - A message that depends on local durable state (a vote, an append
//!   acknowledgement, anything a follower says) is not in
//!   [`Effects::messages`] until every [`PersistRequest`] issued before it was
//!   created has been reported complete with
//!   [`RaftNode::on_persisted`](crate::RaftNode::on_persisted). The caller
//!   may send everything it is given at once.
//! - The leader's own replication messages are released at once: the leader
//!   persists its entries in parallel with sending them (thesis §10.2.1),
//!   and counts itself towards a commit quorum only after its own
//!   persistence completes.
//! - [`Effects::apply`] holds only entries that are committed and durable
//!   locally, so a state machine never gets ahead of its own log.

use bytes::Bytes;

use crate::entry::Entry;
use crate::hard_state::HardState;
use crate::ids::Index;
use crate::message::Message;
use crate::snapshot::SnapshotMeta;

/// Identifies one persistence request. Requests must be completed in the
/// order they were issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistTicket(pub u64);

/// State the caller must make durable, in this order: the snapshot (if
/// any), then the entries, then the hard state; then report
/// [`RaftNode::on_persisted`](crate::RaftNode::on_persisted) with `ticket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    /// What to report when done.
    pub ticket: PersistTicket,
    /// A snapshot received from the leader. Installing it replaces the
    /// state machine with the snapshot's data and discards the whole log;
    /// `entries` then follow the snapshot.
    pub snapshot: Option<SnapshotMeta>,
    /// Entries to append. If the first one's index is at or below the last
    /// index on disk, the log on disk is truncated before it (a conflict was
    /// resolved).
    pub entries: Vec<Entry>,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
}

/// A linearizable read that may now be served: once the state machine has
/// applied up to `index`, a read issued with `context` sees every write
/// acknowledged before it was issued (thesis §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index at the time the read was confirmed.
    pub index: Index,
    /// The caller's context, as given to `read_index`.
    pub context: Bytes,
}

/// One batch of work for the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// State to make durable.
    pub persist: Option<PersistRequest>,
    /// Messages to send, in any order, at once.
    pub messages: Vec<Message>,
    /// Committed, locally durable entries to apply in order; report
    /// progress with [`RaftNode::on_applied`](crate::RaftNode::on_applied).
    pub apply: Vec<Entry>,
    /// Reads confirmed linearizable.
    pub read_states: Vec<ReadState>,
    /// Contexts of reads that cannot be confirmed (the leader stepped down,
    /// or it could not serve them yet): the caller retries them.
    pub failed_reads: Vec<Bytes>,
}

impl Effects {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.apply.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
    }
}
