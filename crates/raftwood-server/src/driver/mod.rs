//! The drive loop: owns the raft core, feeds it ticks, peer messages,
//! proposals and read requests, and carries out its effects — persistence
//! on the persistence thread, messages through a [`MessageSink`], entries
//! on the apply thread, confirmed reads back to their readers.
//!
//! The loop itself touches no disk and no socket: the log storage is a
//! [`LogStorage`], the network a [`MessageSink`], and time arrives as
//! [`LoopEvent::Tick`], so the same loop can be driven by a simulator.

mod membership;
mod persist;
mod reads;
mod sink;
mod waiters;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use parking_lot::Mutex;
use raftwood_raft::{
    ConfChange, Effects, Entry, Index, Message, MessageBody, NodeId, PersistTicket, Proposal,
    RaftNode, Role, Term,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

pub use persist::{
    LogStorage, PendingSnapshot, PersistBatcher, PersistWork, SnapshotFiles, SnapshotStep,
    WrittenBatch, complete_snapshot, needs_sync,
};
pub use reads::{ReadBatcher, ReadError, ReadReply};
pub use sink::MessageSink;
pub use waiters::{MembershipRefusal, ProposeError, ProposeResult, Waiters};

use crate::timings::{RoundTimer, StageTimings};

/// Most committed entries that may wait for the state machine before new
/// proposals are refused (etcd's `maxGapBetweenApplyAndCommitIndex`).
pub const MAX_COMMITTED_UNAPPLIED_ENTRIES: u64 = 5_000;

/// An input to the drive loop.
#[derive(Debug)]
pub enum LoopEvent {
    /// One heartbeat interval passed.
    Tick,
    /// Messages from peers.
    Messages(Vec<Message>),
    /// Messages from peers, holding one of the peer connections' permits
    /// (`transport::route_inbound`) until the loop has stepped them: what
    /// peers send waits on TCP, not in this loop's queue, when the loop
    /// falls behind.
    PeerMessages(Vec<Message>, OwnedSemaphorePermit),
    /// A client's write: the encoded state-machine request. On a follower
    /// it is forwarded to the leader inside raft and answered when this
    /// member applies it, recognised by `id`.
    Propose {
        /// The request's id (`InternalRequest.id`, as encoded in
        /// `request`): unique among this member's requests across restarts
        /// (`request_id.rs`). 0 means none: such a request is proposed only
        /// on the leader, never forwarded.
        id: u64,
        /// The request, as the state machine decodes it.
        request: Bytes,
        /// Where the outcome goes once the entry is applied.
        reply: oneshot::Sender<ProposeResult>,
    },
    /// A client's linearizable read asks which index it must wait for.
    ReadIndex {
        /// Where the index goes.
        reply: ReadReply,
    },
    /// The persistence thread made these durable, in order.
    Persisted(Vec<PersistTicket>),
    /// The apply thread applied up to this index.
    Applied(Index),
    /// A peer could not be reached.
    Unreachable(NodeId),
    /// The apply thread checkpointed the state machine at `index` into
    /// `temp_dir`: the log may be compacted up to it once it is complete.
    SnapshotTaken {
        /// The applied index the checkpoint holds.
        index: Index,
        /// The unfinished snapshot directory.
        temp_dir: PathBuf,
    },
    /// A snapshot from the leader arrived complete and durable in `dir`.
    SnapshotReceived {
        /// The received directory.
        dir: PathBuf,
        /// The snapshot's index.
        index: Index,
        /// The `InstallSnapshot` message to step once it is installed.
        message: Message,
    },
    /// Streaming a snapshot to `peer` ended.
    SnapshotSent {
        /// The follower.
        peer: NodeId,
        /// Whether every chunk was written.
        ok: bool,
    },
    /// Leadership should move to this member (etcd's MoveLeader).
    TransferLeader(NodeId),
    /// A membership change to propose if this member leads (MemberAdd,
    /// MemberRemove, MemberPromote); its context is the registry change,
    /// an encoded `InternalRequest`.
    ChangeMembership {
        /// The change.
        change: ConfChange,
        /// Where the outcome goes once the change is applied.
        reply: oneshot::Sender<ProposeResult>,
    },
    /// A storage error: the member must stop (fail-stop).
    Fatal(String),
    /// The member applied its own removal from the cluster: it stops, for
    /// good (its data directory cannot rejoin).
    Removed(String),
    /// Stop the loop.
    Shutdown,
}

/// Work for the apply thread.
#[derive(Debug)]
pub enum ApplyWork {
    /// Committed entries, in log order.
    Entries(Vec<Entry>),
    /// Replace the state machine with the snapshot in `dir` (received from
    /// the leader, fully durable), then hand `message` to the raft core.
    Install {
        /// The received snapshot directory.
        dir: PathBuf,
        /// The snapshot's log index.
        index: Index,
        /// The `InstallSnapshot` message.
        message: Message,
    },
}

/// A proposal as a round collects it: request id, encoded request, and
/// where its outcome goes.
type PendingProposal = (u64, Bytes, oneshot::Sender<ProposeResult>);

/// Whether the loop goes on after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Keep going.
    Continue,
    /// Shutdown was asked for, or a fatal error stopped the member.
    Stop,
}

