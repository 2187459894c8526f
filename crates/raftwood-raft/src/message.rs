//! Messages between members. Every message carries its sender's term (paper
//! §5.1): a member that sees a higher term becomes a follower of that term.

use bytes::Bytes;

use crate::entry::Entry;
use crate::ids::{Index, NodeId, Term};
use crate::snapshot::SnapshotMeta;

/// A message from one member to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term; for a pre-vote request, the term the sender would
    /// campaign in (its term + 1) — its real term is unchanged.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message, with what each carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// "Would you vote for me if I campaigned?" (thesis §9.6). Answering
    /// changes nothing on the recipient.
    PreVoteRequest {
        /// Index of the sender's last entry.
        last_log_index: Index,
        /// Term of the sender's last entry.
        last_log_term: Term,
    },
    /// The answer to a pre-vote request.
    PreVoteResponse {
        /// True if the vote would not be granted.
        reject: bool,
    },
    /// RequestVote RPC (paper §5.2).
    VoteRequest {
        /// Index of the candidate's last entry.
        last_log_index: Index,
        /// Term of the candidate's last entry.
        last_log_term: Term,
        /// The campaign was asked for by the leader (leadership transfer):
        /// members vote even if they heard from a leader recently.
        leadership_transfer: bool,
    },
    /// The answer to a vote request.
    VoteResponse {
        /// True if the vote was not granted.
        reject: bool,
    },
    /// AppendEntries RPC (paper §5.3).
    AppendRequest {
        /// Index of the entry just before `entries`.
        prev_log_index: Index,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to append, possibly none (a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
    },
    /// The answer to an append request.
    AppendResponse {
        /// On success, the highest index known to match the leader's log.
        /// On rejection, the `prev_log_index` that was rejected.
        index: Index,
        /// Set when the append was rejected.
        reject: Option<RejectHint>,
    },
    /// The leader's periodic "I am still here" (paper §5.2), which also
    /// carries the commit index for followers that are up to date, and the
    /// context of a ReadIndex round being confirmed.
    Heartbeat {
        /// The leader's commit index, capped at what the follower matches.
        commit: Index,
        /// The ReadIndex round this heartbeat confirms, if any.
        read_context: Option<Bytes>,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// Echoes the heartbeat's `read_context`.
        read_context: Option<Bytes>,
    },
    /// InstallSnapshot RPC (paper §7): the follower needs entries the leader
    /// has compacted away. The data travels beside the message (the server
    /// streams it); the core sees only what the snapshot stands for.
    InstallSnapshot {
        /// The point the snapshot replaces the log up to.
        snapshot: SnapshotMeta,
    },
    /// "Campaign now": sent by a leader transferring leadership to a
    /// follower that has caught up (thesis §3.10).
    TimeoutNow,
    /// A follower forwards a linearizable read to the leader.
    ReadIndexRequest {
        /// Opaque to Raft: identifies the read to the requester.
        context: Bytes,
    },
    /// The leader's answer to a forwarded read: once the requester has
    /// applied up to `index`, the read may be served.
    ReadIndexResponse {
        /// Echoes the request's context.
        context: Bytes,
        /// The commit index the read must wait for; `None` if the leader
        /// could not serve it (it has not committed an entry in its term, or
        /// it stepped down): the requester retries.
        index: Option<Index>,
    },
    /// A follower hands client commands to the leader it knows, which
    /// appends them as if they had been proposed to it (thesis §6.2:
    /// clients may contact any member; a follower passes the request on
    /// instead of rejecting it). Nothing comes back: the follower learns
    /// the outcome by applying the entries, which it recognises by the
    /// request ids inside the commands (opaque to Raft).
    ///
    /// A member that is not the leader of the message's term drops it, and
    /// so does a leader that refuses proposals at the moment (flow control,
    /// leadership transfer). Dropping is safe: an entry that is never
    /// appended is never applied, so the follower's client is answered by
    /// the follower's own timeout ("request timed out"), an indeterminate
    /// error, never by a false success — and no entry is appended twice for
    /// one proposal, because the follower never re-sends.
    ProposeRequest {
        /// Chosen by the sender and increasing over its lifetime, across
        /// restarts too (the caller supplies it, from a clock or a durable
        /// counter). A leader appends a batch only if its id is above every
        /// batch id it already took from this sender in its term, so a
        /// duplicated (or a stale, reordered) message is never appended a
        /// second time.
        batch_id: u64,
        /// The commands, appended in this order.
        commands: Vec<Bytes>,
    },
}

/// Why an append was rejected, so the leader can skip back a whole term at
/// a time instead of one entry per round trip (paper §5.3, the optimisation
/// at the end of the section; etcd's "fast log rejection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectHint {
    /// The follower's guess at the highest index that may match: the last
    /// index at or below the rejected one whose term is <= `term`.
    pub index: Index,
    /// The term of the follower's entry at `index`.
    pub term: Term,
}

impl MessageBody {
    /// A short name for logs and transcripts.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::PreVoteRequest { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResp",
            MessageBody::VoteRequest { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResp",
            MessageBody::AppendRequest { .. } => "App",
            MessageBody::AppendResponse { .. } => "AppResp",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResp",
            MessageBody::InstallSnapshot { .. } => "Snap",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndexRequest { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResp",
            MessageBody::ProposeRequest { .. } => "Prop",
        }
    }
}
