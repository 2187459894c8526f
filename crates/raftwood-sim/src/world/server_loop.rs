//! The server-loop mode's events: each member is the server's own drive
//! loop (`world/server_member.rs`), given its inputs through
//! `DriveLoop::round`, with its persistence and apply work run here as
//! timed events. Faults, clients, safety checks, the liveness phase and
//! the linearizability check are the raft-core mode's.

use raftwood_server::driver::PendingSnapshot;
use raftwood_server::driver::{
    ApplyWork, LoopEvent, PersistWork, ProposeError, ReadError, RoundOutcome, SnapshotFiles,
    SnapshotStep, complete_snapshot,
};
use raftwood_server::snapshot::{self, SnapshotStore};
use raftwood_server::threads::{apply_batch, stop_event};
use raftwood_server::transport::SnapshotChunk;
use tokio::sync::oneshot;

use super::server_member::{MemberFiles, ServerMember, WaitingProposal, WaitingRead};
use super::*;

/// A planted bug: a disk whose fsync returns at once and makes nothing
/// durable (the writes stay pending on the member's `SimDisk`).
struct LyingDisk;

impl raftwood_server::driver::LogStorage for LyingDisk {
    fn write(&mut self, _request: &raftwood_raft::PersistRequest) -> Result<(), String> {
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn compact(&mut self, _snapshot: &raftwood_raft::SnapshotMeta) -> Result<(), String> {
        Ok(())
    }
}

impl Simulation {
    /// Starts a member's drive loop from `initial` (its state machine is
    /// open at `initial.applied` or before).
    pub(super) fn server_start(&mut self, id: NodeId, config: Config, initial: InitialState) {
        let applied = initial.applied;
        let result = RaftNode::new(config, initial);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(store) = node.kv.shared_store() else {
            self.safety_violation(format!("member {id} starts without a store"));
            return;
        };
        let snapshots = match node.kv.snapshot_store() {
            Ok(snapshots) => snapshots,
            Err(error) => {
                self.safety_violation(format!("member {id}: {error}"));
                return;
            }
        };
        let snapshot_count = self.options.compaction_threshold_entries;
        let files = MemberFiles {
            dirs: node.kv.state_dir(),
            snapshots,
            snapshot_count,
            catch_up_entries: snapshot_count / 4,
        };
        match result {
            Ok(raft) => {
                node.server = Some(Box::new(ServerMember::new(
                    raft,
                    store,
                    applied,
                    self.now_us,
                    files,
                )));
                node.status = Status::Up;
                node.kv_applied = applied;
                // A store ahead of the log (a checkpoint holding state past
                // its snapshot's index) is handed entries it holds again.
                if let Some(server) = node.server.as_mut() {
                    server.installed_through = node.kv.applied_index();
                }
                // The core may have committed entries to replay: an empty
                // round hands them out.
                self.server_round(id, Vec::new());
            }
            Err(error) => {
                self.safety_violation(format!("member {id} cannot start from its disk: {error}"))
            }
        }
    }

    /// Queues events for a member's drive loop; its next round takes
    /// everything queued by then, `loop_batch_window_us` at most after the
    /// first (so, as in the server, several proposals, messages and
    /// completions can share a round).
    pub(super) fn server_enqueue(&mut self, id: NodeId, events: Vec<LoopEvent>) {
        let delay = self.rng.random_range(0..=self.options.loop_batch_window_us);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let incarnation = node.incarnation;
        let Some(server) = node.server.as_mut() else {
            return;
        };
        server.inbox.extend(events);
        if !server.round_scheduled {
            server.round_scheduled = true;
            self.schedule(
                delay,
                Event::LoopRound {
                    node: id,
                    incarnation,
                },
            );
        }
    }