/// What the loop publishes after every round, for status RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaftStatus {
    /// This member.
    pub id: NodeId,
    /// The leader this member knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: Term,
    /// The commit index. Updated without notifying receivers: see
    /// `DriveLoop::after_events`.
    pub commit: Index,
    /// The applied index the core knows of (updated like `commit`).
    pub applied: Index,
    /// Whether this member leads.
    pub is_leader: bool,
    /// Whether a storage error stopped the member.
    pub failed: bool,
    /// Whether the member stopped because it was removed from the cluster.
    pub removed: bool,
}

/// Channels the loop sends work to.
#[derive(Debug)]
pub struct LoopOutputs {
    /// Peer messages.
    pub network: Arc<dyn MessageSink>,
    /// The persistence thread.
    pub persist: std_mpsc::Sender<PersistWork>,
    /// The apply thread.
    pub apply: std_mpsc::Sender<ApplyWork>,
    /// Proposers waiting for their entries (shared with the apply thread).
    pub waiters: Arc<Mutex<Waiters>>,
    /// Published status.
    pub status: watch::Sender<RaftStatus>,
}

/// The drive loop's state.
#[derive(Debug)]
pub struct DriveLoop {
    node: RaftNode,
    outputs: LoopOutputs,
    reads: ReadBatcher,
    last_leader: Option<NodeId>,
    failed: Option<String>,
    /// Set when the member applied its own removal.
    removed: bool,
    /// Entries kept in the log behind a snapshot.
    catch_up_entries: u64,
    /// With `--log-timings-seconds`: times each proposal round from
    /// propose to commit. The clock is read (by the timer) only when this
    /// is set, never in the simulator, which drives the loop with
    /// simulated time.
    round_timer: Option<RoundTimer>,
    /// Ticks seen since the loop started: the clock of forwarded
    /// proposals' deadlines.
    ticks: u64,
    /// Ticks a forwarded proposal may wait to be applied here.
    forward_timeout_ticks: u64,
    /// The `batch_id` of the next batch of proposals handed to the core.
    /// Invariant: above every batch id this member used before, in this
    /// life or an earlier one (see [`DriveLoop::with_forwarding`]).
    next_batch_id: u64,
    /// When each peer was last heard from (membership changes' checks).
    activity: membership::PeerActivity,
}

/// The proposal-forwarding settings of a [`DriveLoop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSettings {
    /// The first batch id this life uses; it must exceed every batch id of
    /// the member's earlier lives (the leader drops a forwarded batch whose
    /// id is not above the last it took from the member in its term). The
    /// server starts from the wall clock in microseconds: a life uses one
    /// id per round, far fewer than one per microsecond.
    pub first_batch_id: u64,
    /// Ticks after which a forwarded proposal not yet applied here fails
    /// with `ProposeError::ForwardTimedOut`. The server uses its request
    /// timeout less two ticks, so the loop's specific answer comes just
    /// before the gRPC layer's generic one.
    pub timeout_ticks: u64,
}

impl DriveLoop {
    /// A loop around `node`.
    pub fn new(node: RaftNode, outputs: LoopOutputs, catch_up_entries: u64) -> DriveLoop {
        let node_election_ticks = node.config().election_timeout_ticks;
        DriveLoop {
            outputs,
            reads: ReadBatcher::default(),
            last_leader: None,
            failed: None,
            removed: false,
            catch_up_entries,
            round_timer: None,
            ticks: 0,
            // Long enough for a busy cluster to commit, short enough that a
            // dropped proposal's client hears back well within a minute.
            forward_timeout_ticks: u64::from(node_election_ticks) * 4,
            next_batch_id: 1,
            activity: membership::PeerActivity::default(),
            node,
        }
    }

