//! An in-memory cluster of [`RaftNode`]s driven step by step by a test.
//!
//! The driver plays the part a server plays around the pure core, with every
//! source of nondeterminism under the test's control:
//!
//! - **Disk.** Each node has a simulated [`Disk`] holding what completed
//!   persist requests wrote: hard state, snapshot (metadata and data) and
//!   entries. A request is only *queued* when the node hands it out
//!   ([`Cluster::process_ready`]); it reaches the disk when the test says so
//!   ([`Cluster::persist`]). [`Cluster::restart`] models a crash: queued
//!   requests and all volatile state are lost and the node is rebuilt from
//!   its disk with [`RaftNode::new`].
//! - **State machine.** Each node applies committed entries to a list
//!   ([`SimNode::applied`]) and reports them with
//!   [`RaftNode::on_applied`]. The state machine is volatile: after a
//!   restart it is the snapshot's data, and the core re-applies the rest.
//! - **Network.** Messages a node emits wait in the recipient's queue until
//!   the test delivers them ([`Cluster::deliver`]). Partitions and
//!   directional drop filters are applied at delivery: a message that may
//!   not pass is discarded then (and reported as dropped).
//! - **Snapshots.** When a leader emits `InstallSnapshot`, the driver attaches
//!   the leader's state-machine data at the snapshot index (the applied
//!   entries up to it). The receiver keeps the data until it persists the
//!   request carrying that snapshot, which installs it as its state
//!   machine. After delivering (or dropping) the message, the driver reports
//!   the outcome to the sender with [`RaftNode::report_snapshot`], as a
//!   streaming transport would.
//!
//! The driver also checks two safety properties after every operation and
//! records violations ([`Cluster::violations`]): at most one leader per term
//! (election safety, paper §5.2) and no two nodes applying different entries
//! at the same index (state machine safety, paper §5.4.3).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raftwood_raft::{
    ConfState, Config, Effects, Entry, Error, HardState, Index, InitialState, Message, MessageBody,
    NodeId, PersistRequest, RaftNode, Role, SnapshotMeta, Term,
};

/// What a node has durably: everything later persist requests wrote, in
/// order, once the test completed them.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The snapshot the log starts after.
    pub snapshot: SnapshotMeta,
    /// The state machine's content at `snapshot.index`: the entries applied
    /// up to there.
    pub snapshot_data: Vec<Entry>,
    /// Entries after the snapshot. Invariant: consecutive indexes from
    /// `snapshot.index + 1`.
    pub entries: Vec<Entry>,
}

impl Disk {
    /// Writes a completed persist request, in the order the core asks for:
    /// snapshot, entries (truncating a conflicting tail), hard state.
    fn write(&mut self, request: &PersistRequest, snapshot_data: Option<Vec<Entry>>) {
        if let Some(snapshot) = &request.snapshot {
            self.snapshot = snapshot.clone();
            self.snapshot_data = snapshot_data.unwrap_or_default();
            self.entries.clear();
        }
        if let Some(first) = request.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            assert_eq!(
                first.index,
                self.snapshot.index + 1 + self.entries.len() as u64,
                "persist request leaves a hole in the log on disk"
            );
            self.entries.extend(request.entries.iter().cloned());
        }
        if let Some(hard_state) = request.hard_state {
            self.hard_state = hard_state;
        }
    }

    /// The last index on disk.
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct SimNode {
    /// The core.
    pub raft: RaftNode,
    /// The settings it was started with (reused on restart).
    pub config: Config,
    /// What survived so far.
    pub disk: Disk,
    /// Persist requests handed out and not completed, oldest first.
    pub pending_persists: VecDeque<PersistRequest>,
    /// The state machine: every entry applied, in order (after a snapshot
    /// install, the snapshot's entries followed by later ones).
    pub applied: Vec<Entry>,
    /// Snapshot data received with `InstallSnapshot` messages, by
    /// (index, term), waiting for the persist request that installs it.
    pub incoming_snapshots: BTreeMap<(Index, Term), Vec<Entry>>,
}

impl SimNode {
    /// The data of this node's current snapshot at `meta`, to stream to a
    /// follower: the snapshot on disk if it is that one, else the applied
    /// prefix (the leader always has applied up to its snapshot).
    fn snapshot_data(&self, meta: &SnapshotMeta) -> Vec<Entry> {
        if self.disk.snapshot.index == meta.index && self.disk.snapshot.term == meta.term {
            return self.disk.snapshot_data.clone();
        }
        self.applied
            .iter()
            .filter(|e| e.index <= meta.index)
            .cloned()
            .collect()
    }
}

