//! The simulation: members, clients, network and disks in one thread,
//! driven by a queue of timed events. One generator (ChaCha8, seeded by
//! the run's seed) makes every random choice, and events at the same time
//! run in the order they were scheduled, so a seed replays exactly.
//!
//! A run has two phases. In the fault phase clients issue operations while
//! faults are injected. In the liveness phase faults stop (links heal,
//! crashed members restart, paused ones resume, drops and duplicates stop)
//! and the cluster must elect a leader, commit a new entry and converge
//! within a bound. Safety is checked after every event; the client history
//! is checked for linearizability at the end.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use raftwood_raft::{
    ConfChange, ConfChangeKind, Config, EntryPayload, Error, Index, Message, MessageBody, NodeId,
    RaftNode, Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{DurableState, SimDisk};
use crate::kv::{Command, Key, KvOp, KvOutput, KvStore};
use crate::linearizability::{Operation, check_history};
use crate::network::{Fate, Network, PartitionKind};
use crate::options::SimOptions;
use crate::report::RunReport;
use crate::safety::SafetyChecker;

/// A client's request in flight: which client, which attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientRef {
    client: usize,
    attempt: u64,
}

/// A member's answer to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Done; for a write, where it was committed.
    Done {
        output: KvOutput,
        position: Option<(Index, Term)>,
    },
    /// Not the leader; try this one.
    NotLeader(Option<NodeId>),
    /// Definitely not done; try again.
    Retry,
}

#[derive(Debug, Clone)]
enum Event {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver {
        message: Message,
        snapshot_data: Option<KvStore>,
    },
    PersistDone {
        node: NodeId,
        incarnation: u64,
    },
    ClientRequest {
        node: NodeId,
        from: ClientRef,
        command: Command,
    },
    ClientReply {
        to: ClientRef,
        reply: Reply,
    },
    ClientWake {
        client: usize,
    },
    ClientResend {
        client: usize,
        attempt: u64,
    },
    ClientTimeout {
        client: usize,
        request_id: u64,
    },
    Restart {
        node: NodeId,
        incarnation: u64,
    },
    Resume {
        node: NodeId,
        incarnation: u64,
    },
    Heal {
        generation: u64,
    },
    NextFault,
    EndFaultPhase,
    LivenessCheck,
}

#[derive(Debug)]
struct Scheduled {
    time_us: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time_us, self.sequence) == (other.time_us, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest event runs first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_us, other.sequence).cmp(&(self.time_us, self.sequence))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Up,
    Paused,
    Down,
    /// Out of the configuration and stopped for good.
    Stopped,
}

/// One member: the core plus what a server keeps around it.
#[derive(Debug)]
struct SimNode {
    config: Config,
    raft: Option<RaftNode>,
    status: Status,
    /// Bumped at every crash, so events of a previous life are ignored.
    incarnation: u64,
    disk: SimDisk,
    kv: KvStore,
    /// The index the state machine `kv` reflects. Not the core's applied
    /// index: the core names a snapshot from the leader applied as soon as
    /// it arrives, before its data is durable and installed here, so reads
    /// must wait for this one.
    kv_applied: Index,
    tick_interval_us: u64,
    /// Client writes proposed here: index → (term, client).
    proposals: BTreeMap<Index, (Term, ClientRef)>,
    /// Reads waiting for confirmation: context → (client, key).
    reads_waiting: BTreeMap<Bytes, (ClientRef, Key)>,
    /// Confirmed reads waiting for the state machine to reach their index.
    reads_ready: Vec<(Index, ClientRef, Key)>,
    /// Snapshot data that arrived with InstallSnapshot, by (index, term).
    incoming_snapshots: BTreeMap<(Index, Term), KvStore>,
    /// Events that arrived while paused, replayed on resume.
    deferred: Vec<Event>,
    /// Last (role, term) traced.
    last_traced: (Role, Term),
}

#[derive(Debug, Clone, Copy)]
struct PendingOp {
    history_index: usize,
    command: Command,
    attempt: u64,
    target: NodeId,
}

#[derive(Debug)]
struct Client {
    believed_leader: NodeId,
    current: Option<PendingOp>,
    issued: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Faults,
    Liveness,
    Done,
}

/// Request ids at or above this are the liveness probe's.
const PROBE_REQUEST_BASE: u64 = u64::MAX - (1 << 20);
/// The key the liveness probe writes (never used by clients).
const PROBE_KEY: Key = u64::MAX;
/// Safety stop: no run processes more events than this.
const MAX_EVENTS: u64 = 5_000_000;

/// One simulated run.
#[derive(Debug)]
pub struct Simulation {
    options: SimOptions,
    rng: ChaCha8Rng,
    now_us: u64,
    queue: BinaryHeap<Scheduled>,
    next_sequence: u64,
    events: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    next_node_id: NodeId,
    network: Network,
    partition_generation: u64,
    clients: Vec<Client>,
    next_attempt: u64,
    history: Vec<Operation>,
    /// The request id of each history entry.
    history_requests: Vec<u64>,
    /// When a member first applied each client command, by request id.
    first_applied_us: BTreeMap<u64, u64>,
    safety: SafetyChecker,
    faults: BTreeMap<&'static str, u64>,
    phase: Phase,
    liveness_deadline_us: u64,
    /// The liveness probe: (index, term) where it was proposed.
    probe: Option<(Index, Term)>,
    probes_sent: u64,
    liveness_failure: Option<String>,
    /// Per member: (incarnation, term, commit index) when last seen
    /// leading, for the commit-rule and durability checks.
    leader_commits: BTreeMap<NodeId, (u64, Term, Index, raftwood_raft::ConfState)>,
    /// Violations the simulator itself found (a member that cannot
    /// restart from its disk, an error from the core).
    extra_violations: Vec<String>,
    trace: Option<String>,
}

/// Runs one seed to the end and reports what it found.
pub fn run(options: SimOptions) -> RunReport {
    let mut simulation = Simulation::new(options);
    simulation.run_to_end();
    simulation.into_report()
}

