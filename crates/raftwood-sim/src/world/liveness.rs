//! The liveness phase (faults stop; the cluster must commit a probe and
//! converge within a bound) and the end of the run: the history to check
//! and the report.

use super::*;

impl Simulation {
    pub(super) fn begin_liveness_phase(&mut self) {
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
    pub(super) fn liveness_check(&mut self) {
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
            .and_then(SimNode::core)
            .map(|r| (r.conf_state(), (r.log().committed(), r.term())))
        else {
            return;
        };
        let probe_ok = self.probe.is_some_and(|(index, term)| {
            self.nodes
                .get(&leader)
                .and_then(SimNode::core)
                .is_some_and(|r| r.log().term(index) == Ok(term) && r.log().applied() >= index)
        });
        if !probe_ok {
            let leader_term = leader_log.1;
            let probe_is_current = self.probe.is_some_and(|(index, term)| {
                term == leader_term
                    && self
                        .nodes
                        .get(&leader)
                        .and_then(SimNode::core)
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
                node.server = None;
                node.incarnation += 1;
            }
        }
        // Converged: every member has applied the leader's commit index and
        // holds the same state machine.
        let Some(target) = self
            .nodes
            .get(&leader)
            .and_then(SimNode::core)
            .map(|r| r.log().committed())
        else {
            return;
        };
        let caught_up = members.iter().all(|id| {
            self.nodes.get(id).is_some_and(|n| {
                n.core()
                    .is_some_and(|r| r.log().applied() >= target && r.log().committed() >= target)
                    && n.kv_applied >= target
            })
        });
        // (Waiting for clients first: a digest reads the whole store.)
        if !caught_up || !self.clients_idle() {
            return;
        }
        // Members that applied the same index must hold the same store:
        // compare their `state_digest`s.
        let mut states = Vec::new();
        for id in &members {
            if let Some(node) = self.nodes.get(id) {
                states.push((*id, node.kv_applied, node.kv.digest()));
            }
        }
        let Some((first_id, first_applied, first_digest)) = states.first().cloned() else {
            return;
        };
        if states
            .iter()
            .any(|(_, applied, _)| *applied != first_applied)
        {
            return;
        }
        let mut problems = Vec::new();
        for (id, _, digest) in &states {
            match (digest, &first_digest) {
                (Ok(digest), Ok(expected)) if digest == expected => {}
                (Ok(digest), Ok(expected)) => problems.push(format!(
                    "state machines diverged: at index {first_applied} member {id} has digest {digest:08x}, member {first_id} {expected:08x}"
                )),
                (Err(error), _) | (_, Err(error)) => {
                    problems.push(format!("member {id}: {error}"));
                }
            }
        }
        let converged = problems.is_empty();
        for problem in problems {
            self.safety_violation(problem);
        }
        if converged {
            for id in &members {
                if let Some(raft) = self.nodes.get(id).and_then(SimNode::core) {
                    self.safety.check_acknowledged_in(*id, raft);
                }
            }
            self.trace(|| format!("converged at index {target} with leader {leader}"));
            self.phase = Phase::Done;
        }
    }

    pub(super) fn propose_probe(&mut self, leader: NodeId) {
        self.probes_sent += 1;
        let command = Command {
            request_id: PROBE_REQUEST_BASE + self.probes_sent,
            op: KvOp::Put {
                key: PROBE_KEY,
                value: self.probes_sent,
            },
        };
        let position = if self.options.server_loop {
            etcd::encode(&command)
                .and_then(|payload| self.server_propose_probe(leader, payload))
                .map(|(index, term)| raftwood_raft::LogPosition { index, term })
        } else {
            self.nodes
                .get_mut(&leader)
                .and_then(|n| n.raft.as_mut())
                .zip(etcd::encode(&command))
                .and_then(|(r, payload)| r.propose(payload).ok())
        };
        if let Some(position) = position {
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

    pub(super) fn describe_cluster(&self) -> String {
        let mut text = String::new();
        for (id, node) in &self.nodes {
            match node.core() {
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
            if let Some(raft) = node.core().filter(|r| r.role() == Role::Leader) {
                for member in raft.tracker().members() {
                    if let Some(progress) = raft.tracker().progress(member) {
                        text.push_str(&format!("    progress of {member}: {progress}\n"));
                    }
                }
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
    pub(super) fn history_to_check(&self) -> (Vec<Operation>, usize) {
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
            forwarded_writes_acknowledged: self.forwarded_writes_acknowledged,
            committed_entries: self.safety.committed_len(),
            safety_violations,
            liveness_failure: self.liveness_failure,
            verdict: check.verdict,
            trace: self.trace,
            history: self.history,
        }
    }
}