/// A message on the wire, with the snapshot data that travels beside an
/// `InstallSnapshot`.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The message.
    pub message: Message,
    /// For `InstallSnapshot`: the sender's state machine at the snapshot.
    pub snapshot_data: Option<Vec<Entry>>,
}

/// What happened to one message at delivery.
#[derive(Debug)]
pub enum Delivery {
    /// The recipient stepped it; `Err` is what `step` returned.
    Stepped(Message, Result<(), Error>),
    /// A partition or a drop filter discarded it.
    Dropped(Message),
}

/// Something [`Cluster::stabilize`] did, in order, for the test to print.
#[derive(Debug)]
pub enum Event {
    /// A node handed out effects (never empty).
    Ready(NodeId, Effects),
    /// A node's oldest persist request reached its disk.
    Persisted(NodeId, PersistRequest),
    /// Messages were delivered to a node (never empty).
    Delivered(NodeId, Vec<Delivery>),
    /// A completion report or the core failed.
    Error(NodeId, Error),
}

/// How a node starts.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// A member of a new cluster: its disk holds a snapshot at `index`
    /// (term 1 if `index > 0`, else 0) whose configuration is `conf_state`.
    Member {
        /// The initial configuration.
        conf_state: ConfState,
        /// The snapshot index the log starts after.
        index: Index,
    },
    /// A node joining an existing cluster: an empty disk and configuration;
    /// it learns everything from the leader.
    Joining,
}