impl Simulation {
    /// Sets up the cluster, the clients and the first events.
    pub fn new(options: SimOptions) -> Simulation {
        let rng = ChaCha8Rng::seed_from_u64(options.seed);
        let network = Network::new(options.network);
        let trace = options.trace.then(String::new);
        let mut simulation = Simulation {
            rng,
            now_us: 0,
            queue: BinaryHeap::new(),
            next_sequence: 0,
            events: 0,
            nodes: BTreeMap::new(),
            next_node_id: 1,
            network,
            partition_generation: 0,
            clients: Vec::new(),
            next_attempt: 1,
            history: Vec::new(),
            history_requests: Vec::new(),
            first_applied_us: BTreeMap::new(),
            safety: SafetyChecker::new(),
            faults: BTreeMap::new(),
            phase: Phase::Faults,
            liveness_deadline_us: 0,
            probe: None,
            probes_sent: 0,
            liveness_failure: None,
            extra_violations: Vec::new(),
            leader_commits: BTreeMap::new(),
            trace,
            options,
        };
        simulation.bootstrap();
        simulation
    }

    fn bootstrap(&mut self) {
        let voters: Vec<NodeId> = (1..=self.options.initial_voters as NodeId).collect();
        self.next_node_id = voters.len() as NodeId + 1;
        let conf_state = raftwood_raft::ConfState::with_voters(voters.iter().copied());
        for &id in &voters {
            let durable = DurableState {
                hard_state: raftwood_raft::HardState {
                    term: 1,
                    vote: None,
                    commit: 1,
                },
                snapshot: raftwood_raft::SnapshotMeta {
                    index: 1,
                    term: 1,
                    conf_state: conf_state.clone(),
                },
                snapshot_data: KvStore::default(),
                entries: Vec::new(),
            };
            self.add_node(id, durable);
        }
        for client in 0..self.options.clients {
            let believed_leader = voters[self.rng.random_range(0..voters.len())];
            self.clients.push(Client {
                believed_leader,
                current: None,
                issued: 0,
            });
            let delay = self.rng.random_range(0..50_000);
            self.schedule(delay, Event::ClientWake { client });
        }
        let first_fault = self.fault_delay();
        self.schedule(first_fault, Event::NextFault);
        self.schedule(self.options.fault_phase_us, Event::EndFaultPhase);
    }

    /// Starts a member with `durable` on its disk.
    fn add_node(&mut self, id: NodeId, durable: DurableState) {
        let skew = self.options.tick_skew;
        let factor = if skew > 0.0 {
            self.rng.random_range(1.0 - skew..=1.0 + skew)
        } else {
            1.0
        };
        let tick_interval_us = ((self.options.tick_interval_us as f64) * factor).max(1.0) as u64;
        let mut config = Config::new(id);
        config.pre_vote = self.options.pre_vote;
        config.check_quorum = self.options.check_quorum;
        config.max_message_entries = self.options.max_message_entries;
        config.seed = self.options.seed.wrapping_mul(1_000_003).wrapping_add(id);
        if let Some(configure) = self.options.configure {
            configure(&mut config);
        }
        let disk = SimDisk::new(durable);
        let kv = disk.durable().snapshot_data.clone();
        let kv_applied = disk.durable().snapshot.index;
        let mut node = SimNode {
            config: config.clone(),
            raft: None,
            status: Status::Down,
            incarnation: 0,
            disk,
            kv,
            kv_applied,
            tick_interval_us,
            proposals: BTreeMap::new(),
            reads_waiting: BTreeMap::new(),
            reads_ready: Vec::new(),
            incoming_snapshots: BTreeMap::new(),
            deferred: Vec::new(),
            last_traced: (Role::Follower, 0),
        };
        match RaftNode::new(config, node.disk.initial_state()) {
            Ok(raft) => {
                node.raft = Some(raft);
                node.status = Status::Up;
            }
            Err(error) => {
                self.safety_violation(format!("member {id} cannot start from its disk: {error}"))
            }
        }
        self.nodes.insert(id, node);
        let first_tick = self.rng.random_range(0..tick_interval_us);
        self.schedule(
            first_tick,
            Event::Tick {
                node: id,
                incarnation: 0,
            },
        );
        self.after_step(id);
    }

    fn schedule(&mut self, delay_us: u64, event: Event) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.queue.push(Scheduled {
            time_us: self.now_us + delay_us,
            sequence,
            event,
        });
    }

    fn trace(&mut self, text: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let line = text();
            trace.push_str(&format!(
                "{:>10}.{:03}ms {line}\n",
                self.now_us / 1000,
                self.now_us % 1000
            ));
        }
    }

    fn safety_violation(&mut self, text: String) {
        self.trace(|| format!("VIOLATION {text}"));
        if self.extra_violations.len() < 32 {
            self.extra_violations.push(text);
        }
    }
}

// The run loop and event dispatch.
impl Simulation {
    /// Processes events until the run ends: the liveness phase succeeded
    /// (or ran out of time) and every client is idle, or a safety property
    /// broke.
    pub fn run_to_end(&mut self) {
        while let Some(scheduled) = self.queue.pop() {
            self.now_us = scheduled.time_us;
            self.events += 1;
            self.handle(scheduled.event);
            if self.has_violation() || self.phase == Phase::Done || self.events >= MAX_EVENTS {
                break;
            }
        }
        if self.events >= MAX_EVENTS && self.liveness_failure.is_none() {
            self.liveness_failure = Some(format!("no end after {MAX_EVENTS} events"));
        }
    }

