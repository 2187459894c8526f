//! Fault injection during the fault phase: crashes and restarts, pauses,
//! partitions, clock jumps, leadership transfers, membership churn.

use raftwood_raft::{PersistRequest, PersistTicket};
use raftwood_server::driver::LoopEvent;

use super::*;

impl Simulation {
    pub(super) fn fault_delay(&mut self) -> u64 {
        let mean = self.options.mean_fault_interval_us;
        self.rng.random_range(mean / 4..=mean * 2)
    }

    pub(super) fn count_fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// Members that are running (up or paused), ascending.
    pub(super) fn running(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.status, Status::Up | Status::Paused))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The current leader and its configuration, if there is a leader.
    pub(super) fn leader_conf(&self) -> Option<(NodeId, raftwood_raft::ConfState)> {
        let leader = self.current_leader()?;
        let conf = self.nodes.get(&leader)?.core()?.conf_state();
        Some((leader, conf))
    }

    /// The member that leads the highest term, if it is up.
    pub(super) fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.status == Status::Up)
            .filter_map(|(&id, n)| n.core().map(|r| (r, id)))
            .filter(|(r, _)| r.role() == Role::Leader)
            .max_by_key(|(r, _)| r.term())
            .map(|(_, id)| id)
    }

    pub(super) fn inject_fault(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        self.poll_membership_change();
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

    pub(super) fn pick(&mut self, candidates: &[NodeId]) -> Option<NodeId> {
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }

    /// Half the time the leader (the member whose failure matters most),
    /// otherwise any member in `candidates`.
    pub(super) fn pick_preferring_leader(&mut self, candidates: &[NodeId]) -> Option<NodeId> {
        if self.rng.random_bool(0.5)
            && let Some(leader) = self.current_leader()
            && candidates.contains(&leader)
        {
            return Some(leader);
        }
        self.pick(candidates)
    }

    pub(super) fn fault_crash(&mut self) {
        let running = self.running();
        let Some(id) = self.pick_preferring_leader(&running) else {
            return;
        };
        self.crash_member(id);
    }

    /// In the server-loop mode, during the fault phase: with some chance,
    /// arms member `id`'s filesystem to die a few operations from now, so
    /// that a crash lands inside the snapshot step about to run. Returns
    /// whether it did; the caller crashes the member if the step then
    /// fails, or disarms with [`Simulation::disarm_crash`].
    pub(super) fn arm_crash_inside_step(&mut self, id: NodeId) -> bool {
        if self.phase != Phase::Faults
            || self.options.fault_weights.crash == 0
            || !self.rng.random_bool(0.25)
        {
            return false;
        }
        let operations = self.rng.random_range(0..24);
        let Some(node) = self.nodes.get(&id) else {
            return false;
        };
        node.kv.crash_fs().crash_after_operations(operations);
        true
    }

    /// The armed step finished before its crash: the filesystem lives on.
    pub(super) fn disarm_crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get(&id) {
            node.kv.crash_fs().clear_faults();
        }
    }

    /// Power cut of member `id`, then a restart after a random downtime.
    pub(super) fn crash_member(&mut self, id: NodeId) {
        let torn = self.options.torn_writes && self.rng.random_bool(0.5);
        let torn_entries = torn.then(|| self.rng.random_range(0..4));
        let downtime = self.rng.random_range(1_000..self.options.max_downtime_us);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let damage = node.disk.crash(torn_entries);
        // Applies not yet flushed die with the store; the member replays
        // them from its log after the restart.
        let unflushed_applies = node.kv.applied_index() > node.kv.durable_applied_index();
        node.raft = None;
        // The drive loop and its apply side (which shares the store) die
        // before the store does.
        node.server = None;
        node.status = Status::Down;
        node.incarnation += 1;
        node.kv.crash();
        node.kv_applied = 0;
        node.proposals.clear();
        node.reads_waiting.clear();
        node.reads_ready.clear();
        node.incoming_snapshots.clear();
        // Snapshots waiting for the member (it was paused) die with it; the
        // transport tells their senders, as for any failed stream.
        let snapshot_senders: Vec<NodeId> = node
            .deferred
            .drain(..)
            .filter_map(|event| match event {
                Event::Deliver { message, .. }
                    if matches!(message.body, MessageBody::InstallSnapshot { .. }) =>
                {
                    Some(message.from)
                }
                _ => None,
            })
            .collect();
        let incarnation = node.incarnation;
        for sender in snapshot_senders {
            self.report_snapshot(sender, id, false);
        }
        self.count_fault("crash");
        if damage.torn_entries > 0 {
            self.count_fault("torn-write");
        }
        if unflushed_applies {
            self.count_fault("crash-lost-unflushed-applies");
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

    pub(super) fn on_restart(&mut self, id: NodeId, incarnation: u64) {
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
        // The store reopens at its durable applied index; the core starts
        // there and hands out the committed entries after it for replay.
        let reopened = if self.options.server_loop {
            node.kv.open_server_layout()
        } else {
            node.kv.open().map(|()| None)
        };
        let installed = match reopened {
            Ok(installed) => installed,
            Err(error) => {
                self.safety_violation(format!("member {id} cannot reopen its store: {error}"));
                return;
            }
        };
        let store_applied = node.kv.durable_applied_index();
        let snapshot_index = node.disk.durable().snapshot.index;
        // Only the bootstrap snapshot (index 1) has no data to be at.
        if store_applied < snapshot_index && snapshot_index > 1 {
            self.safety_violation(format!(
                "member {id}'s store reopened at {store_applied}, behind its snapshot at {snapshot_index}"
            ));
            return;
        }
        let (mut initial, term_raised) = node.disk.recover(store_applied);
        // The server reconciles its log with the state machine
        // (`recovery::reconcile`): the core's applied index is capped at the
        // log's last entry (a checkpoint may hold state past its snapshot's
        // index), and a store installed from a snapshot whose point the log
        // never recorded (a crash between the install and the core
        // persisting it) resets the log to that snapshot first.
        let mut log_reset = false;
        if self.options.server_loop {
            // The log's own commit index: `recover` raised it to the store's.
            let mut hard_state = initial.hard_state;
            hard_state.commit = node.disk.durable().hard_state.commit;
            let reconciled = raftwood_server::recovery::reconcile(
                hard_state,
                initial.snapshot.clone(),
                std::mem::take(&mut initial.entries),
                store_applied,
                installed,
            );
            let startup = match reconciled {
                Ok(startup) => startup,
                Err(error) => {
                    self.safety_violation(format!("member {id} cannot restart: {error}"));
                    return;
                }
            };
            if let Some(snapshot) = &startup.reset_log_to {
                // As the server's start-up does: the live store is kept as
                // the snapshot first, so that the member can send it.
                if let Err(error) = node.kv.keep_live_store_if_missing(snapshot) {
                    self.safety_violation(format!("member {id} cannot restart: {error}"));
                    return;
                }
                node.disk.submit(
                    PersistRequest {
                        ticket: PersistTicket(0),
                        snapshot: Some(snapshot.clone()),
                        entries: Vec::new(),
                        hard_state: Some(startup.initial.hard_state),
                    },
                    None,
                    0,
                    0,
                );
                node.disk.complete_oldest();
                log_reset = true;
            }
            initial = startup.initial;
        }
        let applied = initial.applied;
        if self.options.server_loop {
            let interval = node.tick_interval_us;
            if term_raised {
                self.count_fault("torn-write-term-raised-at-recovery");
            }
            if log_reset {
                self.count_fault("restart-log-reset-to-snapshot");
            }
            self.trace(|| format!("restart {id}"));
            self.schedule(
                interval,
                Event::Tick {
                    node: id,
                    incarnation,
                },
            );
            self.server_start(id, config, initial);
            return;
        }
        match RaftNode::new(config, initial) {
            Ok(raft) => {
                node.raft = Some(raft);
                node.status = Status::Up;
                node.kv_applied = applied;
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

    pub(super) fn fault_pause(&mut self) {
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

    pub(super) fn on_resume(&mut self, id: NodeId, incarnation: u64) {
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

    pub(super) fn fault_partition(&mut self) {
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

    pub(super) fn fault_transfer(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let voters: Vec<NodeId> = self
            .nodes
            .get(&leader)
            .and_then(SimNode::core)
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
        if self.options.server_loop {
            // etcd's MoveLeader reaches the loop as an event; a refusal is
            // only logged there, as in the server.
            self.count_fault("leader-transfer");
            self.trace(|| format!("leader {leader} is asked to transfer leadership to {to}"));
            self.server_enqueue(leader, vec![LoopEvent::TransferLeader(to)]);
            return;
        }
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

    pub(super) fn fault_clock_jump(&mut self) {
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
        if self.options.server_loop {
            self.count_fault("clock-jump");
            self.trace(|| format!("clock of {id} jumps {ticks} ticks"));
            let events = (0..ticks).map(|_| LoopEvent::Tick).collect();
            self.server_enqueue(id, events);
            return;
        }
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
    pub(super) fn fault_membership(&mut self) {
        if self.options.server_loop {
            self.server_membership_change();
            return;
        }
        let Some((leader, conf)) = self.leader_conf() else {
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
            if self.rng.random_bool(0.5) {
                // Replace a voter by a new, empty one in one step, through
                // a joint configuration left automatically (thesis §4.3).
                let id = self.next_node_id;
                let change = ConfChange {
                    transition: ConfChangeTransition::JointImplicit,
                    changes: vec![
                        ConfChangeSingle {
                            kind: ConfChangeKind::AddVoter,
                            node_id: id,
                        },
                        ConfChangeSingle {
                            kind: ConfChangeKind::RemoveNode,
                            node_id: removed,
                        },
                    ],
                    context: Bytes::new(),
                };
                (change, "membership-joint-replace-voter", Some(id))
            } else {
                (
                    ConfChange::single(ConfChangeKind::RemoveNode, removed),
                    "membership-remove-voter",
                    None,
                )
            }
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