/// The simulated cluster. Node ids are whatever the test adds; everything
/// is ordered by id so runs are deterministic.
#[derive(Debug, Default)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, SimNode>,
    /// Messages waiting for delivery, by recipient, in send order.
    in_flight: BTreeMap<NodeId, VecDeque<Envelope>>,
    /// Partition group of each node; nodes in different groups cannot talk.
    /// Nodes not named by the partition share group 0.
    partition: BTreeMap<NodeId, usize>,
    /// Directional links (from, to) whose messages are dropped.
    dropped_links: BTreeSet<(NodeId, NodeId)>,
    /// The leader seen in each term, for the election-safety check.
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// Safety violations found so far (never expected).
    violations: Vec<String>,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Adds a node with settings `config`, starting as `bootstrap` says.
    pub fn add_node(&mut self, config: Config, bootstrap: Bootstrap) -> Result<(), Error> {
        let id = config.id;
        assert!(!self.nodes.contains_key(&id), "node {id} already exists");
        let disk = match bootstrap {
            Bootstrap::Member { conf_state, index } => {
                let term = if index > 0 { 1 } else { 0 };
                Disk {
                    hard_state: HardState {
                        term,
                        vote: None,
                        commit: index,
                    },
                    snapshot: SnapshotMeta {
                        index,
                        term,
                        conf_state,
                    },
                    snapshot_data: Vec::new(),
                    entries: Vec::new(),
                }
            }
            Bootstrap::Joining => Disk::default(),
        };
        let raft = RaftNode::new(config.clone(), initial_state(&disk))?;
        let applied = disk.snapshot_data.clone();
        self.nodes.insert(
            id,
            SimNode {
                raft,
                config,
                disk,
                pending_persists: VecDeque::new(),
                applied,
                incoming_snapshots: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Every node id, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Whether node `id` exists.
    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Node `id`. Panics if it does not exist (a bug in the test).
    pub fn node(&self, id: NodeId) -> &SimNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Node `id`, mutably, for calling the core directly. Call
    /// [`Cluster::check_safety`] afterwards if the call can change roles.
    pub fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The core of node `id`.
    pub fn raft(&self, id: NodeId) -> &RaftNode {
        &self.node(id).raft
    }

    /// The core of node `id`, mutably.
    pub fn raft_mut(&mut self, id: NodeId) -> &mut RaftNode {
        &mut self.node_mut(id).raft
    }

    /// The entries node `id` has applied, in order.
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        &self.node(id).applied
    }

    /// The hard state of node `id` as it is in memory (maybe not durable).
    pub fn hard_state(&self, id: NodeId) -> HardState {
        self.raft(id).hard_state()
    }

    /// The disk of node `id`.
    pub fn disk(&self, id: NodeId) -> &Disk {
        &self.node(id).disk
    }

    /// The entries held in memory by node `id` (after its snapshot).
    pub fn log_entries(&self, id: NodeId) -> Vec<Entry> {
        let log = self.raft(id).log();
        (log.first_index()..=log.last_index())
            .filter_map(|i| log.entry(i).cloned())
            .collect()
    }

    /// Ticks node `id` `ticks` times.
    pub fn tick(&mut self, id: NodeId, ticks: u32) {
        for _ in 0..ticks {
            self.raft_mut(id).tick();
        }
        self.check_safety();
    }

    /// Ticks node `id` until it starts an election (its role or term
    /// changes: a follower becomes a (pre-)candidate, a candidate starts a
    /// new term), at most twice the election timeout. Returns whether it
    /// did. A leader, a learner, or a node with an unapplied configuration
    /// change never does.
    pub fn campaign(&mut self, id: NodeId) -> bool {
        let limit = 2 * self.node(id).config.election_timeout_ticks;
        let before = (self.raft(id).role(), self.raft(id).term());
        if before.0 == Role::Leader {
            return false;
        }
        for _ in 0..limit {
            // A pre-candidate that times out again starts a new pre-vote
            // round without changing role or term: its new requests show.
            let had_effects = self.raft(id).has_effects();
            self.raft_mut(id).tick();
            let restarted = !had_effects && self.raft(id).has_effects();
            if restarted || (self.raft(id).role(), self.raft(id).term()) != before {
                self.check_safety();
                return true;
            }
        }
        self.check_safety();
        false
    }

    /// Takes node `id`'s effects and carries them out: queues the persist
    /// request, puts the messages on the wire, applies the entries (and
    /// reports them applied). Returns the effects for printing; empty if
    /// there were none.
    pub fn process_ready(&mut self, id: NodeId) -> Result<Effects, Error> {
        let node = self.node_mut(id);
        let effects = node.raft.take_effects();
        if let Some(request) = &effects.persist {
            node.pending_persists.push_back(request.clone());
        }
        let mut outgoing = Vec::new();
        for message in &effects.messages {
            let snapshot_data = match &message.body {
                MessageBody::InstallSnapshot { snapshot } => Some(node.snapshot_data(snapshot)),
                _ => None,
            };
            outgoing.push(Envelope {
                message: message.clone(),
                snapshot_data,
            });
        }
        let result = if let Some(last) = effects.apply.last() {
            node.applied.extend(effects.apply.iter().cloned());
            node.raft.on_applied(last.index)
        } else {
            Ok(())
        };
        for envelope in outgoing {
            self.in_flight
                .entry(envelope.message.to)
                .or_default()
                .push_back(envelope);
        }
        self.check_safety();
        result.map(|()| effects)
    }

    /// Completes node `id`'s oldest outstanding persist request: writes it
    /// to the disk (installing a snapshot into the state machine) and
    /// reports it. Returns the request, or `None` if none was outstanding.
    pub fn persist(&mut self, id: NodeId) -> Result<Option<PersistRequest>, Error> {
        let node = self.node_mut(id);
        let Some(request) = node.pending_persists.pop_front() else {
            return Ok(None);
        };
        let snapshot_data = request.snapshot.as_ref().map(|meta| {
            node.incoming_snapshots
                .remove(&(meta.index, meta.term))
                .unwrap_or_else(|| {
                    panic!(
                        "node {id} persists snapshot {}/{} it never received",
                        meta.term, meta.index
                    )
                })
        });
        if let Some(data) = &snapshot_data {
            node.applied = data.clone();
        }
        node.disk.write(&request, snapshot_data);
        let result = node.raft.on_persisted(request.ticket);
        self.check_safety();
        result.map(|()| Some(request))
    }

    /// Completes every outstanding persist request of node `id`, oldest
    /// first; returns them.
    pub fn persist_all(&mut self, id: NodeId) -> Result<Vec<PersistRequest>, Error> {
        let mut done = Vec::new();
        while let Some(request) = self.persist(id)? {
            done.push(request);
        }
        Ok(done)
    }

    /// Number of persist requests node `id` has outstanding.
    pub fn pending_persist_count(&self, id: NodeId) -> usize {
        self.node(id).pending_persists.len()
    }

    /// The messages waiting for delivery to `id`, in send order.
    pub fn in_flight(&self, id: NodeId) -> Vec<&Message> {
        self.in_flight
            .get(&id)
            .map(|queue| queue.iter().map(|e| &e.message).collect())
            .unwrap_or_default()
    }

    /// Every message waiting for delivery, by recipient.
    pub fn all_in_flight(&self) -> Vec<&Message> {
        self.in_flight
            .values()
            .flat_map(|queue| queue.iter().map(|e| &e.message))
            .collect()
    }

    /// Puts a message on the wire as if `message.from` had sent it (for
    /// forged or stale messages; the sender need not exist).
    pub fn inject(&mut self, message: Message) {
        let envelope = Envelope {
            message,
            snapshot_data: Some(Vec::new()),
        };
        self.in_flight
            .entry(envelope.message.to)
            .or_default()
            .push_back(envelope);
    }

    /// Whether a message from `from` to `to` would be delivered now.
    pub fn can_deliver(&self, from: NodeId, to: NodeId) -> bool {
        let group = |id: NodeId| self.partition.get(&id).copied().unwrap_or(0);
        group(from) == group(to) && !self.dropped_links.contains(&(from, to))
    }

    /// Delivers every message waiting for `id` (those sent while delivering
    /// wait for the next call); messages the network does not let through
    /// are discarded.
    pub fn deliver(&mut self, id: NodeId) -> Vec<Delivery> {
        let queue = self.in_flight.remove(&id).unwrap_or_default();
        queue
            .into_iter()
            .map(|envelope| self.deliver_envelope(envelope))
            .collect()
    }

    /// Delivers only the `position`-th message waiting for `id` (for
    /// reordering); `None` if there is no such message.
    pub fn deliver_one(&mut self, id: NodeId, position: usize) -> Option<Delivery> {
        let envelope = self.in_flight.get_mut(&id)?.remove(position)?;
        Some(self.deliver_envelope(envelope))
    }

    /// Puts a copy of every message waiting for `id` at the end of its
    /// queue (a network that duplicates).
    pub fn duplicate_in_flight(&mut self, id: NodeId) {
        if let Some(queue) = self.in_flight.get_mut(&id) {
            let copies: Vec<Envelope> = queue.iter().cloned().collect();
            queue.extend(copies);
        }
    }

    /// Discards every message waiting for `id`; returns them.
    pub fn drop_in_flight(&mut self, id: NodeId) -> Vec<Message> {
        let queue = self.in_flight.remove(&id).unwrap_or_default();
        let mut dropped = Vec::new();
        for envelope in queue {
            self.report_snapshot_outcome(&envelope.message, false);
            dropped.push(envelope.message);
        }
        dropped
    }

    fn deliver_envelope(&mut self, envelope: Envelope) -> Delivery {
        let Envelope {
            message,
            snapshot_data,
        } = envelope;
        let (from, to) = (message.from, message.to);
        let delivered = self.nodes.contains_key(&to) && self.can_deliver(from, to);
        if !delivered {
            self.report_snapshot_outcome(&message, false);
            return Delivery::Dropped(message);
        }
        if let (MessageBody::InstallSnapshot { snapshot }, Some(data)) =
            (&message.body, snapshot_data)
        {
            self.node_mut(to)
                .incoming_snapshots
                .insert((snapshot.index, snapshot.term), data);
        }
        let result = self.raft_mut(to).step(message.clone());
        self.report_snapshot_outcome(&message, true);
        self.check_safety();
        Delivery::Stepped(message, result)
    }

    /// Tells the sender of an `InstallSnapshot` whether it arrived.
    fn report_snapshot_outcome(&mut self, message: &Message, success: bool) {
        if let MessageBody::InstallSnapshot { .. } = message.body
            && let Some(sender) = self.nodes.get_mut(&message.from)
        {
            sender.raft.report_snapshot(message.to, success);
        }
    }

    /// Splits the network: nodes in different groups cannot talk; nodes in
    /// no group form one more group together.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.partition.clear();
        for (number, group) in groups.iter().enumerate() {
            for &id in group {
                self.partition.insert(id, number + 1);
            }
        }
    }

    /// Drops every message from `from` to `to` until [`Cluster::heal`].
    pub fn drop_link(&mut self, from: NodeId, to: NodeId) {
        self.dropped_links.insert((from, to));
    }

    /// Removes partitions and drop filters.
    pub fn heal(&mut self) {
        self.partition.clear();
        self.dropped_links.clear();
    }

    /// Runs `process_ready`, `persist_all` and `deliver` over `ids` (every
    /// node if empty) until nothing changes, reporting each step to
    /// `observer`. Returns an error after `max_rounds` rounds without
    /// settling (a livelock).
    pub fn stabilize(
        &mut self,
        ids: &[NodeId],
        max_rounds: usize,
        observer: &mut dyn FnMut(Event),
    ) -> Result<(), String> {
        let ids: Vec<NodeId> = if ids.is_empty() {
            self.ids()
        } else {
            ids.to_vec()
        };
        for _ in 0..max_rounds {
            let mut changed = false;
            for &id in &ids {
                if self.raft(id).has_effects() {
                    match self.process_ready(id) {
                        Ok(effects) if effects.is_empty() => {}
                        Ok(effects) => {
                            changed = true;
                            observer(Event::Ready(id, effects));
                        }
                        Err(error) => {
                            changed = true;
                            observer(Event::Error(id, error));
                        }
                    }
                }
            }
            for &id in &ids {
                loop {
                    match self.persist(id) {
                        Ok(Some(request)) => {
                            changed = true;
                            observer(Event::Persisted(id, request));
                        }
                        Ok(None) => break,
                        Err(error) => {
                            changed = true;
                            observer(Event::Error(id, error));
                        }
                    }
                }
            }
            for &id in &ids {
                let deliveries = self.deliver(id);
                if !deliveries.is_empty() {
                    changed = true;
                    observer(Event::Delivered(id, deliveries));
                }
            }
            if !changed {
                return Ok(());
            }
        }
        Err(format!("no quiescence after {max_rounds} rounds"))
    }

    /// Crashes node `id` and starts it again from its disk: unpersisted
    /// requests, the state machine beyond the snapshot, received snapshot
    /// data and all volatile core state are lost. Messages already on the
    /// wire stay there.
    pub fn restart(&mut self, id: NodeId) -> Result<(), Error> {
        let node = self.node_mut(id);
        let raft = RaftNode::new(node.config.clone(), initial_state(&node.disk))?;
        node.raft = raft;
        node.pending_persists.clear();
        node.incoming_snapshots.clear();
        node.applied = node.disk.snapshot_data.clone();
        self.check_safety();
        Ok(())
    }

    /// Compacts node `id`'s log up to `index` (at most its applied index):
    /// the state machine at `index` becomes the snapshot on disk and the
    /// entries up to it are dropped from the disk and the core.
    pub fn compact(&mut self, id: NodeId, index: Index) -> Result<SnapshotMeta, Error> {
        let node = self.node_mut(id);
        let meta = node.raft.compact_log(index)?;
        node.disk.snapshot_data = node
            .applied
            .iter()
            .filter(|e| e.index <= index)
            .cloned()
            .collect();
        node.disk.snapshot = meta.clone();
        node.disk.entries.retain(|e| e.index > index);
        Ok(meta)
    }

    /// Safety violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Takes the violations found so far.
    pub fn take_violations(&mut self) -> Vec<String> {
        std::mem::take(&mut self.violations)
    }

    /// Checks election safety (one leader per term, ever) and state machine
    /// safety (no two nodes applied different entries at one index);
    /// records violations. The driver calls it after every operation.
    pub fn check_safety(&mut self) {
        let mut found = Vec::new();
        for (&id, node) in &self.nodes {
            if node.raft.role() == Role::Leader {
                let term = node.raft.term();
                let leader = *self.leaders_by_term.entry(term).or_insert(id);
                if leader != id {
                    found.push(format!("two leaders in term {term}: {leader} and {id}"));
                }
            }
        }
        let ids = self.ids();
        for (position, &a) in ids.iter().enumerate() {
            for &b in &ids[position + 1..] {
                let theirs: BTreeMap<Index, &Entry> = self.nodes[&b]
                    .applied
                    .iter()
                    .map(|e| (e.index, e))
                    .collect();
                for mine in &self.nodes[&a].applied {
                    if let Some(other) = theirs.get(&mine.index)
                        && *other != mine
                    {
                        found.push(format!(
                            "nodes {a} and {b} applied different entries at index {}",
                            mine.index
                        ));
                        break;
                    }
                }
            }
        }
        for violation in found {
            if !self.violations.contains(&violation) {
                self.violations.push(violation);
            }
        }
    }
}

/// What a node restarts from: its disk, with the state machine back at the
/// snapshot.
fn initial_state(disk: &Disk) -> InitialState {
    InitialState {
        hard_state: disk.hard_state,
        snapshot: disk.snapshot.clone(),
        entries: disk.entries.clone(),
        applied: disk.snapshot.index,
    }
}