    fn has_violation(&self) -> bool {
        !self.safety.violations().is_empty() || !self.extra_violations.is_empty()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver {
                message,
                snapshot_data,
            } => self.on_deliver(message, snapshot_data),
            Event::PersistDone { node, incarnation } => self.on_persist_done(node, incarnation),
            Event::ClientRequest {
                node,
                from,
                command,
            } => self.on_client_request(node, from, command),
            Event::ClientReply { to, reply } => self.on_client_reply(to, reply),
            Event::ClientWake { client } => self.client_start(client),
            Event::ClientResend { client, attempt } => self.client_resend(client, attempt),
            Event::ClientTimeout { client, request_id } => {
                self.on_client_timeout(client, request_id)
            }
            Event::Restart { node, incarnation } => self.on_restart(node, incarnation),
            Event::Resume { node, incarnation } => self.on_resume(node, incarnation),
            Event::Heal { generation } => {
                if generation == self.partition_generation && self.network.is_partitioned() {
                    self.network.heal();
                    self.trace(|| "heal".to_owned());
                }
            }
            Event::NextFault => self.inject_fault(),
            Event::EndFaultPhase => self.begin_liveness_phase(),
            Event::LivenessCheck => self.liveness_check(),
        }
    }

    /// Holds an event for a paused member; returns whether it did.
    fn defer_if_paused(&mut self, node: NodeId, event: &Event) -> bool {
        match self.nodes.get_mut(&node) {
            Some(n) if n.status == Status::Paused => {
                n.deferred.push(event.clone());
                true
            }
            _ => false,
        }
    }

    fn is_up(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.status == Status::Up && n.raft.is_some())
    }

    fn on_tick(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || matches!(node.status, Status::Down | Status::Stopped)
        {
            return;
        }
        let interval = node.tick_interval_us;
        if node.status == Status::Up
            && let Some(raft) = &mut node.raft
        {
            raft.tick();
        }
        self.schedule(
            interval,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.after_step(id);
    }

    fn on_deliver(&mut self, message: Message, snapshot_data: Option<KvStore>) {
        let (from, to) = (message.from, message.to);
        let event = Event::Deliver {
            message,
            snapshot_data,
        };
        if self.defer_if_paused(to, &event) {
            return;
        }
        let Event::Deliver {
            message,
            snapshot_data,
        } = event
        else {
            return;
        };
        let is_snapshot = matches!(message.body, MessageBody::InstallSnapshot { .. });
        if !self.is_up(to) || !self.network.connected(from, to) {
            self.trace(|| format!("drop {from}->{to} {}", message.body.kind_name()));
            if is_snapshot {
                self.report_snapshot(from, to, false);
            }
            return;
        }
        self.trace(|| format!("deliver {from}->{to} {}", describe_message(&message)));
        let result = {
            let Some(node) = self.nodes.get_mut(&to) else {
                return;
            };
            if let (MessageBody::InstallSnapshot { snapshot }, Some(data)) =
                (&message.body, snapshot_data)
            {
                node.incoming_snapshots
                    .insert((snapshot.index, snapshot.term), data);
            }
            match &mut node.raft {
                Some(raft) => raft.step(message),
                None => Ok(()),
            }
        };
        if let Err(error) = result {
            self.core_error(to, "step", &error);
        }
        if is_snapshot {
            self.report_snapshot(from, to, true);
        }
        self.after_step(to);
    }

    fn report_snapshot(&mut self, from: NodeId, to: NodeId, success: bool) {
        if let Some(node) = self.nodes.get_mut(&from)
            && node.status == Status::Up
            && let Some(raft) = &mut node.raft
        {
            raft.report_snapshot(to, success);
            self.after_step(from);
        }
    }

    fn core_error(&mut self, id: NodeId, what: &str, error: &Error) {
        self.safety_violation(format!("member {id}: the core refused {what}: {error}"));
    }

    fn on_persist_done(&mut self, id: NodeId, incarnation: u64) {
        let event = Event::PersistDone {
            node: id,
            incarnation,
        };
        if self.defer_if_paused(id, &event) {
            return;
        }
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.status != Status::Up {
            return;
        }
        let Some(write) = node.disk.complete_oldest() else {
            return;
        };
        if let Some(snapshot) = &write.request.snapshot {
            // The state machine becomes the snapshot's; proposals it covers
            // have an unknown fate here (clients time out).
            node.kv = write.snapshot_data.clone().unwrap_or_default();
            node.kv_applied = snapshot.index;
            let index = snapshot.index;
            node.proposals.retain(|&at, _| at > index);
        }
        let ticket = write.request.ticket;
        let result = match &mut node.raft {
            Some(raft) => raft.on_persisted(ticket),
            None => Ok(()),
        };
        self.trace(|| format!("persisted {id} {ticket:?}"));
        if let Err(error) = result {
            self.core_error(id, "on_persisted", &error);
        }
        self.after_step(id);
    }

    /// Carries out a member's effects until it has none, then checks
    /// safety.
    fn after_step(&mut self, id: NodeId) {
        for _ in 0..64 {
            let has_effects = self
                .nodes
                .get(&id)
                .and_then(|n| n.raft.as_ref())
                .is_some_and(RaftNode::has_effects);
            if !has_effects {
                break;
            }
            self.process_effects(id);
        }
        self.observe(id);
    }

    fn observe(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(raft) = &node.raft else {
            return;
        };
        let now = (raft.role(), raft.term());
        let changed = now != node.last_traced;
        node.last_traced = now;
        self.safety.observe_member(id, node.incarnation, raft);
        if changed {
            self.trace(|| format!("member {id} is {:?} in term {}", now.0, now.1));
        }
        if self.options.check_leader_commits {
            self.check_leader_commit(id);
        }
    }

    /// When a leader advances its commit index: the new commit point is
    /// an entry of the leader's own term (the commit rule, paper §5.4.2;
    /// earlier entries are committed only through it), and it is durable
    /// on a majority of the voters (of both halves of a joint
    /// configuration), as the simulated disks show.
    fn check_leader_commit(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let Some(raft) = &node.raft else {
            return;
        };
        if raft.role() != Role::Leader {
            self.leader_commits.remove(&id);
            return;
        }
        let conf = raft.conf_state();
        let now = (node.incarnation, raft.term(), raft.log().committed());
        let before = self
            .leader_commits
            .insert(id, (now.0, now.1, now.2, conf.clone()));
        let Some(before) = before else {
            return;
        };
        if (before.0, before.1) != (now.0, now.1) || now.2 <= before.2 {
            return;
        }
        // The commit was computed under the configuration before this step
        // or, if the step applied a change, under the new one.
        let previous_conf = before.3;
        let commit = now.2;
        let Ok(term) = raft.log().term(commit) else {
            return;
        };
        let mut problems = Vec::new();
        if term != raft.term() {
            problems.push(format!(
                "commit rule: leader {id} of term {} advanced its commit index to {commit}, an entry of term {term}",
                raft.term()
            ));
        }
        let holds = |voter: &NodeId| {
            self.nodes
                .get(voter)
                .is_some_and(|n| n.disk.durable().holds(commit, term))
        };
        let quorum_holds = |conf: &raftwood_raft::ConfState| {
            [&conf.voters, &conf.voters_outgoing]
                .into_iter()
                .filter(|voters| !voters.is_empty())
                .all(|voters| voters.iter().filter(|v| holds(v)).count() * 2 > voters.len())
        };
        if !quorum_holds(&conf) && !quorum_holds(&previous_conf) {
            let durable: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.disk.durable().holds(commit, term))
                .map(|(&v, _)| v)
                .collect();
            problems.push(format!(
                "durability: leader {id} committed {term}/{commit} but only {durable:?} hold it durably (voters {:?})",
                conf.voters
            ));
        }
        for problem in problems {
            self.safety_violation(problem);
        }
    }

    fn process_effects(&mut self, id: NodeId) {
        let fsync_delay = self
            .rng
            .random_range(self.options.fsync_min_us..=self.options.fsync_max_us);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(raft) = &mut node.raft else {
            return;
        };
        let effects = raft.take_effects();
        let incarnation = node.incarnation;
        if let Some(request) = effects.persist {
            self.safety.observe_persist(id, raft, &request);
            let mut missing_snapshot = None;
            let snapshot_data = match &request.snapshot {
                Some(meta) => {
                    let data = node.incoming_snapshots.remove(&(meta.index, meta.term));
                    if data.is_none() {
                        missing_snapshot = Some(meta.index);
                    }
                    Some(data.unwrap_or_default())
                }
                None => None,
            };
            node.disk
                .submit(request, snapshot_data, self.now_us, fsync_delay);
            if let Some(index) = missing_snapshot {
                self.safety_violation(format!(
                    "member {id} must install snapshot {index} whose data never arrived"
                ));
            }
            self.schedule(
                fsync_delay,
                Event::PersistDone {
                    node: id,
                    incarnation,
                },
            );
        }
        for message in effects.messages {
            self.send_message(id, message);
        }
        if !effects.apply.is_empty() {
            self.apply_entries(id, effects.apply);
        }
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        for read in effects.read_states {
            if let Some((client, key)) = node.reads_waiting.remove(&read.context) {
                node.reads_ready.push((read.index, client, key));
                if let Some(trace) = &mut self.trace {
                    trace.push_str(&format!(
                        "           member {id} read for client {} attempt {} confirmed at index {}\n",
                        client.client, client.attempt, read.index
                    ));
                }
            }
        }
        let mut retries = Vec::new();
        for context in effects.failed_reads {
            if let Some((client, _)) = node.reads_waiting.remove(&context) {
                retries.push(client);
            }
        }
        for client in retries {
            self.reply(client, Reply::Retry);
        }
        self.serve_ready_reads(id);
    }

    fn send_message(&mut self, from: NodeId, message: Message) {
        let to = message.to;
        let snapshot_data = match &message.body {
            MessageBody::InstallSnapshot { snapshot } => {
                let data = self.nodes.get(&from).and_then(|node| {
                    let durable = node.disk.durable();
                    if durable.snapshot.index == snapshot.index
                        && durable.snapshot.term == snapshot.term
                    {
                        Some(durable.snapshot_data.clone())
                    } else {
                        node.incoming_snapshots
                            .get(&(snapshot.index, snapshot.term))
                            .cloned()
                    }
                });
                if data.is_none() {
                    // The sender cannot produce the data: the transport
                    // fails the send.
                    self.trace(|| format!("no snapshot data at {from} for {to}"));
                    self.report_snapshot(from, to, false);
                    return;
                }
                data
            }
            _ => None,
        };
        match self.network.send(from, to, &mut self.rng) {
            Fate::Dropped => {
                if snapshot_data.is_some() {
                    self.report_snapshot(from, to, false);
                }
            }
            Fate::Delivered(delays) => {
                for delay in delays {
                    self.schedule(
                        delay,
                        Event::Deliver {
                            message: message.clone(),
                            snapshot_data: snapshot_data.clone(),
                        },
                    );
                }
            }
        }
    }

    fn apply_entries(&mut self, id: NodeId, entries: Vec<raftwood_raft::Entry>) {
        let mut replies = Vec::new();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut last = 0;
        let member_term = node.raft.as_ref().map_or(0, RaftNode::term);
        for entry in &entries {
            self.safety.observe_apply(id, member_term, entry);
            last = entry.index;
            node.kv_applied = entry.index;
            let output = match &entry.payload {
                EntryPayload::Command(bytes) => match Command::decode(bytes) {
                    Some(command) => {
                        self.first_applied_us
                            .entry(command.request_id)
                            .or_insert(self.now_us);
                        Some(node.kv.apply(&command.op))
                    }
                    None => None,
                },
                EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
            };
            // Proposals at or below this index are decided now.
            let decided: Vec<Index> = node
                .proposals
                .range(..=entry.index)
                .map(|(&i, _)| i)
                .collect();
            for index in decided {
                let Some((term, client)) = node.proposals.remove(&index) else {
                    continue;
                };
                if index != entry.index {
                    // Passed over (a snapshot covered it): fate unknown here;
                    // the client times out.
                    continue;
                }
                match output {
                    Some(output) if term == entry.term => {
                        replies.push((
                            client,
                            Reply::Done {
                                output,
                                position: Some((index, term)),
                            },
                        ));
                    }
                    _ => replies.push((client, Reply::Retry)),
                }
            }
        }
        let result = match &mut node.raft {
            Some(raft) => raft.on_applied(last),
            None => Ok(()),
        };
        if let Err(error) = result {
            self.core_error(id, "on_applied", &error);
        }
        for (client, reply) in replies {
            self.reply(client, reply);
        }
        self.maybe_compact(id);
    }

    fn maybe_compact(&mut self, id: NodeId) {
        let threshold = self.options.compaction_threshold_entries;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(raft) = &mut node.raft else {
            return;
        };
        let applied = node.kv_applied;
        if applied != raft.log().applied() || applied < raft.log().snapshot().index + threshold {
            return;
        }
        // Refused while the applied index is not yet durable; tried again
        // after the next apply.
        if let Ok(meta) = raft.compact_log(applied) {
            node.disk.write_compaction(meta, node.kv.clone());
            self.trace(|| format!("member {id} compacted its log to {applied}"));
        }
    }

    fn serve_ready_reads(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let applied = node.kv_applied;
        let mut replies = Vec::new();
        node.reads_ready.retain(|&(index, client, key)| {
            if index <= applied {
                replies.push((
                    client,
                    Reply::Done {
                        output: KvOutput::Value(node.kv.get(key)),
                        position: None,
                    },
                ));
                false
            } else {
                true
            }
        });
        for (client, reply) in replies {
            self.reply(client, reply);
        }
    }

    fn reply(&mut self, to: ClientRef, reply: Reply) {
        self.trace(|| {
            format!(
                "reply to client {} attempt {}: {reply:?}",
                to.client, to.attempt
            )
        });
        let delay = self.network.latency_us(&mut self.rng);
        self.schedule(delay, Event::ClientReply { to, reply });
    }
}