    /// The drive loop runs one round of everything queued.
    pub(super) fn on_server_loop_round(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.member_for_event(
            id,
            incarnation,
            Event::LoopRound {
                node: id,
                incarnation,
            },
        ) else {
            return;
        };
        let Some(server) = node.server.as_mut() else {
            return;
        };
        server.round_scheduled = false;
        let events = std::mem::take(&mut server.inbox);
        let proposals = events
            .iter()
            .filter(|e| matches!(e, LoopEvent::Propose { .. }))
            .count();
        if proposals > 1 {
            self.count_fault("rounds-with-several-proposals");
        }
        if events.len() > 1 {
            self.trace(|| {
                format!(
                    "member {id} round of {} events, {proposals} proposals",
                    events.len()
                )
            });
        }
        self.server_round(id, events);
    }

    /// One round of a member's drive loop, then everything it queued.
    pub(super) fn server_round(&mut self, id: NodeId, events: Vec<LoopEvent>) {
        let Some(server) = self.nodes.get_mut(&id).and_then(|n| n.server.as_mut()) else {
            return;
        };
        if server.drive.round(events) == RoundOutcome::Stop {
            let reason = server.drive.failure().unwrap_or("shut down").to_owned();
            self.safety_violation(format!("member {id}'s drive loop stopped: {reason}"));
        }
        self.server_after_round(id);
    }

    /// Carries out what a round queued: messages to the network, persist
    /// requests to the disk (one batch in flight at a time, as on the
    /// persistence thread), entries to the apply queue; answers clients
    /// whose outcome arrived; checks safety.
    pub(super) fn server_after_round(&mut self, id: NodeId) {
        let fsync_delay = self
            .rng
            .random_range(self.options.fsync_min_us..=self.options.fsync_max_us);
        let apply_delay = self.rng.random_range(0..=self.options.fsync_min_us);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let incarnation = node.incarnation;
        let Some(server) = node.server.as_mut() else {
            return;
        };
        let messages = server.sink.take_messages();
        let snapshots = server.sink.take_snapshots();
        let mut problems = Vec::new();
        for work in server.persist_work.try_iter() {
            match work {
                PersistWork::Persist(request) => {
                    self.safety
                        .observe_persist(id, server.drive.node(), &request);
                    server.persist_queue.push(PersistWork::Persist(request));
                }
                snapshot_step @ (PersistWork::Snapshot { .. } | PersistWork::Discard { .. }) => {
                    server.persist_queue.push(snapshot_step);
                }
            }
        }
        let mut persist_done_in = None;
        if server.persist_in_flight.is_none() && !server.persist_queue.is_empty() {
            let works = std::mem::take(&mut server.persist_queue);
            match server.batcher.write(&mut node.disk, works) {
                Ok(batch) => {
                    persist_done_in = Some(if batch.needs_sync() { fsync_delay } else { 0 });
                    server.persist_in_flight = Some(batch);
                }
                Err(error) => problems.push(format!("member {id}: {error}")),
            }
        }
        let apply_was_idle = server.apply_queue.is_empty();
        server.apply_queue.extend(server.apply_work.try_iter());
        let apply_now_busy = apply_was_idle && !server.apply_queue.is_empty();
        let mut snapshot_sends = Vec::new();
        for message in snapshots {
            let image = match &message.body {
                MessageBody::InstallSnapshot { snapshot } => {
                    snapshot_image(&server.snapshots, snapshot.index)
                }
                _ => None,
            };
            snapshot_sends.push((message, image));
        }
        if let Some(delay) = persist_done_in {
            self.schedule(
                delay,
                Event::PersistDone {
                    node: id,
                    incarnation,
                },
            );
        }
        if apply_now_busy {
            self.schedule(
                apply_delay,
                Event::ApplyRun {
                    node: id,
                    incarnation,
                },
            );
        }
        for problem in problems {
            self.safety_violation(problem);
        }
        for message in messages {
            self.send_message(id, message);
        }
        for (message, image) in snapshot_sends {
            match image {
                Some(image) => {
                    self.count_fault("snapshot-sent");
                    self.send_with_data(id, message, Some(Arc::new(image)));
                }
                // The sender cannot read its snapshot: the transport
                // fails the send.
                None => {
                    self.trace(|| {
                        format!("{id} cannot read the snapshot it sends to {}", message.to)
                    });
                    self.report_snapshot(id, message.to, false);
                }
            }
        }
        self.server_answer_clients(id);
        self.serve_ready_reads(id);
        self.observe(id);
    }

