//! The run loop, event dispatch, and carrying out a member's effects:
//! persisting, sending, applying, serving reads, compacting; the
//! per-commit checks.

use raftwood_server::driver::LoopEvent;

use super::*;

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

    pub(super) fn has_violation(&self) -> bool {
        !self.safety.violations().is_empty() || !self.extra_violations.is_empty()
    }

    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver {
                message,
                snapshot_data,
            } => self.on_deliver(message, snapshot_data),
            Event::PersistDone { node, incarnation } if self.options.server_loop => {
                self.on_server_persist_done(node, incarnation)
            }
            Event::PersistDone { node, incarnation } => self.on_persist_done(node, incarnation),
            Event::ApplyRun { node, incarnation } => self.on_server_apply(node, incarnation),
            Event::LoopRound { node, incarnation } => self.on_server_loop_round(node, incarnation),
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
    pub(super) fn defer_if_paused(&mut self, node: NodeId, event: &Event) -> bool {
        match self.nodes.get_mut(&node) {
            Some(n) if n.status == Status::Paused => {
                n.deferred.push(event.clone());
                true
            }
            _ => false,
        }
    }

    /// The member a timed event of `incarnation` is for, if the event
    /// should run now: `None` if the member is paused (the event waits
    /// with it), down, gone, or restarted since the event was scheduled.
    pub(super) fn member_for_event(
        &mut self,
        id: NodeId,
        incarnation: u64,
        event: Event,
    ) -> Option<&mut SimNode> {
        if self.defer_if_paused(id, &event) {
            return None;
        }
        self.nodes
            .get_mut(&id)
            .filter(|node| node.incarnation == incarnation && node.status == Status::Up)
    }

    pub(super) fn is_up(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.status == Status::Up && n.core().is_some())
    }

    pub(super) fn on_tick(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || matches!(node.status, Status::Down | Status::Stopped)
        {
            return;
        }
        let interval = node.tick_interval_us;
        let up = node.status == Status::Up;
        if up && let Some(raft) = &mut node.raft {
            raft.tick();
        }
        self.schedule(
            interval,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        if up && self.options.server_loop {
            self.server_enqueue(id, vec![LoopEvent::Tick]);
        } else {
            self.after_step(id);
        }
    }

    pub(super) fn on_deliver(
        &mut self,
        message: Message,
        snapshot_data: Option<Arc<SnapshotImage>>,
    ) {
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
        if self.options.server_loop {
            if is_snapshot {
                self.server_receive_snapshot(to, message, snapshot_data);
            } else {
                self.server_enqueue(to, vec![LoopEvent::Messages(vec![message])]);
            }
            return;
        }
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

    pub(super) fn report_snapshot(&mut self, from: NodeId, to: NodeId, success: bool) {
        if self.options.server_loop {
            if self.is_up(from) {
                let event = LoopEvent::SnapshotSent {
                    peer: to,
                    ok: success,
                };
                self.server_enqueue(from, vec![event]);
            }
            return;
        }
        if let Some(node) = self.nodes.get_mut(&from)
            && node.status == Status::Up
            && let Some(raft) = &mut node.raft
        {
            raft.report_snapshot(to, success);
            self.after_step(from);
        }
    }

    pub(super) fn core_error(&mut self, id: NodeId, what: &str, error: &Error) {
        self.safety_violation(format!("member {id}: the core refused {what}: {error}"));
    }

    pub(super) fn on_persist_done(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.member_for_event(
            id,
            incarnation,
            Event::PersistDone {
                node: id,
                incarnation,
            },
        ) else {
            return;
        };
        let Some(write) = node.disk.complete_oldest() else {
            return;
        };
        let mut install_error = None;
        if let Some(snapshot) = &write.request.snapshot {
            // The state machine becomes the snapshot's, durably, in the same
            // event as the raft disk; proposals it covers have an unknown
            // fate here (clients time out).
            let image = write.snapshot_data.clone().unwrap_or_default();
            if let Err(error) = node.kv.install(&image) {
                install_error = Some(error);
            }
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
        if let Some(error) = install_error {
            self.safety_violation(format!("member {id} cannot install a snapshot: {error}"));
        }
        if let Err(error) = result {
            self.core_error(id, "on_persisted", &error);
        }
        self.after_step(id);
    }

    /// Carries out a member's effects until it has none, then checks
    /// safety.
    pub(super) fn after_step(&mut self, id: NodeId) {
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

    pub(super) fn observe(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(now) = node.core().map(|raft| (raft.role(), raft.term())) else {
            return;
        };
        let changed = now != node.last_traced;
        node.last_traced = now;
        if let Some(node) = self.nodes.get(&id)
            && let Some(raft) = node.core()
        {
            self.safety.observe_member(id, node.incarnation, raft);
        }
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
    pub(super) fn check_leader_commit(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let Some(raft) = node.core() else {
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

    pub(super) fn process_effects(&mut self, id: NodeId) {
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

    pub(super) fn send_message(&mut self, from: NodeId, message: Message) {
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
        self.send_with_data(from, message, snapshot_data);
    }

    /// Sends `message`, carrying `snapshot_data` if it is a snapshot, over
    /// the simulated network.
    pub(super) fn send_with_data(
        &mut self,
        from: NodeId,
        message: Message,
        snapshot_data: Option<Arc<SnapshotImage>>,
    ) {
        let to = message.to;
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

    pub(super) fn apply_entries(&mut self, id: NodeId, entries: Vec<raftwood_raft::Entry>) {
        let mut replies = Vec::new();
        let mut problems = Vec::new();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let planted_bug = self.options.planted_state_machine_bug == Some(id);
        let committed: Vec<CommittedEntry<'_>> = entries
            .iter()
            .map(|entry| CommittedEntry {
                index: entry.index,
                request: match &entry.payload {
                    EntryPayload::Command(_) if planted_bug && entry.index % 8 == 0 => None,
                    EntryPayload::Command(bytes) => Some(bytes.as_ref()),
                    EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
                },
            })
            .collect();
        let outcomes = match node.kv.apply(&committed) {
            Ok(outcomes) if outcomes.len() == entries.len() => outcomes,
            Ok(outcomes) => {
                let count = outcomes.len();
                self.safety_violation(format!(
                    "member {id}: {count} outcomes for {} entries",
                    entries.len()
                ));
                return;
            }
            Err(error) => {
                self.safety_violation(format!("member {id}: the state machine failed: {error}"));
                return;
            }
        };
        let mut last = 0;
        let member_term = node.raft.as_ref().map_or(0, RaftNode::term);
        for (entry, outcome) in entries.iter().zip(&outcomes) {
            self.safety.observe_apply(id, member_term, entry);
            last = entry.index;
            node.kv_applied = entry.index;
            let output = match outcome {
                Ok(ApplyResponse::AlreadyApplied) => {
                    // The core starts at the store's applied index, so it
                    // never hands out an entry the store already holds.
                    problems.push(format!(
                        "member {id} was handed entry {} which its state machine had applied",
                        entry.index
                    ));
                    None
                }
                Ok(response) => etcd::write_output(response),
                Err(error) => {
                    problems.push(format!(
                        "member {id}: the state machine refused entry {}: {error}",
                        entry.index
                    ));
                    None
                }
            };
            if let EntryPayload::Command(bytes) = &entry.payload
                && let Some(request_id) = etcd::request_id(bytes)
            {
                self.first_applied_us
                    .entry(request_id)
                    .or_insert(self.now_us);
            }
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
                if term != entry.term {
                    // Another leader's entry took the place: not done.
                    replies.push((client, Reply::Retry));
                } else if let Some(output) = output {
                    replies.push((
                        client,
                        Reply::Done {
                            output,
                            position: Some((index, term)),
                        },
                    ));
                }
                // Applied without an answer (a violation recorded above):
                // the client times out.
            }
        }
        let result = match &mut node.raft {
            Some(raft) => raft.on_applied(last),
            None => Ok(()),
        };
        if let Err(error) = result {
            self.core_error(id, "on_applied", &error);
        }
        for problem in problems {
            self.safety_violation(problem);
        }
        for (client, reply) in replies {
            self.reply(client, reply);
        }
        self.maybe_compact(id);
    }

    /// Compacts a member's log once enough entries are applied: the core
    /// drops the entries, and the state machine's checkpoint at that index
    /// becomes the snapshot's data on the raft disk (see
    /// `src/state_machine.rs`). Each compaction point's state digest is
    /// compared with every other member's at the same index.
    pub(super) fn maybe_compact(&mut self, id: NodeId) {
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
        let Ok(meta) = raft.compact_log(applied) else {
            return;
        };
        let image = node.kv.take_image();
        let digest = node.kv.digest();
        let (index, image, digest) = match (image, digest) {
            (Ok((index, image)), Ok(digest)) => (index, image, digest),
            (Err(error), _) | (_, Err(error)) => {
                self.safety_violation(format!("member {id} cannot snapshot its state: {error}"));
                return;
            }
        };
        node.disk.write_compaction(meta, Arc::new(image));
        if index != applied {
            self.safety_violation(format!(
                "member {id} compacted at {applied} but its checkpoint holds {index}"
            ));
            return;
        }
        self.trace(|| format!("member {id} compacted its log to {applied}"));
        match self.digests_at.get(&applied) {
            None => {
                self.digests_at.insert(applied, (id, digest));
            }
            Some(&(other, expected)) if expected != digest => {
                self.safety_violation(format!(
                    "state machines diverged: at index {applied} member {id} has digest {digest:08x}, member {other} had {expected:08x}"
                ));
            }
            Some(_) => {}
        }
    }

    pub(super) fn serve_ready_reads(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let applied = node.kv_applied;
        let mut replies = Vec::new();
        let mut problems = Vec::new();
        let kv = &node.kv;
        node.reads_ready.retain(|&(index, client, key)| {
            if index > applied {
                return true;
            }
            match kv.get(key) {
                Ok(output) => replies.push((
                    client,
                    Reply::Done {
                        output,
                        position: None,
                    },
                )),
                Err(error) => problems.push(format!("member {id} cannot serve a read: {error}")),
            }
            false
        });
        for problem in problems {
            self.safety_violation(problem);
        }
        for (client, reply) in replies {
            self.reply(client, reply);
        }
    }

    pub(super) fn reply(&mut self, to: ClientRef, reply: Reply) {
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

pub(super) fn describe_message(message: &Message) -> String {
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