fn describe_message(message: &Message) -> String {
    match &message.body {
        MessageBody::AppendRequest {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } => format!(
            "App t{} prev {prev_log_term}/{prev_log_index} entries {} commit {commit}",
            message.term,
            entries.len()
        ),
        MessageBody::AppendResponse { index, reject } => format!(
            "AppResp t{} index {index}{}",
            message.term,
            if reject.is_some() { " reject" } else { "" }
        ),
        MessageBody::VoteResponse { reject } | MessageBody::PreVoteResponse { reject } => format!(
            "{} t{} {}",
            message.body.kind_name(),
            message.term,
            if *reject { "reject" } else { "grant" }
        ),
        MessageBody::InstallSnapshot { snapshot } => format!(
            "Snap t{} {}/{}",
            message.term, snapshot.term, snapshot.index
        ),
        body => format!("{} t{}", body.kind_name(), message.term),
    }
}

// Clients.
impl Simulation {
    fn random_member(&mut self) -> NodeId {
        let live: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.status != Status::Stopped)
            .map(|(&id, _)| id)
            .collect();
        if live.is_empty() {
            return 1;
        }
        live[self.rng.random_range(0..live.len())]
    }

    fn client_start(&mut self, client: usize) {
        if self.phase != Phase::Faults {
            return;
        }
        let Some(state) = self.clients.get(client) else {
            return;
        };
        if state.current.is_some() {
            return;
        }
        let key = self.rng.random_range(0..self.options.keys);
        let value = ((client as u64 + 1) << 32) | (state.issued + 1);
        let op = match self.rng.random_range(0..10) {
            0..=2 => KvOp::Put { key, value },
            3..=6 => KvOp::Get { key },
            7 => KvOp::Delete { key },
            _ => {
                // Expect a value the key plausibly has: the last one read
                // or written by anyone, or absent.
                let expected = self
                    .history
                    .iter()
                    .rev()
                    .filter(|o| o.op.key() == key)
                    .find_map(|o| match (o.op, o.output) {
                        (_, Some(KvOutput::Value(v))) => Some(v),
                        (KvOp::Put { value, .. }, _) => Some(Some(value)),
                        _ => None,
                    })
                    .flatten();
                KvOp::CompareAndSwap {
                    key,
                    expected,
                    new: value,
                }
            }
        };
        let request_id = ((client as u64) << 40) | (state.issued + 1);
        let command = Command { request_id, op };
        let history_index = self.history.len();
        self.history.push(Operation {
            client: client as u64,
            op,
            invoke_us: self.now_us,
            complete_us: None,
            output: None,
        });
        self.history_requests.push(request_id);
        let target = state.believed_leader;
        if let Some(state) = self.clients.get_mut(client) {
            state.issued += 1;
            state.current = Some(PendingOp {
                history_index,
                command,
                attempt: 0,
                target,
            });
        }
        self.trace(|| format!("client {client} invokes {op} (request {request_id})"));
        let timeout = self.options.client_timeout_us;
        self.schedule(timeout, Event::ClientTimeout { client, request_id });
        self.client_send(client);
    }

    /// Sends the client's current operation to the member it believes leads.
    fn client_send(&mut self, client: usize) {
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        let Some(state) = self.clients.get_mut(client) else {
            return;
        };
        let target = state.believed_leader;
        let Some(pending) = &mut state.current else {
            return;
        };
        pending.attempt = attempt;
        pending.target = target;
        let command = pending.command;
        let delay = self.network.latency_us(&mut self.rng);
        self.schedule(
            delay,
            Event::ClientRequest {
                node: target,
                from: ClientRef { client, attempt },
                command,
            },
        );
    }

    fn client_resend(&mut self, client: usize, attempt: u64) {
        let still_current = self
            .clients
            .get(client)
            .and_then(|c| c.current)
            .is_some_and(|p| p.attempt == attempt);
        if still_current {
            self.client_send(client);
        }
    }

    fn on_client_request(&mut self, id: NodeId, from: ClientRef, command: Command) {
        let event = Event::ClientRequest {
            node: id,
            from,
            command,
        };
        if self.defer_if_paused(id, &event) {
            return;
        }
        if !self.is_up(id) {
            return;
        }
        self.trace(|| {
            format!(
                "member {id} receives {} from client {} attempt {}",
                command.op, from.client, from.attempt
            )
        });
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(raft) = &mut node.raft else {
            return;
        };
        let reply = if let KvOp::Get { key } = command.op {
            let context = Bytes::copy_from_slice(&from.attempt.to_le_bytes());
            match raft.read_index(context.clone()) {
                Ok(()) => {
                    node.reads_waiting.insert(context, (from, key));
                    None
                }
                Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
                Err(_) => Some(Reply::Retry),
            }
        } else {
            match raft.propose(command.encode()) {
                Ok(position) => {
                    node.proposals.insert(position.index, (position.term, from));
                    None
                }
                Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
                Err(_) => Some(Reply::Retry),
            }
        };
        if let Some(reply) = reply {
            self.reply(from, reply);
        }
        self.after_step(id);
    }

    fn on_client_reply(&mut self, to: ClientRef, reply: Reply) {
        let Some(state) = self.clients.get(to.client) else {
            return;
        };
        let Some(pending) = state.current else {
            return;
        };
        if pending.attempt != to.attempt {
            return;
        }
        let backoff = self.rng.random_range(1_000..20_000);
        match reply {
            Reply::Done { output, position } => {
                if let Some(op) = self.history.get_mut(pending.history_index) {
                    op.complete_us = Some(self.now_us);
                    op.output = Some(output);
                }
                if let Some((index, term)) = position {
                    self.safety.observe_acknowledged(index, term);
                }
                self.trace(|| {
                    let at = position.map_or(String::new(), |(i, t)| format!(" at {t}/{i}"));
                    format!(
                        "client {} completes {} -> {output}{at}",
                        to.client, pending.command.op
                    )
                });
                if let Some(state) = self.clients.get_mut(to.client) {
                    state.current = None;
                }
                let think = self.rng.random_range(0..20_000);
                self.schedule(think, Event::ClientWake { client: to.client });
            }
            Reply::NotLeader(hint) => {
                let next = match hint {
                    Some(leader) if leader != pending.target => leader,
                    _ => self.random_member(),
                };
                if let Some(state) = self.clients.get_mut(to.client) {
                    state.believed_leader = next;
                }
                self.schedule(
                    backoff,
                    Event::ClientResend {
                        client: to.client,
                        attempt: pending.attempt,
                    },
                );
            }
            Reply::Retry => {
                self.schedule(
                    backoff,
                    Event::ClientResend {
                        client: to.client,
                        attempt: pending.attempt,
                    },
                );
            }
        }
    }

    fn on_client_timeout(&mut self, client: usize, request_id: u64) {
        let Some(state) = self.clients.get(client) else {
            return;
        };
        let Some(pending) = state.current else {
            return;
        };
        if pending.command.request_id != request_id {
            return;
        }
        // The outcome stays unknown: complete_us and output stay None.
        self.trace(|| format!("client {client} gives up on {}", pending.command.op));
        let next = self.random_member();
        if let Some(state) = self.clients.get_mut(client) {
            state.current = None;
            state.believed_leader = next;
        }
        self.schedule(0, Event::ClientWake { client });
    }

    fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.current.is_none())
    }
}

