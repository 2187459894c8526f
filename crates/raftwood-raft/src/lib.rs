//! raftwood-raft: the Raft consensus algorithm as a pure, deterministic state
//! machine.
//!
//! A [`RaftNode`] is one member. It does no I/O, reads no clock and starts no
//! thread: time enters as [`RaftNode::tick`], messages as
//! [`RaftNode::step`], and everything the member wants done comes out of
//! [`RaftNode::take_effects`] as data — state to persist, messages to send,
//! entries to apply, reads that may be served. The caller carries the
//! effects out and reports back ([`RaftNode::on_persisted`],
//! [`RaftNode::on_applied`]). Given the same inputs, a node produces the
//! same outputs: its only randomness (the election timeout) comes from a
//! generator seeded by [`Config::seed`].
//!
//! The algorithm follows Ongaro and Ousterhout's paper "In Search of an
//! Understandable Consensus Algorithm" and Ongaro's thesis; `docs/raft.md`
//! maps each of its sections to the types here and the tests that check
//! them.

pub mod codec;
mod config;
mod effects;
mod entry;
mod error;
mod hard_state;
mod ids;
mod log;
mod membership;
mod message;
mod node;
mod outbox;
mod quorum;
mod read_only;
mod role;
mod snapshot;
mod tracker;

pub use config::{Config, ReadOnlyMode};
pub use effects::{Effects, PersistRequest, PersistTicket, ReadState};
pub use entry::{Entry, EntryPayload};
pub use error::Error;
pub use hard_state::HardState;
pub use ids::{Index, NodeId, Term};
pub use log::{RaftLog, Unavailable};
pub use membership::{
    ConfChange, ConfChangeError, ConfChangeKind, ConfChangeSingle, ConfChangeTransition, ConfState,
};
pub use message::{Message, MessageBody, RejectHint};
pub use node::{InitialState, LogPosition, Proposal, RaftNode};
pub use quorum::{JointConfig, MajorityConfig, VoteResult};
pub use role::Role;
pub use snapshot::SnapshotMeta;
pub use tracker::{Inflights, Progress, ProgressState, ProgressTracker, TrackerConfig};
