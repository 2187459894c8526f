//! One Raft member as a deterministic state machine.
//!
//! Inputs are method calls: [`RaftNode::tick`], [`RaftNode::step`],
//! [`RaftNode::propose`], [`RaftNode::propose_batch`],
//! [`RaftNode::propose_conf_change`],
//! [`RaftNode::read_index`], [`RaftNode::transfer_leader`], and the
//! caller's completion reports ([`RaftNode::on_persisted`],
//! [`RaftNode::on_applied`], [`RaftNode::report_snapshot`]). Output is
//! [`RaftNode::take_effects`]. Nothing else goes in or out: no clock, no
//! I/O, no threads; randomness comes from a generator seeded by the
//! configuration, so the same inputs always give the same outputs.
//!
//! The behaviour is split by concern: `election.rs` (terms, votes, roles),
//! `replication.rs` (the leader's side of log replication and commit),
//! `follower.rs` (the follower's side: appends, heartbeats, snapshots),
//! `reads.rs` (ReadIndex and leases), `membership.rs` (configuration
//! changes and leadership transfer), `persistence.rs` (persist requests,
//! apply, compaction).

mod election;
mod follower;
mod membership;
mod persistence;
mod reads;
mod replication;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::effects::{Effects, PersistTicket};
use crate::entry::Entry;
use crate::error::Error;
use crate::hard_state::HardState;
use crate::ids::{Index, NodeId, Term};
use crate::log::RaftLog;
use crate::membership::{Changer, ConfState};
use crate::message::{Message, MessageBody};
use crate::outbox::Outbox;
use crate::read_only::ReadOnlyQueue;
use crate::role::Role;
use crate::snapshot::SnapshotMeta;
use crate::tracker::ProgressTracker;

/// What a member had durably when it stopped, given back at start-up.
#[derive(Debug, Clone, Default)]
pub struct InitialState {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The snapshot the log starts after. A new cluster starts from a
    /// snapshot at index 1, term 1, whose configuration names the initial
    /// voters (the server writes it once at bootstrap); a member joining an
    /// existing cluster starts from an empty one at index 0, and so always
    /// needs that snapshot (or a later one) from the leader, which is how it
    /// learns the configuration.
    pub snapshot: SnapshotMeta,
    /// The persisted entries after the snapshot.
    pub entries: Vec<Entry>,
    /// The last index the state machine has applied (and kept durably).
    pub applied: Index,
}

impl InitialState {
    /// The state a member of a new cluster starts from: a snapshot at
    /// index 1, term 1, whose configuration is `conf_state` (the initial
    /// voters), committed and applied (docs/raft.md, "Bootstrapping"). The
    /// caller persists the snapshot and hard state before starting.
    pub fn bootstrap(conf_state: ConfState) -> InitialState {
        InitialState {
            hard_state: HardState {
                term: 1,
                vote: None,
                commit: 1,
            },
            snapshot: SnapshotMeta {
                index: 1,
                term: 1,
                conf_state,
            },
            entries: Vec::new(),
            applied: 1,
        }
    }
}

/// Where a proposal landed in the log. If the entry at `index` is later
/// applied with a different term, the proposal was lost (a new leader
/// overwrote it) and the caller should report failure to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    /// Index of the proposed entry.
    pub index: Index,
    /// Term it was proposed in.
    pub term: Term,
}

/// What became of commands handed to [`RaftNode::propose_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposal {
    /// This member leads and appended them; the position of the last one.
    Appended(LogPosition),
    /// This member follows `leader`, the leader of `term`, and sent them to
    /// it in a [`MessageBody::ProposeRequest`]. Whether they are appended
    /// is not known here: the caller recognises them when it applies them.
    /// They can only ever be appended in `term` (a leader takes a forwarded
    /// batch only in the term the message names), so once the caller
    /// applies an entry of a later term without having seen them, they
    /// will never be applied: terms never decrease along a log.
    Forwarded {
        /// Where they were sent.
        leader: NodeId,
        /// The term they were sent in.
        term: Term,
    },
}

/// A record of a persist request the caller has not yet completed.
#[derive(Debug, Clone)]
struct OutstandingPersist {
    ticket: PersistTicket,
    /// The last entry of the request, if it had entries.
    last_entry: Option<(Index, Term)>,
    /// The snapshot of the request, if it had one.
    snapshot: Option<SnapshotMeta>,
}