// Faults.
impl Simulation {
    fn fault_delay(&mut self) -> u64 {
        let mean = self.options.mean_fault_interval_us;
        self.rng.random_range(mean / 4..=mean * 2)
    }

    fn count_fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// Members that are running (up or paused), ascending.
    fn running(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.status, Status::Up | Status::Paused))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The member that leads the highest term, if it is up.
    fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.status == Status::Up)
            .filter_map(|(&id, n)| n.raft.as_ref().map(|r| (r, id)))
            .filter(|(r, _)| r.role() == Role::Leader)
            .max_by_key(|(r, _)| r.term())
            .map(|(_, id)| id)
    }

    fn inject_fault(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let w = self.options.fault_weights;
        let weights = [
            w.crash,
            w.pause,
            w.partition,
            w.membership,
            w.transfer,
            w.clock_jump,
        ];
        let total: u32 = weights.iter().sum();
        if total > 0 {
            let mut draw = self.rng.random_range(0..total);
            let mut choice = 0;
            for (index, weight) in weights.iter().enumerate() {
                if draw < *weight {
                    choice = index;
                    break;
                }
                draw -= weight;
            }
            match choice {
                0 => self.fault_crash(),
                1 => self.fault_pause(),
                2 => self.fault_partition(),
                3 => self.fault_membership(),
                4 => self.fault_transfer(),
                _ => self.fault_clock_jump(),
            }
        }
        let delay = self.fault_delay();
        self.schedule(delay, Event::NextFault);
    }

    fn pick(&mut self, candidates: &[NodeId]) -> Option<NodeId> {
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }

    /// Half the time the leader (the member whose failure matters most),
    /// otherwise any member in `candidates`.
    fn pick_preferring_leader(&mut self, candidates: &[NodeId]) -> Option<NodeId> {
        if self.rng.random_bool(0.5)
            && let Some(leader) = self.current_leader()
            && candidates.contains(&leader)
        {
            return Some(leader);
        }
        self.pick(candidates)
    }

    fn fault_crash(&mut self) {
        let running = self.running();
        let Some(id) = self.pick_preferring_leader(&running) else {
            return;
        };
        let torn = self.options.torn_writes && self.rng.random_bool(0.5);
        let torn_entries = torn.then(|| self.rng.random_range(0..4));
        let downtime = self.rng.random_range(1_000..self.options.max_downtime_us);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let damage = node.disk.crash(torn_entries);
        node.raft = None;
        node.status = Status::Down;
        node.incarnation += 1;
        node.kv = KvStore::default();
        node.kv_applied = 0;
        node.proposals.clear();
        node.reads_waiting.clear();
        node.reads_ready.clear();
        node.incoming_snapshots.clear();
        node.deferred.clear();
        let incarnation = node.incarnation;
        self.count_fault("crash");
        if damage.torn_entries > 0 {
            self.count_fault("torn-write");
        }
        self.trace(|| {
            format!(
                "crash {id}: {} writes lost, {} torn entries kept; down for {downtime}us",
                damage.lost_writes, damage.torn_entries
            )
        });
        self.schedule(
            downtime,
            Event::Restart {
                node: id,
                incarnation,
            },
        );
    }

    fn on_restart(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.status != Status::Down {
            return;
        }
        let mut config = node.config.clone();
        // A new life draws new election timeouts.
        config.seed = config
            .seed
            .wrapping_add(incarnation.wrapping_mul(0x9e37_79b9));
        let (initial, term_raised) = node.disk.recover();
        match RaftNode::new(config, initial) {
            Ok(raft) => {
                node.raft = Some(raft);
                node.status = Status::Up;
                node.kv = node.disk.durable().snapshot_data.clone();
                node.kv_applied = node.disk.durable().snapshot.index;
                let interval = node.tick_interval_us;
                if term_raised {
                    self.count_fault("torn-write-term-raised-at-recovery");
                }
                self.trace(|| format!("restart {id}"));
                self.schedule(
                    interval,
                    Event::Tick {
                        node: id,
                        incarnation,
                    },
                );
                self.after_step(id);
            }
            Err(error) => {
                self.safety_violation(format!("member {id} cannot restart from its disk: {error}"))
            }
        }
    }

    fn fault_pause(&mut self) {
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.status == Status::Up)
            .map(|(&id, _)| id)
            .collect();
        let Some(id) = self.pick(&up) else {
            return;
        };
        let duration = self.rng.random_range(10_000..1_000_000);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.status = Status::Paused;
        let incarnation = node.incarnation;
        self.count_fault("pause");
        self.trace(|| format!("pause {id} for {duration}us"));
        self.schedule(
            duration,
            Event::Resume {
                node: id,
                incarnation,
            },
        );
    }

    fn on_resume(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.status != Status::Paused {
            return;
        }
        node.status = Status::Up;
        let deferred = std::mem::take(&mut node.deferred);
        self.trace(|| format!("resume {id} ({} deferred events)", deferred.len()));
        for event in deferred {
            self.schedule(0, event);
        }
    }

    fn fault_partition(&mut self) {
        const KINDS: [PartitionKind; 5] = [
            PartitionKind::Isolate,
            PartitionKind::Split,
            PartitionKind::Bridge,
            PartitionKind::OneWayOut,
            PartitionKind::OneWayIn,
        ];
        let kind = KINDS[self.rng.random_range(0..KINDS.len())];
        let members: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.status != Status::Stopped)
            .map(|(&id, _)| id)
            .collect();
        let focus = if self.rng.random_bool(0.5) {
            self.current_leader()
        } else {
            None
        };
        let description = self.network.partition(kind, &members, focus, &mut self.rng);
        self.partition_generation += 1;
        let generation = self.partition_generation;
        let duration = self.rng.random_range(20_000..self.options.max_partition_us);
        self.count_fault(kind.name());
        self.trace(|| format!("partition: {description} for {duration}us"));
        self.schedule(duration, Event::Heal { generation });
    }

    fn fault_transfer(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let voters: Vec<NodeId> = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raft.as_ref())
            .map(|r| {
                r.conf_state()
                    .voters
                    .into_iter()
                    .filter(|&v| v != leader)
                    .collect()
            })
            .unwrap_or_default();
        let Some(to) = self.pick(&voters) else {
            return;
        };
        let result = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.raft.as_mut())
            .map(|r| r.transfer_leader(to));
        if let Some(Ok(())) = result {
            self.count_fault("leader-transfer");
            self.trace(|| format!("leader {leader} transfers leadership to {to}"));
            self.after_step(leader);
        }
    }

    fn fault_clock_jump(&mut self) {
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.status == Status::Up)
            .map(|(&id, _)| id)
            .collect();
        let Some(id) = self.pick(&up) else {
            return;
        };
        let ticks = self.rng.random_range(1..=20);
        if let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
            for _ in 0..ticks {
                raft.tick();
            }
        }
        self.count_fault("clock-jump");
        self.trace(|| format!("clock of {id} jumps {ticks} ticks"));
        self.after_step(id);
    }

    /// One membership step through the leader: promote a learner, else add
    /// a learner (a new, empty member), else remove a voter.
    fn fault_membership(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(conf) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raft.as_ref())
            .map(RaftNode::conf_state)
        else {
            return;
        };
        if conf.is_joint() {
            return;
        }
        let (change, kind, new_member) = if let Some(&learner) = conf.learners.iter().next() {
            (
                ConfChange::single(ConfChangeKind::AddVoter, learner),
                "membership-promote",
                None,
            )
        } else if conf.voters.len() < self.options.max_voters {
            let id = self.next_node_id;
            (
                ConfChange::single(ConfChangeKind::AddLearner, id),
                "membership-add-learner",
                Some(id),
            )
        } else {
            let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
            let Some(removed) = self.pick(&voters) else {
                return;
            };
            (
                ConfChange::single(ConfChangeKind::RemoveNode, removed),
                "membership-remove-voter",
                None,
            )
        };
        if conf.voters.len() <= 3 && kind == "membership-remove-voter" {
            return;
        }
        let result = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.raft.as_mut())
            .map(|r| r.propose_conf_change(change.clone()));
        if let Some(Ok(position)) = result {
            self.count_fault(kind);
            self.trace(|| format!("leader {leader} proposes {change:?} at {}", position.index));
            if let Some(id) = new_member {
                self.next_node_id += 1;
                self.add_node(id, DurableState::default());
            }
            self.after_step(leader);
        }
    }
}