    /// The simulated fsync of the batch in flight completed: sync it,
    /// report its tickets to the loop, start the next batch.
    pub(super) fn on_server_persist_done(&mut self, id: NodeId, incarnation: u64) {
        let fsync_lies = self.options.planted_fsync_lies;
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
        let Some(server) = node.server.as_mut() else {
            return;
        };
        let Some(batch) = server.persist_in_flight.take() else {
            return;
        };
        let synced = if fsync_lies {
            batch.sync(&mut LyingDisk)
        } else {
            batch.sync(&mut node.disk)
        };
        match synced {
            Ok((tickets, steps)) => {
                for step in steps {
                    match step {
                        SnapshotStep::Complete(pending) => {
                            if !self.server_finish_snapshot(id, &pending) {
                                return;
                            }
                        }
                        SnapshotStep::Discard(temp_dir) => {
                            if let Some(server) =
                                self.nodes.get_mut(&id).and_then(|n| n.server.as_mut())
                            {
                                server.snapshots.discard(&temp_dir);
                            }
                        }
                    }
                }
                self.trace(|| format!("persisted {id} {tickets:?}"));
                self.server_enqueue(id, vec![LoopEvent::Persisted(tickets)]);
            }
            Err(error) => self.safety_violation(format!("member {id}: {error}")),
        }
    }

    /// The apply side runs one batch of what is queued, as the apply
    /// thread would, and its reports go to the loop.
    pub(super) fn on_server_apply(&mut self, id: NodeId, incarnation: u64) {
        let now_us = self.now_us;
        let event = Event::ApplyRun {
            node: id,
            incarnation,
        };
        if self.member_for_event(id, incarnation, event).is_none() {
            return;
        }
        let snapshot_step = self.apply_snapshot_step(id);
        let armed = snapshot_step.is_some() && self.arm_crash_inside_step(id);
        // Borrowed by field: the batch also records into the safety checker.
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(server) = node.server.as_mut() else {
            return;
        };
        let works = std::mem::take(&mut server.apply_queue);
        let member_term = server.drive.node().term();
        let store_applied = node.kv.applied_index();
        let mut problems = Vec::new();
        let mut entries_seen = 0;
        let mut installs = 0;
        for work in &works {
            let ApplyWork::Entries(entries) = work else {
                installs += 1;
                continue;
            };
            for entry in entries {
                if entries_seen == 0
                    && entry.index <= store_applied
                    && entry.index > server.installed_through
                {
                    problems.push(format!(
                        "member {id} was handed entry {} which its state machine had applied",
                        entry.index
                    ));
                }
                entries_seen += 1;
                self.safety.observe_apply(id, member_term, entry);
                if let EntryPayload::Command(bytes) = &entry.payload
                    && let Some(request_id) = etcd::request_id(bytes)
                {
                    self.first_applied_us.entry(request_id).or_insert(now_us);
                    server
                        .applied_at
                        .insert(request_id, (entry.index, entry.term));
                }
            }
        }
        if problems.is_empty()
            && let Err(error) = apply_batch(&mut server.apply, works)
        {
            if let LoopEvent::Removed(_) = stop_event(&server.apply, error.clone()) {
                if armed {
                    self.disarm_crash(id);
                }
                self.stop_removed_member(id);
                return;
            }
            if armed {
                self.crash_member(id);
                self.count_fault(match snapshot_step {
                    Some(ApplySnapshotStep::Install) => "crash-in-snapshot-install",
                    _ => "crash-in-snapshot-take",
                });
                return;
            }
            problems.push(format!("member {id}: the state machine failed: {error}"));
        }
        if armed {
            self.disarm_crash(id);
        }
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(server) = node.server.as_mut() else {
            return;
        };
        let reports: Vec<LoopEvent> =
            std::iter::from_fn(|| server.apply_reports.try_recv().ok()).collect();
        node.kv_applied = node.kv.applied_index();
        if installs > 0 {
            server.installed_through = node.kv_applied;
        }
        let taken = reports
            .iter()
            .filter(|r| matches!(r, LoopEvent::SnapshotTaken { .. }))
            .count();
        for problem in problems {
            self.safety_violation(problem);
        }
        for _ in 0..taken {
            self.count_fault("snapshot-taken");
        }
        for _ in 0..installs {
            self.count_fault("snapshot-installed");
        }
        // As on the server, the apply side answers proposers and releases
        // reads at once; the loop learns of the apply in its next round.
        self.server_answer_clients(id);
        self.serve_ready_reads(id);
        self.server_enqueue(id, reports);
    }