/// One Raft member.
#[derive(Debug)]
pub struct RaftNode {
    config: Config,
    /// The latest term seen. Invariant: never decreases.
    term: Term,
    /// Whom this member voted for in `term`.
    vote: Option<NodeId>,
    role: Role,
    /// The leader of `term`, if known.
    leader: Option<NodeId>,
    log: RaftLog,
    tracker: ProgressTracker,
    /// Ticks since the last election-timer reset (follower, candidate), or
    /// since the last check-quorum round (leader).
    election_elapsed_ticks: u32,
    /// Ticks since the last heartbeat (leader only).
    heartbeat_elapsed_ticks: u32,
    /// This term's election timeout, drawn from
    /// `[election_timeout_ticks, 2 * election_timeout_ticks)`.
    randomized_election_timeout_ticks: u32,
    rng: ChaCha8Rng,
    outbox: Outbox,
    /// The hard state last handed out to persist.
    handed_hard_state: HardState,
    /// Persist requests issued and not yet completed, oldest first.
    outstanding: VecDeque<OutstandingPersist>,
    next_ticket: u64,
    read_only: ReadOnlyQueue,
    read_states: Vec<crate::effects::ReadState>,
    failed_reads: Vec<Bytes>,
    /// The member leadership is being handed to (leader only).
    lead_transferee: Option<NodeId>,
    /// Index of the latest configuration change the leader proposed (or of
    /// its first entry in the term). Another change is refused until the
    /// applied index reaches it: one change at a time, and none before
    /// the leader has committed an entry of its term.
    pending_conf_index: Index,
    /// Payload bytes the leader appended in its term and has not committed.
    uncommitted_bytes: u64,
    /// The highest `batch_id` of a forwarded proposal the leader took from
    /// each member in its term (leader only; emptied when it becomes
    /// leader). Invariant: a batch is appended only if its id is above the
    /// sender's entry here, so no batch is appended twice.
    forwarded_batch_ids: BTreeMap<NodeId, u64>,
    /// The configuration after each applied change above the snapshot, so
    /// a compaction to any applied index records the right membership.
    /// Invariant: indexes increase; the last entry is the current config.
    conf_history: Vec<(Index, ConfState)>,
}