    /// Sets how forwarded proposals are numbered and timed out.
    pub fn with_forwarding(mut self, settings: ForwardSettings) -> DriveLoop {
        self.next_batch_id = settings.first_batch_id.max(1);
        self.forward_timeout_ticks = settings.timeout_ticks.max(1);
        self
    }

    /// Records the leader's propose -> commit time of every proposal round
    /// in `timings`.
    pub fn with_timings(mut self, timings: Arc<StageTimings>) -> DriveLoop {
        self.round_timer = Some(RoundTimer::new(timings));
        self
    }

    /// Runs until shutdown or a fatal error, which is returned: every
    /// batch of events waiting in `events` is one [`DriveLoop::round`].
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<LoopEvent>) -> Option<String> {
        let mut batch = Vec::new();
        loop {
            if events.recv_many(&mut batch, 1024).await == 0 {
                break;
            }
            if self.round(std::mem::take(&mut batch)) == RoundOutcome::Stop {
                break;
            }
        }
        self.shut_down()
    }

    /// One round: steps every event into the core, proposes the round's
    /// proposals as one batch, starts a ReadIndex round for waiting reads,
    /// and hands the core's effects to the outputs. Synchronous and free of
    /// I/O of its own, so a simulator can call it with events of its
    /// choosing (the server's [`DriveLoop::run`] calls it once per batch of
    /// queued events).
    pub fn round(&mut self, events: Vec<LoopEvent>) -> RoundOutcome {
        let mut stop = false;
        let mut proposals = Vec::new();
        for event in events {
            match event {
                LoopEvent::Propose { id, request, reply } => proposals.push((id, request, reply)),
                LoopEvent::Shutdown => stop = true,
                other => self.handle(other),
            }
        }
        // Proposals of one round become one batch of entries: one append
        // message per follower, one write for the log.
        self.propose_all(proposals);
        self.after_events();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        if stop || self.failed.is_some() {
            RoundOutcome::Stop
        } else {
            RoundOutcome::Continue
        }
    }

    /// Ends the loop: waiting readers and proposers are told it stopped,
    /// and the published status says no leader is known. Returns the fatal
    /// error that stopped it, if any.
    pub fn shut_down(mut self) -> Option<String> {
        self.reads.stop();
        self.outputs.waiters.lock().stop();
        let mut status = *self.outputs.status.borrow();
        status.failed = self.failed.is_some();
        status.removed = self.removed;
        status.leader = None;
        status.is_leader = false;
        self.outputs.status.send_replace(status);
        self.failed
    }

    /// The raft core, to observe (a simulator checks its invariants after
    /// every round). Inputs go through [`DriveLoop::round`] only.
    pub fn node(&self) -> &RaftNode {
        &self.node
    }

    /// The fatal error that stopped the loop, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The loop's own invariants (the core checks its own), after a
    /// round.
    fn check_invariants(&self) {
        assert!(
            !self.removed || self.failed.is_some(),
            "a member that applied its removal has stopped"
        );
        assert_eq!(
            self.last_leader,
            self.node.leader(),
            "every leader change reached the read batcher"
        );
        self.activity.check_invariants(self.ticks);
    }

    fn handle(&mut self, event: LoopEvent) {
        let result = match event {
            LoopEvent::Tick => {
                self.node.tick();
                self.ticks += 1;
                self.reads.tick(self.read_round_timeout_ticks());
                let mut waiters = self.outputs.waiters.lock();
                if waiters.forwarded_count() > 0 {
                    waiters.expire_forwarded(self.ticks);
                }
                Ok(())
            }
            LoopEvent::Messages(messages) | LoopEvent::PeerMessages(messages, _) => {
                // A peer's frame holds its messages only: noted once.
                let mut last_from = None;
                for message in messages {
                    if last_from != Some(message.from) {
                        last_from = Some(message.from);
                        self.activity.heard(message.from, self.ticks);
                    }
                    if let Err(error) = self.node.step(message) {
                        tracing::debug!(%error, "message refused");
                    }
                }
                Ok(())
            }
            LoopEvent::ReadIndex { reply } => {
                self.reads.push(reply);
                Ok(())
            }
            LoopEvent::Persisted(tickets) => {
                // The persistence thread reports each batch's tickets in
                // the order it wrote them, which is the order issued.
                debug_assert!(
                    tickets.windows(2).all(|pair| pair[0] < pair[1]),
                    "persist tickets out of order: {tickets:?}"
                );
                tickets
                    .into_iter()
                    .try_for_each(|ticket| self.node.on_persisted(ticket))
            }
            LoopEvent::Applied(index) => self.node.on_applied(index),
            LoopEvent::Unreachable(peer) => {
                debug_assert_ne!(
                    peer,
                    self.node.id(),
                    "this member has no connection to itself"
                );
                self.node.report_unreachable(peer);
                Ok(())
            }
            LoopEvent::SnapshotTaken { index, temp_dir } => {
                self.snapshot_taken(index, temp_dir);
                Ok(())
            }
            LoopEvent::SnapshotReceived {
                dir,
                index,
                message,
            } => {
                // The router names the snapshot its message installs.
                debug_assert!(matches!(
                    &message.body,
                    MessageBody::InstallSnapshot { snapshot } if snapshot.index == index
                ));
                if self
                    .outputs
                    .apply
                    .send(ApplyWork::Install {
                        dir,
                        index,
                        message,
                    })
                    .is_err()
                {
                    self.failed = Some("the apply thread stopped".into());
                }
                Ok(())
            }
            LoopEvent::SnapshotSent { peer, ok } => {
                debug_assert_ne!(peer, self.node.id(), "a snapshot sent to itself");
                self.node.report_snapshot(peer, ok);
                Ok(())
            }
            LoopEvent::TransferLeader(to) => {
                if let Err(error) = self.node.transfer_leader(to) {
                    tracing::info!(%error, to, "leadership transfer refused");
                }
                Ok(())
            }
            LoopEvent::ChangeMembership { change, reply } => {
                self.change_membership(change, reply);
                Ok(())
            }
            LoopEvent::Removed(reason) => {
                tracing::error!("the member has been permanently removed from the cluster");
                tracing::info!("the data-dir used by this member must be removed");
                self.removed = true;
                self.failed = Some(reason);
                Ok(())
            }
            LoopEvent::Fatal(reason) => {
                tracing::error!(%reason, "stopping");
                self.failed = Some(reason);
                Ok(())
            }
            LoopEvent::Propose { .. } | LoopEvent::Shutdown => Ok(()),
        };
        if let Err(error) = result {
            // The core says the caller broke the contract (a completion out
            // of order): continuing could corrupt the log.
            tracing::error!(%error, "stopping: drive loop contract violated");
            self.failed = Some(error.to_string());
        }
    }

    /// Ticks a ReadIndex round may stay unanswered before it is given up
    /// and its readers start another: an election timeout, by which a
    /// leader that still leads has heard from a quorum many times.
    fn read_round_timeout_ticks(&self) -> u64 {
        u64::from(self.node.config().election_timeout_ticks).max(2)
    }

    /// The apply thread checkpointed the state machine at `index`: the log
    /// is compacted to it, keeping some entries behind it so that a
    /// follower a little behind catches up from the log, not with a whole
    /// snapshot (etcd keeps 5,000). The checkpoint holds state up to
    /// `index`, beyond the compaction point: applying is idempotent by
    /// index, so a member that installs it skips the entries it already
    /// holds.
    fn snapshot_taken(&mut self, index: Index, temp_dir: PathBuf) {
        // The apply thread reports a batch applied before the snapshot it
        // took after it, on the same channel.
        debug_assert!(
            index <= self.node.log().applied() || self.failed.is_some(),
            "snapshot at {index} past the applied index {}",
            self.node.log().applied()
        );
        let compact_to = index.saturating_sub(self.catch_up_entries);
        if compact_to <= self.node.log().snapshot().index {
            self.discard_snapshot(temp_dir);
            return;
        }
        match self.node.compact_log(compact_to) {
            Ok(meta) => {
                assert_eq!(meta.index, compact_to, "compacted to the index asked for");
                assert_eq!(
                    self.node.log().snapshot().index,
                    compact_to,
                    "the log now starts after the snapshot"
                );
                let work = PersistWork::Snapshot { meta, temp_dir };
                if self.outputs.persist.send(work).is_err() {
                    self.failed = Some("the persistence thread stopped".into());
                }
            }
            Err(error) => {
                tracing::warn!(%error, index, "snapshot not usable for compaction");
                self.discard_snapshot(temp_dir);
            }
        }
    }

    /// Has the persistence side delete an unfinished snapshot the log
    /// will not be compacted to (the loop touches no disk).
    fn discard_snapshot(&mut self, temp_dir: PathBuf) {
        if self
            .outputs
            .persist
            .send(PersistWork::Discard { temp_dir })
            .is_err()
        {
            self.failed = Some("the persistence thread stopped".into());
        }
    }

    fn propose_all(&mut self, proposals: Vec<PendingProposal>) {
        if proposals.is_empty() {
            return;
        }
        // Backpressure on the state machine (etcd's rule): when committed
        // entries wait too long to be applied, new proposals are refused
        // ("too many requests") instead of piling up in memory behind a
        // slow apply (for example an LSM write stall).
        let log = self.node.log();
        if log.committed().saturating_sub(log.applied()) > MAX_COMMITTED_UNAPPLIED_ENTRIES {
            for (_, _, reply) in proposals {
                let _ = reply.send(Err(ProposeError::Busy));
            }
            return;
        }
        // Only requests with an id can be recognised when applied here; the
        // others go through only if this member leads.
        let (proposals, anonymous): (Vec<_>, Vec<_>) =
            proposals.into_iter().partition(|(id, _, _)| *id != 0);
        if !anonymous.is_empty() {
            if self.node.role() == Role::Leader {
                self.propose_batch(anonymous);
            } else {
                let leader = self.node.leader();
                for (_, _, reply) in anonymous {
                    let _ = reply.send(Err(ProposeError::NotLeader { leader }));
                }
            }
        }
        if proposals.is_empty() {
            return;
        }
        if self.node.role() == Role::Leader {
            self.propose_batch(proposals);
            return;
        }
        // A follower's batch travels as one message: keep each under the
        // core's message size, as the leader's appends are.
        let limit = self.node.config().max_message_bytes;
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0u64;
        for proposal in proposals {
            let bytes = proposal.1.len() as u64;
            if !chunk.is_empty() && chunk_bytes + bytes > limit {
                self.propose_batch(std::mem::take(&mut chunk));
                chunk_bytes = 0;
            }
            chunk_bytes += bytes;
            chunk.push(proposal);
            // Over the limit only when one proposal alone is.
            debug_assert!(chunk.len() == 1 || chunk_bytes <= limit);
        }
        if !chunk.is_empty() {
            self.propose_batch(chunk);
        }
    }

    /// Hands one batch to the core: appended here if this member leads,
    /// otherwise sent to the leader (thesis §6.2), and the proposers wait
    /// by index or by request id accordingly.
    fn propose_batch(&mut self, proposals: Vec<PendingProposal>) {
        assert!(!proposals.is_empty(), "a batch holds at least one proposal");
        let count = proposals.len() as u64;
        let requests: Vec<Bytes> = proposals.iter().map(|(_, r, _)| r.clone()).collect();
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        match self.node.propose_batch(batch_id, requests) {
            Ok(Proposal::Forwarded { leader, term }) => {
                assert_eq!(term, self.node.term(), "forwarded in the current term");
                assert_ne!(leader, self.node.id(), "a member never forwards to itself");
                let deadline = self.ticks + self.forward_timeout_ticks;
                let mut waiters = self.outputs.waiters.lock();
                for (id, request, reply) in proposals {
                    debug_assert_eq!(
                        crate::request_id::request_id_of(&request),
                        Some(id),
                        "a proposal's id is the one its bytes carry"
                    );
                    waiters.register_forwarded(id, term, request, reply, deadline);
                }
            }
            Ok(Proposal::Appended(last)) => {
                // The batch is the log's new tail, in this leader's term,
                // past everything committed.
                let log = self.node.log();
                assert_eq!(last.index, log.last_index(), "appended at the tail");
                assert_eq!(last.term, self.node.term(), "appended in the current term");
                assert!(
                    last.index >= count && last.index - count >= log.committed(),
                    "{count} entries up to {} overlap the committed {}",
                    last.index,
                    log.committed()
                );
                if let Some(timer) = &mut self.round_timer {
                    timer.proposed(last.index);
                }
                let mut waiters = self.outputs.waiters.lock();
                let first = last.index + 1 - count;
                for (offset, (_, _, reply)) in proposals.into_iter().enumerate() {
                    waiters.register(first + offset as u64, last.term, reply);
                }
            }
            Err(error) => {
                let error = match error {
                    raftwood_raft::Error::NotLeader { leader } => {
                        ProposeError::NotLeader { leader }
                    }
                    _ => ProposeError::Busy,
                };
                for (_, _, reply) in proposals {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn after_events(&mut self) {
        let leader = self.node.leader();
        if leader != self.last_leader {
            self.reads.leader_changed();
            self.last_leader = leader;
        }
        let node = &mut self.node;
        self.reads.start_round(|context| node.read_index(context));
        while self.node.has_effects() {
            let effects = self.node.take_effects();
            self.carry_out(effects);
        }
        self.record_commits();
        let log = self.node.log();
        let published = *self.outputs.status.borrow();
        let status = RaftStatus {
            id: self.node.id(),
            leader: self.node.leader(),
            term: self.node.term(),
            commit: log.committed(),
            applied: log.applied(),
            is_leader: self.node.role() == Role::Leader,
            failed: self.failed.is_some(),
            removed: self.removed,
        };
        // Within one life the term, the commit index and the applied index
        // never go back, and nothing is applied that is not committed.
        assert!(status.term >= published.term, "the term went back");
        assert!(
            status.commit >= published.commit,
            "the commit index went back"
        );
        assert!(
            status.applied >= published.applied,
            "the applied index went back"
        );
        assert!(
            status.applied <= status.commit,
            "applied {} past committed {}",
            status.applied,
            status.commit
        );
        // The commit and applied indexes change nearly every round, and
        // nothing waits for them (readers `borrow` them): they are updated
        // without waking the receivers, which `changed` wakes only for a
        // new leader, term or failure. Waking them every round cost about
        // 1.5 % of a loaded member's CPU.
        self.outputs.status.send_if_modified(|current| {
            let wake = RaftStatus {
                commit: current.commit,
                applied: current.applied,
                ..status
            } != *current;
            *current = status;
            wake
        });
    }

    /// Times the proposal rounds the commit index has passed. A round
    /// whose entries a new leader overwrote is dropped with leadership.
    fn record_commits(&mut self) {
        let Some(timer) = &mut self.round_timer else {
            return;
        };
        if self.node.role() == Role::Leader {
            timer.committed(self.node.log().committed());
        } else {
            timer.leadership_lost();
        }
    }

    fn carry_out(&mut self, effects: Effects) {
        let Effects {
            persist,
            messages,
            apply,
            read_states,
            failed_reads,
        } = effects;
        if let Some(request) = &persist {
            // Handed out as the core holds them now: its current term, no
            // entry of a later one.
            assert!(
                request
                    .hard_state
                    .is_none_or(|h| h.term == self.node.term())
            );
            debug_assert!(request.entries.iter().all(|e| e.term <= self.node.term()));
            debug_assert!(
                request
                    .entries
                    .windows(2)
                    .all(|pair| pair[1].index == pair[0].index + 1),
                "entries to persist are consecutive"
            );
            debug_assert!(
                request
                    .snapshot
                    .as_ref()
                    .zip(request.entries.first())
                    .is_none_or(|(snapshot, first)| first.index > snapshot.index),
                "entries to persist follow their snapshot"
            );
        }
        if let Some(request) = persist
            && self
                .outputs
                .persist
                .send(PersistWork::Persist(request))
                .is_err()
        {
            self.failed = Some("the persistence thread stopped".into());
        }
        debug_assert!(
            messages
                .iter()
                .all(|m| m.from == self.node.id() && m.to != self.node.id()),
            "the loop sends only its own messages, never to itself"
        );
        if !messages.is_empty() {
            // Snapshots travel as a stream of chunks beside the messages.
            let (snapshots, messages): (Vec<Message>, Vec<Message>) = messages
                .into_iter()
                .partition(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }));
            for message in snapshots {
                self.outputs.network.send_snapshot(message);
            }
            if !messages.is_empty() {
                self.outputs.network.send(messages);
            }
        }
        if let (Some(first), Some(last)) = (apply.first(), apply.last()) {
            // Entries go to the state machine once each, in order, and only
            // once committed and durable here.
            let log = self.node.log();
            assert!(
                first.index > log.applied(),
                "entry {} applied twice",
                first.index
            );
            assert_eq!(last.index, log.applying(), "the last entry handed out");
            assert!(
                last.index <= log.committed().min(log.persisted()),
                "entry {} handed out before it is committed and durable",
                last.index
            );
            debug_assert!(
                apply
                    .windows(2)
                    .all(|pair| pair[1].index == pair[0].index + 1 && pair[1].term >= pair[0].term),
                "entries to apply are consecutive, terms never decreasing"
            );
        }
        if !apply.is_empty() && self.outputs.apply.send(ApplyWork::Entries(apply)).is_err() {
            self.failed = Some("the apply thread stopped".into());
        }
        for state in read_states {
            self.reads.confirmed(&state.context, state.index);
        }
        for context in failed_reads {
            self.reads.failed(&context);
        }
    }
}