    /// Finishes a snapshot whose batch is durable (and compacts the log to
    /// it), perhaps with a crash armed inside. Returns whether the member
    /// is still up.
    fn server_finish_snapshot(&mut self, id: NodeId, pending: &PendingSnapshot) -> bool {
        let armed = self.arm_crash_inside_step(id);
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(server) = node.server.as_mut() else {
            return false;
        };
        let result = complete_snapshot(&mut node.disk, &server.snapshots, pending);
        match (result, armed) {
            (Ok(()), _) => {
                if armed {
                    self.disarm_crash(id);
                }
                self.count_fault("snapshot-finished");
                true
            }
            (Err(_), true) => {
                self.crash_member(id);
                self.count_fault("crash-in-snapshot-finish");
                false
            }
            (Err(error), false) => {
                self.safety_violation(format!("member {id}: {error}"));
                true
            }
        }
    }

    /// The snapshot step the apply side's next batch of `id` will run, if
    /// any: an install it was handed, or a snapshot due once its entries
    /// are applied (the server's own policy, `snapshot::checkpoint_due`).
    fn apply_snapshot_step(&self, id: NodeId) -> Option<ApplySnapshotStep> {
        let node = self.nodes.get(&id)?;
        let server = node.server.as_ref()?;
        if server
            .apply_queue
            .iter()
            .any(|work| matches!(work, ApplyWork::Install { .. }))
        {
            return Some(ApplySnapshotStep::Install);
        }
        let last = server
            .apply_queue
            .iter()
            .rev()
            .find_map(|work| match work {
                ApplyWork::Entries(entries) => entries.last().map(|e| e.index),
                ApplyWork::Install { .. } => None,
            })?;
        let snapshots = server.apply.snapshots.as_ref()?;
        snapshot::checkpoint_due(
            last,
            node.kv.durable_applied_index(),
            snapshots.last_snapshot_index,
            snapshots.snapshot_count,
        )
        .map(|_| ApplySnapshotStep::Take)
    }

