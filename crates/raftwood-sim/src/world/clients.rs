//! Simulated clients: one operation at a time, sent to the member believed
//! to lead, redirected by hints, retried on definite failures, given up
//! (unknown outcome) after a timeout; every operation recorded.

use super::*;

impl Simulation {
    pub(super) fn random_member(&mut self) -> NodeId {
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

    pub(super) fn client_start(&mut self, client: usize) {
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
    pub(super) fn client_send(&mut self, client: usize) {
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

    pub(super) fn client_resend(&mut self, client: usize, attempt: u64) {
        let still_current = self
            .clients
            .get(client)
            .and_then(|c| c.current)
            .is_some_and(|p| p.attempt == attempt);
        if still_current {
            self.client_send(client);
        }
    }

    pub(super) fn on_client_request(&mut self, id: NodeId, from: ClientRef, command: Command) {
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
        if self.options.server_loop {
            self.server_client_request(id, from, command);
            return;
        }
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
            match etcd::encode(&command).map(|payload| raft.propose(payload)) {
                Some(Ok(position)) => {
                    node.proposals.insert(position.index, (position.term, from));
                    None
                }
                Some(Err(Error::NotLeader { leader })) => Some(Reply::NotLeader(leader)),
                Some(Err(_)) | None => Some(Reply::Retry),
            }
        };
        if let Some(reply) = reply {
            self.reply(from, reply);
        }
        self.after_step(id);
    }

    pub(super) fn on_client_reply(&mut self, to: ClientRef, reply: Reply) {
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

    pub(super) fn on_client_timeout(&mut self, client: usize, request_id: u64) {
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

    pub(super) fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.current.is_none())
    }
}
