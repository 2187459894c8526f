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
use std::sync::Arc;

use bytes::Bytes;
use raftwood_kv::{ApplyResponse, CommittedEntry};
use raftwood_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition, Config, EntryPayload,
    Error, Index, InitialState, Message, MessageBody, NodeId, RaftNode, ReadOnlyMode, Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::{DurableState, SimDisk};
use crate::etcd;
use crate::linearizability::{Operation, check_history};
use crate::model::{Command, Key, KvOp, KvOutput};
use crate::network::{Fate, Network, PartitionKind};
use crate::options::SimOptions;
use crate::report::RunReport;
use crate::safety::SafetyChecker;
use crate::state_machine::{MemberKv, SnapshotImage};
use server_member::ServerMember;

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
        snapshot_data: Option<Arc<SnapshotImage>>,
    },
    PersistDone {
        node: NodeId,
        incarnation: u64,
    },
    /// Server-loop mode: the apply side runs what is queued.
    ApplyRun {
        node: NodeId,
        incarnation: u64,
    },
    /// Server-loop mode: the drive loop runs one round of what is queued.
    LoopRound {
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
    /// The core, driven by the simulator itself (raft-core mode).
    raft: Option<RaftNode>,
    /// The server's drive loop around the core (server-loop mode).
    /// Invariant: at most one of `raft` and `server` is set.
    server: Option<Box<ServerMember>>,
    status: Status,
    /// Bumped at every crash, so events of a previous life are ignored.
    incarnation: u64,
    disk: SimDisk,
    /// The state machine: `raftwood-kv` on the member's own filesystem.
    kv: MemberKv,
    /// The index the state machine `kv` reflects. Not the core's applied
    /// index: the core names a snapshot from the leader applied as soon as
    /// it arrives, before its data is durable and installed here, so reads
    /// must wait for this one. Equals `kv`'s applied index, except after
    /// the bootstrap snapshot (index 1, no data) and while down (0).
    kv_applied: Index,
    tick_interval_us: u64,
    /// Client writes proposed here: index → (term, client).
    proposals: BTreeMap<Index, (Term, ClientRef)>,
    /// Reads waiting for confirmation: context → (client, key).
    reads_waiting: BTreeMap<Bytes, (ClientRef, Key)>,
    /// Confirmed reads waiting for the state machine to reach their index.
    reads_ready: Vec<(Index, ClientRef, Key)>,
    /// Snapshot data that arrived with InstallSnapshot, by (index, term).
    incoming_snapshots: BTreeMap<(Index, Term), Arc<SnapshotImage>>,
    /// Events that arrived while paused, replayed on resume.
    deferred: Vec<Event>,
    /// Last (role, term) traced.
    last_traced: (Role, Term),
}

impl SimNode {
    /// The member's core, whichever mode drives it; `None` while down.
    fn core(&self) -> Option<&RaftNode> {
        match &self.server {
            Some(server) => Some(server.drive.node()),
            None => self.raft.as_ref(),
        }
    }
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
    /// Server-loop mode: the membership change waiting for its answer.
    membership_pending: Option<server_membership::PendingMembershipChange>,
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
    /// Writes acknowledged by a member that did not lead when the client's
    /// request reached it (server-loop mode: forwarded inside raft).
    forwarded_writes_acknowledged: usize,
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
    /// The state digest each compaction point had, with the member that
    /// first recorded it: every member that compacts at the same index
    /// must hold the same state.
    digests_at: BTreeMap<Index, (NodeId, u32)>,
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
            membership_pending: None,
            network,
            partition_generation: 0,
            clients: Vec::new(),
            next_attempt: 1,
            history: Vec::new(),
            history_requests: Vec::new(),
            first_applied_us: BTreeMap::new(),
            safety: SafetyChecker::new(),
            faults: BTreeMap::new(),
            forwarded_writes_acknowledged: 0,
            phase: Phase::Faults,
            liveness_deadline_us: 0,
            probe: None,
            probes_sent: 0,
            liveness_failure: None,
            extra_violations: Vec::new(),
            leader_commits: BTreeMap::new(),
            digests_at: BTreeMap::new(),
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
            let bootstrap = raftwood_raft::InitialState::bootstrap(conf_state.clone());
            let durable = DurableState {
                hard_state: bootstrap.hard_state,
                snapshot: bootstrap.snapshot,
                snapshot_data: Arc::default(),
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
        if self.options.server_loop {
            // The settings the server's start-up gives its core (node.rs).
            config.heartbeat_interval_ticks = 1;
            config.pre_vote = true;
            config.check_quorum = true;
            config.read_only_mode = ReadOnlyMode::Safe;
        }
        if let Some(configure) = self.options.configure {
            configure(&mut config);
        }
        let disk = SimDisk::new(durable);
        // A new member's store is empty: in the raft-core mode the bootstrap
        // snapshot (index 1) holds no data; in the server-loop mode it holds
        // the initial members' registry, as the server's does. A member
        // joining later starts from index 0.
        let mut kv = MemberKv::new();
        let opened = if self.options.server_loop {
            kv.open_server_layout().map(|_| ())
        } else {
            kv.open()
        };
        let bootstrapped = opened.and_then(|()| {
            if self.options.server_loop {
                kv.bootstrap_new_cluster(&disk.durable().snapshot)
            } else {
                Ok(())
            }
        });
        if let Err(error) = bootstrapped {
            self.safety_violation(format!("member {id}: {error}"));
        }
        let kv_applied = disk.durable().snapshot.index;
        let mut node = SimNode {
            config: config.clone(),
            raft: None,
            server: None,
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
        let initial = node.disk.initial_state();
        if self.options.server_loop {
            self.nodes.insert(id, node);
            self.server_start(id, config, initial);
        } else {
            match RaftNode::new(config, initial) {
                Ok(raft) => {
                    node.raft = Some(raft);
                    node.status = Status::Up;
                }
                Err(error) => self
                    .safety_violation(format!("member {id} cannot start from its disk: {error}")),
            }
            self.nodes.insert(id, node);
        }
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

mod clients;
mod events;
mod faults;
mod liveness;
mod server_loop;
mod server_member;
mod server_membership;