    /// A snapshot stream arrives whole at `to`: its files go through the
    /// server's `SnapshotReceiver` as chunks (one per file, the last
    /// carrying the checksum and the message), and the loop hears of the
    /// snapshot once it is durable, as from the server's transport.
    pub(super) fn server_receive_snapshot(
        &mut self,
        to: NodeId,
        message: Message,
        data: Option<Arc<SnapshotImage>>,
    ) {
        let from = message.from;
        let MessageBody::InstallSnapshot { snapshot } = &message.body else {
            return;
        };
        let index = snapshot.index;
        let armed = self.arm_crash_inside_step(to);
        let Some(server) = self.nodes.get_mut(&to).and_then(|n| n.server.as_mut()) else {
            return;
        };
        let files = data.map(|d| d.files.clone()).unwrap_or_default();
        let crc = files
            .iter()
            .fold(0, |crc, (_, content)| crc32c::crc32c_append(crc, content));
        let count = files.len();
        let mut outcome = Ok(None);
        for (position, (file, content)) in files.into_iter().enumerate() {
            let last = position + 1 == count;
            let chunk = SnapshotChunk {
                snapshot_index: index,
                file,
                offset: 0,
                data: bytes::Bytes::from(content),
                finish: last.then(|| (crc, message.clone())),
            };
            outcome = server.receiver.receive(from, chunk);
            if outcome.is_err() {
                break;
            }
        }
        if armed {
            if outcome.is_err() {
                self.crash_member(to);
                self.count_fault("crash-in-snapshot-receive");
                self.report_snapshot(from, to, false);
                return;
            }
            self.disarm_crash(to);
        }
        match outcome {
            Ok(Some((dir, message))) => {
                self.report_snapshot(from, to, true);
                self.server_enqueue(
                    to,
                    vec![LoopEvent::SnapshotReceived {
                        dir,
                        index,
                        message,
                    }],
                );
            }
            Ok(None) => {
                self.safety_violation(format!(
                    "member {to}: snapshot {index} from {from} has no files"
                ));
            }
            Err(error) => {
                self.safety_violation(format!(
                    "member {to}: snapshot {index} from {from} refused: {error}"
                ));
                self.report_snapshot(from, to, false);
            }
        }
    }

    /// A client's request reaches a server-loop member: a write becomes
    /// `LoopEvent::Propose`, a get `LoopEvent::ReadIndex`.
    pub(super) fn server_client_request(&mut self, id: NodeId, from: ClientRef, command: Command) {
        let Some(server) = self.nodes.get_mut(&id).and_then(|n| n.server.as_mut()) else {
            return;
        };
        let event = if let KvOp::Get { key } = command.op {
            let (reply, receiver) = oneshot::channel();
            server.reads.push(WaitingRead {
                client: from,
                key,
                reply: receiver,
            });
            LoopEvent::ReadIndex { reply }
        } else {
            let Some(request) = etcd::encode(&command) else {
                self.reply(from, Reply::Retry);
                return;
            };
            let (reply, receiver) = oneshot::channel();
            let at_follower = server.drive.node().role() != raftwood_raft::Role::Leader;
            server.proposals.push(WaitingProposal {
                client: from,
                request_id: command.request_id,
                at_follower,
                reply: receiver,
            });
            LoopEvent::Propose {
                id: command.request_id,
                request,
                reply,
            }
        };
        self.server_enqueue(id, vec![event]);
    }