impl RaftNode {
    /// Starts a member from what it had durably.
    pub fn new(config: Config, initial: InitialState) -> Result<RaftNode, Error> {
        config.validate()?;
        let InitialState {
            hard_state,
            snapshot,
            entries,
            applied,
        } = initial;
        let invalid = |reason: String| Error::InvalidInitialState(reason);
        snapshot.conf_state.validate().map_err(invalid)?;
        RaftLog::check_entries(&snapshot, &entries).map_err(invalid)?;
        if snapshot.index == 0 && !snapshot.conf_state.members().is_empty() {
            // A member that joins later starts empty, at index 0, and learns
            // the configuration from the log or a snapshot. A configuration
            // that lives only in an index-0 snapshot can reach it by
            // neither: every leader assumes index 0 is common ground.
            return Err(invalid(
                "a cluster is bootstrapped from a snapshot at index 1 or above (index 0 means \"nothing yet\")".to_owned(),
            ));
        }
        let last_index = snapshot.index + entries.len() as u64;
        let last_term = entries.last().map_or(snapshot.term, |e| e.term);
        if hard_state.term < last_term {
            return Err(invalid(format!(
                "hard state term {} is below the last entry's term {last_term}",
                hard_state.term
            )));
        }
        if applied > last_index {
            return Err(invalid(format!(
                "applied index {applied} is past the last entry {last_index}"
            )));
        }
        if applied < snapshot.index {
            return Err(invalid(format!(
                "applied index {applied} is below the snapshot index {}",
                snapshot.index
            )));
        }
        if hard_state.commit > last_index {
            return Err(invalid(format!(
                "commit index {} is past the last entry {last_index}",
                hard_state.commit
            )));
        }
        // Only committed entries are ever applied, so the applied index is a
        // lower bound of the commit index even if the hard state lags.
        let committed = hard_state.commit.max(applied).max(snapshot.index);
        let log = RaftLog::restore(snapshot.clone(), entries, committed, applied);

        let (tracker_config, progress) = Changer::restore(
            &snapshot.conf_state,
            log.last_index(),
            config.max_inflight_messages,
            config.max_inflight_bytes,
        )?;
        let mut tracker =
            ProgressTracker::new(config.max_inflight_messages, config.max_inflight_bytes);
        tracker.install(tracker_config, progress);

        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut node = RaftNode {
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            tracker,
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: config.election_timeout_ticks,
            rng,
            outbox: Outbox::default(),
            handed_hard_state: HardState {
                commit: committed,
                ..hard_state
            },
            outstanding: VecDeque::new(),
            next_ticket: 1,
            read_only: ReadOnlyQueue::default(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            lead_transferee: None,
            pending_conf_index: 0,
            uncommitted_bytes: 0,
            forwarded_batch_ids: BTreeMap::new(),
            conf_history: vec![(snapshot.index, snapshot.conf_state)],
            config,
        };
        // Changes applied before the restart are part of the configuration;
        // the state machine will not see them again.
        node.apply_conf_changes_between(node.log.snapshot().index, applied)?;
        node.reset_randomized_election_timeout();
        Ok(node)
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The log (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The progress tracker (read-only): configuration and per-member
    /// replication state.
    pub fn tracker(&self) -> &ProgressTracker {
        &self.tracker
    }

    /// The configuration in force (as of the applied index).
    pub fn conf_state(&self) -> ConfState {
        self.tracker.conf_state()
    }

    /// The hard state as it is now (not necessarily persisted yet).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// The member being handed leadership, during a transfer.
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.lead_transferee
    }

    /// Number of linearizable reads waiting for confirmation (leader).
    pub fn pending_read_count(&self) -> usize {
        self.read_only.len()
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => self.tick_election(),
        }
        self.debug_check_invariants();
    }

    /// The invariants documented on the fields, and the log's. A broken one
    /// is a bug in the core or in its caller's use of it (completions out
    /// of order are refused with an error before they get here).
    pub fn check_invariants(&self) {
        self.log.check_invariants();
        let leading = self.role == Role::Leader;
        assert!(
            leading || self.lead_transferee.is_none(),
            "a leadership transfer outside leadership"
        );
        assert!(
            !leading || self.leader == Some(self.id()),
            "a leader that does not know it leads"
        );
        assert!(self.vote.is_none() || self.term > 0, "a vote in term 0");
        assert!(
            self.handed_hard_state.term <= self.term,
            "handed out a term above the current one"
        );
        assert!(
            self.outstanding
                .iter()
                .zip(self.outstanding.iter().skip(1))
                .all(|(a, b)| a.ticket.0 < b.ticket.0),
            "persist tickets out of order"
        );
        assert!(
            self.outstanding
                .back()
                .is_none_or(|newest| newest.ticket.0 < self.next_ticket),
            "a ticket at or past the next one"
        );
        assert!(
            self.conf_history
                .iter()
                .zip(self.conf_history.iter().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "configuration history out of order"
        );
        assert!(
            self.conf_history.last().is_some_and(
                |(at, conf)| *at <= self.log.applied() && *conf == self.tracker.conf_state()
            ),
            "the newest configuration in the history is not the applied one in force"
        );
        assert!(
            self.conf_history[0].0 <= self.log.snapshot().index,
            "the configuration at the snapshot point is forgotten"
        );
        // The hard state handed out to persist is a past value of the
        // current one: its commit index is not above the current one, and
        // within a term the vote handed out is never changed (paper §5.2:
        // one vote per term, kept across restarts).
        assert!(
            self.handed_hard_state.commit <= self.log.committed(),
            "the commit index went back"
        );
        #[cfg(feature = "planted-bugs")]
        let vote_twice_planted = self
            .config
            .has_planted_bug(crate::config::PlantedBug::VoteTwiceInOneTerm);
        #[cfg(not(feature = "planted-bugs"))]
        let vote_twice_planted = false;
        assert!(
            vote_twice_planted
                || self.handed_hard_state.term < self.term
                || self.handed_hard_state.vote.is_none()
                || self.handed_hard_state.vote == self.vote,
            "a second vote in term {}",
            self.term
        );
        // Roles: a candidate (and so a leader) voted for itself; nobody
        // campaigning knows a leader; only a leader queues reads.
        assert!(
            vote_twice_planted
                || !matches!(self.role, Role::Candidate | Role::Leader)
                || self.vote == Some(self.id()),
            "a {} that did not vote for itself",
            self.role
        );
        assert!(
            !matches!(self.role, Role::Candidate | Role::PreCandidate) || self.leader.is_none(),
            "a {} that knows a leader",
            self.role
        );
        assert!(
            leading || self.read_only.len() == 0,
            "reads queued outside leadership"
        );
        assert!(
            !leading || self.pending_conf_index <= self.log.last_index(),
            "a pending configuration change past the log"
        );
        // Timers: each is reset when it reaches its timeout.
        let base = self.config.election_timeout_ticks;
        assert!(
            (base..2 * base).contains(&self.randomized_election_timeout_ticks),
            "election timeout drawn outside [{base}, {})",
            2 * base
        );
        if leading {
            assert!(self.election_elapsed_ticks < base);
            assert!(self.heartbeat_elapsed_ticks < self.config.heartbeat_interval_ticks);
        } else {
            assert!(self.election_elapsed_ticks < self.randomized_election_timeout_ticks);
        }
    }

    /// [`RaftNode::check_invariants`] after every input, in debug builds.
    fn debug_check_invariants(&self) {
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Processes a message from another member. Messages that are stale,
    /// misaddressed or from a member this one cannot place are ignored with a
    /// log event; none can make the node panic or break safety.
    pub fn step(&mut self, message: Message) -> Result<(), Error> {
        let result = self.step_checked(message);
        self.debug_check_invariants();
        result
    }

    fn step_checked(&mut self, message: Message) -> Result<(), Error> {
        if message.to != self.id() {
            tracing::debug!(
                id = self.id(),
                to = message.to,
                "ignoring a message addressed to another member"
            );
            return Ok(());
        }
        if message.from == 0 || message.from == self.id() {
            tracing::debug!(
                id = self.id(),
                from = message.from,
                "ignoring a message with an impossible sender"
            );
            return Ok(());
        }
        if message.term == 0 {
            tracing::debug!(
                id = self.id(),
                from = message.from,
                "ignoring a message without a term"
            );
            return Ok(());
        }
        self.deliver(message)
    }

    /// Steps a message that passed the address checks, or one this member
    /// sent itself (its own vote, released after persistence).
    fn deliver(&mut self, message: Message) -> Result<(), Error> {
        if !self.step_term(&message) {
            return Ok(());
        }
        match self.role {
            Role::Leader => self.step_leader(message),
            Role::Candidate | Role::PreCandidate => self.step_candidate(message),
            Role::Follower => self.step_follower(message),
        }
    }

    /// Takes the next batch of effects; see [`Effects`] for what the caller
    /// must do with them.
    pub fn take_effects(&mut self) -> Effects {
        let persist = self.make_persist_request();
        let latest = self.outstanding.back().map(|o| o.ticket);
        self.outbox.seal(latest);
        let apply = self
            .log
            .take_entries_to_apply(self.config.max_message_bytes.saturating_mul(64));
        let effects = Effects {
            persist,
            messages: self.outbox.take_released(),
            apply,
            read_states: std::mem::take(&mut self.read_states),
            failed_reads: std::mem::take(&mut self.failed_reads),
        };
        self.debug_check_invariants();
        effects
    }

    /// Whether [`RaftNode::take_effects`] would return anything.
    pub fn has_effects(&self) -> bool {
        self.outbox.has_pending()
            || self.log.has_entries_to_persist()
            || self.hard_state() != self.handed_hard_state
            || self.log.committed().min(self.log.persisted()) > self.log.applying()
            || !self.read_states.is_empty()
            || !self.failed_reads.is_empty()
    }

    /// Sends a message that depends on this member's durable state.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        let message = Message {
            from: self.id(),
            to,
            term: self.term,
            body,
        };
        self.outbox.send_after_persist(message);
    }

    /// Sends a message that depends on no local durable state.
    fn send_now(&mut self, message: Message) {
        self.outbox.send_now(message);
    }

    /// Members other than this one that replicate the log.
    fn peers(&self) -> BTreeSet<NodeId> {
        let mut members: BTreeSet<NodeId> = self.tracker.members().collect();
        members.remove(&self.id());
        members
    }
}

#[cfg(test)]
mod bootstrap_tests {
    use super::*;

    #[test]
    fn a_bootstrapped_member_starts_from_the_configuration_at_index_one() {
        let node = RaftNode::new(
            Config::new(2),
            InitialState::bootstrap(ConfState::with_voters([1, 2, 3])),
        )
        .unwrap();
        assert_eq!(node.log().snapshot().index, 1);
        assert_eq!(node.log().committed(), 1);
        assert_eq!(node.log().applied(), 1);
        assert_eq!(node.term(), 1);
        assert_eq!(node.conf_state(), ConfState::with_voters([1, 2, 3]));
    }
}