// The liveness phase and the end of the run.
impl Simulation {
    fn begin_liveness_phase(&mut self) {
        self.phase = Phase::Liveness;
        self.liveness_deadline_us = self.now_us + self.options.liveness_bound_us;
        self.network.heal();
        self.network.set_faulty(false);
        self.trace(|| "faults stop: heal, restart, resume".to_owned());
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let (status, incarnation) = match self.nodes.get(&id) {
                Some(n) => (n.status, n.incarnation),
                None => continue,
            };
            match status {
                Status::Down => self.on_restart(id, incarnation),
                Status::Paused => self.on_resume(id, incarnation),
                Status::Up | Status::Stopped => {}
            }
        }
        self.schedule(50_000, Event::LivenessCheck);
    }

    /// Every 50 ms of the liveness phase: is there a leader, has the probe
    /// committed, have all members converged?
    fn liveness_check(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        if self.now_us > self.liveness_deadline_us {
            let state = self.describe_cluster();
            self.liveness_failure = Some(format!(
                "no convergence within {} ms after faults stopped:\n{state}",
                self.options.liveness_bound_us / 1000
            ));
            self.phase = Phase::Done;
            return;
        }
        self.schedule(50_000, Event::LivenessCheck);
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some((conf, leader_log)) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raft.as_ref())
            .map(|r| (r.conf_state(), (r.log().committed(), r.term())))
        else {
            return;
        };
        let probe_ok = self.probe.is_some_and(|(index, term)| {
            self.nodes
                .get(&leader)
                .and_then(|n| n.raft.as_ref())
                .is_some_and(|r| r.log().term(index) == Ok(term) && r.log().applied() >= index)
        });
        if !probe_ok {
            let leader_term = leader_log.1;
            let probe_is_current = self.probe.is_some_and(|(index, term)| {
                term == leader_term
                    && self
                        .nodes
                        .get(&leader)
                        .and_then(|n| n.raft.as_ref())
                        .is_some_and(|r| r.log().term(index) == Ok(term))
            });
            if !probe_is_current {
                self.propose_probe(leader);
            }
            return;
        }
        // The probe is applied on the leader, so its configuration is final
        // (no change is proposed after faults stop, and every earlier one
        // is committed): members outside it are stopped for good.
        let members = conf.members();
        for (id, node) in &mut self.nodes {
            if !members.contains(id) && node.status != Status::Stopped && !conf.is_joint() {
                node.status = Status::Stopped;
                node.raft = None;
                node.incarnation += 1;
            }
        }
        // Converged: every member has applied the leader's commit index and
        // holds the same state machine.
        let Some(target) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raft.as_ref())
            .map(|r| r.log().committed())
        else {
            return;
        };
        let reference = self.nodes.get(&leader).map(|n| n.kv.clone());
        let converged = members.iter().all(|id| {
            self.nodes.get(id).is_some_and(|n| {
                n.raft
                    .as_ref()
                    .is_some_and(|r| r.log().applied() >= target && r.log().committed() >= target)
                    && n.kv_applied >= target
                    && Some(&n.kv) == reference.as_ref()
            })
        });
        if converged && self.clients_idle() {
            for id in &members {
                if let Some(raft) = self.nodes.get(id).and_then(|n| n.raft.as_ref()) {
                    self.safety.check_acknowledged_in(*id, raft);
                }
            }
            self.trace(|| format!("converged at index {target} with leader {leader}"));
            self.phase = Phase::Done;
        }
    }

    fn propose_probe(&mut self, leader: NodeId) {
        self.probes_sent += 1;
        let command = Command {
            request_id: PROBE_REQUEST_BASE + self.probes_sent,
            op: KvOp::Put {
                key: PROBE_KEY,
                value: self.probes_sent,
            },
        };
        let result = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.raft.as_mut())
            .map(|r| r.propose(command.encode()));
        if let Some(Ok(position)) = result {
            self.probe = Some((position.index, position.term));
            self.trace(|| {
                format!(
                    "liveness probe proposed at {}/{}",
                    position.term, position.index
                )
            });
            self.after_step(leader);
        }
    }

    fn describe_cluster(&self) -> String {
        let mut text = String::new();
        for (id, node) in &self.nodes {
            match &node.raft {
                Some(raft) => text.push_str(&format!(
                    "  member {id}: {:?} term {} role {:?} leader {:?} commit {} applied {} last {} config {:?}\n",
                    node.status,
                    raft.term(),
                    raft.role(),
                    raft.leader(),
                    raft.log().committed(),
                    raft.log().applied(),
                    raft.log().last_index(),
                    raft.conf_state().voters,
                )),
                None => text.push_str(&format!("  member {id}: {:?}\n", node.status)),
            }
        }
        text
    }

    /// The history to check. The simulator knows the committed log, which
    /// narrows writes whose outcome the client never learned: one whose
    /// command a member applied took effect by the first such apply (its
    /// result stays unknown); once the cluster has converged, one whose
    /// command was never applied never took effect, and is left out.
    /// Returns the history and how many operations were narrowed.
    fn history_to_check(&self) -> (Vec<Operation>, usize) {
        let converged = self.phase == Phase::Done && self.liveness_failure.is_none();
        let mut narrowed = 0;
        let mut history = Vec::with_capacity(self.history.len());
        for (op, request) in self.history.iter().zip(&self.history_requests) {
            if op.complete_us.is_some() || op.op.is_read() {
                history.push(*op);
                continue;
            }
            match self.first_applied_us.get(request) {
                Some(&applied_us) => {
                    narrowed += 1;
                    history.push(Operation {
                        complete_us: Some(applied_us.max(op.invoke_us)),
                        ..*op
                    });
                }
                None if converged => narrowed += 1,
                None => history.push(*op),
            }
        }
        (history, narrowed)
    }

    /// Checks the client history and builds the report.
    pub fn into_report(self) -> RunReport {
        let (history, unknown_narrowed) = self.history_to_check();
        let check = check_history(&history, self.options.budget);
        let mut safety_violations: Vec<String> = self.safety.violations().to_vec();
        safety_violations.extend(self.extra_violations.iter().cloned());
        let unknown_outcomes = self.history.iter().filter(|o| o.output.is_none()).count();
        RunReport {
            seed: self.options.seed,
            simulated_us: self.now_us,
            events: self.events,
            faults: self.faults,
            operations: self.history.len(),
            unknown_outcomes,
            unknown_narrowed,
            operations_checked: check.operations_checked,
            acknowledged_writes: self.safety.acknowledged_len(),
            committed_entries: self.safety.committed_len(),
            safety_violations,
            liveness_failure: self.liveness_failure,
            verdict: check.verdict,
            trace: self.trace,
            history: self.history,
        }
    }
}