    /// Proposers and readers whose answer arrived get it.
    pub(super) fn server_answer_clients(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(server) = node.server.as_mut() else {
            return;
        };
        let mut replies = Vec::new();
        let mut problems = Vec::new();
        let mut forwarded_acknowledged = 0;
        let applied_at = &server.applied_at;
        server.proposals.retain_mut(|waiting| {
            let result = match waiting.reply.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return true,
                // The loop dropped it: no answer; the client times out.
                Err(oneshot::error::TryRecvError::Closed) => return false,
                Ok(result) => result,
            };
            let reply = match result {
                Ok(Ok(response)) => match etcd::write_output(&response) {
                    Some(output) => {
                        forwarded_acknowledged += usize::from(waiting.at_follower);
                        Reply::Done {
                            output,
                            position: applied_at.get(&waiting.request_id).copied(),
                        }
                    }
                    None => {
                        problems.push(format!(
                            "member {id} answered request {} with {response:?}",
                            waiting.request_id
                        ));
                        return false;
                    }
                },
                Ok(Err(error)) => {
                    problems.push(format!(
                        "member {id}: the state machine refused request {}: {error}",
                        waiting.request_id
                    ));
                    return false;
                }
                Err(ProposeError::NotLeader { leader }) => Reply::NotLeader(leader),
                // Definite failures: the request was never appended, or can
                // never be applied any more, so sending it again is safe.
                Err(ProposeError::LeaderChanged | ProposeError::Busy) => Reply::Retry,
                // Unknown fate (a forwarded proposal may still be applied):
                // no answer, the client times out and never resends it.
                Err(ProposeError::ForwardTimedOut | ProposeError::Stopped) => return false,
                // Clients' writes are never membership changes.
                Err(ProposeError::Membership(refusal)) => {
                    problems.push(format!(
                        "member {id} refused write {} as a membership change: {refusal}",
                        waiting.request_id
                    ));
                    return false;
                }
            };
            replies.push((waiting.client, reply));
            false
        });
        let mut ready = Vec::new();
        server.reads.retain_mut(|waiting| {
            let result = match waiting.reply.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return true,
                Err(oneshot::error::TryRecvError::Closed) => return false,
                Ok(result) => result,
            };
            match result {
                Ok(index) => ready.push((index, waiting.client, waiting.key)),
                Err(ReadError::NoLeader) => replies.push((waiting.client, Reply::NotLeader(None))),
                Err(ReadError::TimedOut | ReadError::Stopped) => {
                    replies.push((waiting.client, Reply::Retry));
                }
            }
            false
        });
        for (index, client, key) in ready {
            node.reads_ready.push((index, client, key));
            if let Some(trace) = &mut self.trace {
                trace.push_str(&format!(
                    "           member {id} read for client {} attempt {} confirmed at index {index}\n",
                    client.client, client.attempt
                ));
            }
        }
        self.forwarded_writes_acknowledged += forwarded_acknowledged;
        for problem in problems {
            self.safety_violation(problem);
        }
        for (client, reply) in replies {
            self.reply(client, reply);
        }
    }

    /// The liveness probe, proposed through the leader's loop. Returns
    /// where it went, if the leader took it.
    pub(super) fn server_propose_probe(
        &mut self,
        leader: NodeId,
        payload: bytes::Bytes,
    ) -> Option<(Index, Term)> {
        let (reply, mut receiver) = oneshot::channel();
        let before = self.nodes.get(&leader)?.core()?.log().last_index();
        self.server_round(
            leader,
            vec![LoopEvent::Propose {
                // No id: only the leader may take it, never forwarded.
                id: 0,
                request: payload,
                reply,
            }],
        );
        if matches!(receiver.try_recv(), Ok(Err(_))) {
            return None;
        }
        let raft = self.nodes.get(&leader)?.core()?;
        let last = raft.log().last_index();
        (last == before + 1)
            .then(|| raft.log().term(last).ok().map(|term| (last, term)))
            .flatten()
    }
}

/// The snapshot step an apply batch runs. A crash armed for the batch may
/// land in the entries it applies before or after the step as well: it is
/// counted under the step (`crash-in-snapshot-install`, `-take`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApplySnapshotStep {
    /// It installs a snapshot received from the leader.
    Install,
    /// Its entries make a snapshot due, which it takes.
    Take,
}

/// The files of the finished snapshot at `index` in `store`, as the
/// transport would stream them (relative names, sorted), or `None` if the
/// sender cannot read it.
fn snapshot_image(store: &SnapshotStore, index: Index) -> Option<SnapshotImage> {
    let fs = store.fs();
    let dir = store.path_of(index);
    let mut files = Vec::new();
    let mut pending = vec![(dir.clone(), String::new())];
    while let Some((path, relative)) = pending.pop() {
        for name in fs.list_dir(&path).ok()? {
            let child = path.join(&name);
            let child_relative = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            if fs.is_dir(&child).ok()? {
                pending.push((child, child_relative));
            } else {
                files.push((child_relative, fs.read_file(&child).ok()?));
            }
        }
    }
    files.sort();
    Some(SnapshotImage { files })
}
