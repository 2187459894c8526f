//! The leader's side of log replication (paper §5.3) and the commit rule
//! (§5.4.2): proposals, append and heartbeat messages with batching,
//! pipelining and flow control, acknowledgement handling, snapshots for
//! followers that fell behind the compacted log.

use bytes::Bytes;

use super::{LogPosition, Proposal, RaftNode};
use crate::entry::{Entry, EntryPayload};
use crate::error::Error;
use crate::ids::{Index, NodeId};
use crate::log::Unavailable;
use crate::message::{Message, MessageBody, RejectHint};
use crate::role::Role;
use crate::tracker::ProgressState;

impl RaftNode {
    /// Leader tick: heartbeats, and the check-quorum round.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum {
                // Thesis §6.2: a leader that has not heard from a quorum for
                // an election timeout may have been replaced; stepping down
                // stops it serving stale reads from its lease.
                if !self.tracker.quorum_active(self.id()) {
                    tracing::info!(
                        id = self.id(),
                        term = self.term,
                        "lost contact with a quorum; stepping down"
                    );
                    self.become_follower(self.term, None);
                    return;
                }
                self.tracker.reset_recent_active(self.id());
            }
            if let Some(transferee) = self.lead_transferee.take() {
                tracing::info!(id = self.id(), transferee, "leadership transfer timed out");
            }
        }
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat(
                self.read_only
                    .latest_round()
                    .map(crate::read_only::round_to_context),
            );
        }
    }

    /// Won the election: take over replication and append the no-op that
    /// lets this term commit (paper §8).
    pub(super) fn become_leader(&mut self) {
        assert_ne!(self.role, Role::Follower, "only a candidate becomes leader");
        // Not a pre-candidate either: winning a pre-vote leads to a real
        // election, not to leadership. And the election was won.
        debug_assert_eq!(self.role, Role::Candidate);
        debug_assert_eq!(self.tracker.tally_votes().2, crate::quorum::VoteResult::Won);
        let term = self.term;
        self.leader = Some(self.id());
        self.role = Role::Leader;
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        self.lead_transferee = None;
        self.uncommitted_bytes = 0;
        self.forwarded_batch_ids.clear();
        let last_index = self.log.last_index();
        let persisted = self.log.persisted();
        let own_id = self.id();
        let members: Vec<NodeId> = self.tracker.members().collect();
        for id in members {
            let Some(progress) = self.tracker.progress_mut(id) else {
                continue;
            };
            // Optimistically assume every follower holds our whole log; the
            // first append finds out (paper §5.3, nextIndex initialisation).
            progress.matched = 0;
            progress.become_probe();
            progress.next = last_index + 1;
            progress.recent_active = true;
            if id == own_id {
                // Invariant: the leader's own match is what it has durably.
                progress.matched = persisted;
                progress.become_replicate();
            }
        }
        // No configuration change until this term's first entry is applied:
        // before that the leader may not know the latest configuration.
        self.pending_conf_index = last_index + 1;
        tracing::info!(id = self.id(), term, "became leader");
        self.append_entries(vec![EntryPayload::Empty]);
        self.broadcast_append();
    }

    /// Appends new entries of this term to the leader's own log.
    fn append_entries(&mut self, payloads: Vec<EntryPayload>) -> LogPosition {
        let mut index = self.log.last_index();
        let entries: Vec<Entry> = payloads
            .into_iter()
            .map(|payload| {
                index += 1;
                Entry {
                    term: self.term,
                    index,
                    payload,
                }
            })
            .collect();
        self.uncommitted_bytes += entries.iter().map(Entry::payload_size_bytes).sum::<u64>();
        self.log.append_as_leader(entries);
        // The leader's own progress advances when persistence completes
        // (`on_persisted`), never here.
        // Planted bug: count the leader's copy before it is durable.
        #[cfg(feature = "planted-bugs")]
        if self
            .config
            .has_planted_bug(crate::config::PlantedBug::LeaderCountsEntriesBeforePersist)
        {
            let own_id = self.id();
            if let Some(progress) = self.tracker.progress_mut(own_id) {
                progress.maybe_update(index);
            }
        }
        LogPosition {
            index,
            term: self.term,
        }
    }

    /// Proposes a command. Only the leader accepts proposals; the caller
    /// forwards them otherwise. Returns where the entry landed.
    pub fn propose(&mut self, data: Bytes) -> Result<LogPosition, Error> {
        self.propose_many(vec![data])
    }

    /// Proposes several commands at once (one batch of entries, one round of
    /// messages). Returns the position of the last one. Only the leader
    /// accepts them; see [`RaftNode::propose_batch`] for a caller that
    /// wants a follower to pass them on.
    pub fn propose_many(&mut self, commands: Vec<Bytes>) -> Result<LogPosition, Error> {
        self.check_can_propose()?;
        self.append_commands(commands)
    }

    /// Proposes several commands on whichever member this is. The leader
    /// appends them as [`RaftNode::propose_many`] does. A follower that
    /// knows the leader of its term sends them to it in one
    /// [`MessageBody::ProposeRequest`] (thesis §6.2: a member contacted by
    /// a client that does not lead passes the request on), numbered
    /// `batch_id`, which must increase from call to call over this member's
    /// whole life, restarts included (the leader uses it to refuse
    /// duplicates). A member that knows no leader (a follower between
    /// leaders, a candidate) refuses at once with [`Error::NotLeader`].
    pub fn propose_batch(
        &mut self,
        batch_id: u64,
        commands: Vec<Bytes>,
    ) -> Result<Proposal, Error> {
        match (self.role, self.leader) {
            (Role::Leader, _) => self.propose_many(commands).map(Proposal::Appended),
            (Role::Follower, Some(leader)) if leader != self.id() => {
                let term = self.term;
                if !commands.is_empty() {
                    // The message depends on nothing this member holds
                    // durably: it carries no vote and no acknowledgement,
                    // and its term only addresses the leader of that term.
                    // So it need not wait behind the pending persist.
                    self.send_now(Message {
                        from: self.id(),
                        to: leader,
                        term,
                        body: MessageBody::ProposeRequest { batch_id, commands },
                    });
                }
                Ok(Proposal::Forwarded { leader, term })
            }
            _ => Err(Error::NotLeader {
                leader: self.leader,
            }),
        }
    }

    /// The leader received commands forwarded by `from` (a
    /// [`MessageBody::ProposeRequest`] of its own term: `step_term` has
    /// turned away the others). They are appended exactly as local
    /// proposals, under the same refusals; a refused, duplicated or stale
    /// batch is dropped, which the message's documentation shows is safe.
    pub(super) fn handle_forwarded_proposals(
        &mut self,
        from: NodeId,
        batch_id: u64,
        commands: Vec<Bytes>,
    ) {
        if self.tracker.progress(from).is_none() {
            tracing::debug!(
                id = self.id(),
                from,
                "forwarded proposals from a non-member; dropped"
            );
            return;
        }
        let last_batch = self.forwarded_batch_ids.get(&from).copied();
        #[allow(unused_mut, reason = "changed only with planted bugs")]
        let mut seen = last_batch.is_some_and(|last| batch_id <= last);
        // Planted bug: append duplicates too.
        #[cfg(feature = "planted-bugs")]
        if self
            .config
            .has_planted_bug(crate::config::PlantedBug::AppendDuplicateForwardedBatches)
        {
            seen = false;
        }
        if seen {
            tracing::debug!(
                id = self.id(),
                from,
                batch_id,
                "forwarded proposals already seen or overtaken; dropped"
            );
            return;
        }
        self.forwarded_batch_ids.insert(from, batch_id);
        let count = commands.len();
        if let Err(error) = self.propose_many(commands) {
            tracing::debug!(
                id = self.id(),
                from,
                count,
                %error,
                "forwarded proposals refused; dropped"
            );
        }
    }

    /// Appends `commands` as new entries of the leader's term, within the
    /// uncommitted-bytes budget. The caller has checked that this member may
    /// propose.
    fn append_commands(&mut self, commands: Vec<Bytes>) -> Result<LogPosition, Error> {
        debug_assert_eq!(self.role, Role::Leader, "only the leader appends proposals");
        let bytes: u64 = commands.iter().map(|c| c.len() as u64).sum();
        // An oversized batch is still accepted when nothing is uncommitted,
        // so that no single proposal can be refused forever.
        let limit = self.config.max_uncommitted_bytes;
        if limit > 0 && self.uncommitted_bytes > 0 && self.uncommitted_bytes + bytes > limit {
            return Err(Error::ProposalDropped);
        }
        if commands.is_empty() {
            return Ok(LogPosition {
                index: self.log.last_index(),
                term: self.log.last_term(),
            });
        }
        let position =
            self.append_entries(commands.into_iter().map(EntryPayload::Command).collect());
        self.broadcast_append();
        Ok(position)
    }

    pub(super) fn check_can_propose(&self) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if self.lead_transferee.is_some() {
            return Err(Error::TransferInProgress);
        }
        Ok(())
    }

    /// Appends a configuration change entry (leader only).
    pub(super) fn append_conf_change(&mut self, payload: EntryPayload) -> LogPosition {
        let position = self.append_entries(vec![payload]);
        self.pending_conf_index = position.index;
        self.broadcast_append();
        position
    }

    /// Sends appends to every follower that is not paused.
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, false);
        }
    }

    /// Sends `to` the entries it needs next, or a snapshot if they are
    /// compacted. With `allow_empty`, sends an empty append (a probe or a
    /// commit update) even if there is nothing new. Returns whether a
    /// message was sent.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(progress) = self.tracker.progress(to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next = progress.next;
        let previous = next - 1;
        let entries = match self.log.term(previous) {
            Ok(previous_term) => {
                let entries = match self.log.slice(
                    next,
                    self.log.last_index() + 1,
                    self.config.max_message_bytes,
                    self.config.max_message_entries,
                ) {
                    Ok(entries) => entries,
                    Err(_) => return self.send_snapshot(to),
                };
                if entries.is_empty() && !allow_empty && progress.state == ProgressState::Replicate
                {
                    return false;
                }
                Some((previous_term, entries))
            }
            Err(Unavailable::Compacted) => None,
            Err(Unavailable::Beyond) => {
                // `next` can exceed our log only through a bug; probing from
                // our last entry repairs it.
                tracing::warn!(
                    id = self.id(),
                    to,
                    next,
                    "follower's next index is past the leader's log"
                );
                let last_index = self.log.last_index();
                if let Some(progress) = self.tracker.progress_mut(to) {
                    progress.become_probe();
                    progress.next = last_index + 1;
                }
                return false;
            }
        };
        let Some((previous_term, entries)) = entries else {
            return self.send_snapshot(to);
        };
        let count = entries.len();
        let bytes: u64 = entries.iter().map(Entry::payload_size_bytes).sum();
        let last_index = entries.last().map_or(previous, |e| e.index);
        let commit = self.log.committed();
        if let Some(progress) = self.tracker.progress_mut(to) {
            progress.sent_entries(count, last_index, bytes);
        }
        self.send_now(Message {
            from: self.id(),
            to,
            term: self.term,
            body: MessageBody::AppendRequest {
                prev_log_index: previous,
                prev_log_term: previous_term,
                entries,
                commit,
            },
        });
        true
    }

    /// The follower needs entries the leader compacted: send the snapshot
    /// (paper §7). Only to followers heard from recently, so a dead member
    /// does not make the server stream snapshots into the void.
    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let snapshot = self.log.snapshot().clone();
        let Some(progress) = self.tracker.progress_mut(to) else {
            return false;
        };
        if !progress.recent_active {
            return false;
        }
        progress.become_snapshot(snapshot.index);
        tracing::info!(
            id = self.id(),
            to,
            index = snapshot.index,
            "sending a snapshot"
        );
        let term = self.term;
        self.send_now(Message {
            from: self.id(),
            to,
            term,
            body: MessageBody::InstallSnapshot { snapshot },
        });
        true
    }

    /// Heartbeats to every follower, carrying a read round if one waits.
    pub(super) fn broadcast_heartbeat(&mut self, read_context: Option<Bytes>) {
        for peer in self.peers() {
            let Some(progress) = self.tracker.progress(peer) else {
                continue;
            };
            // A follower may not commit past what it is known to hold.
            let commit = self.log.committed().min(progress.matched);
            let term = self.term;
            self.send_now(Message {
                from: self.id(),
                to: peer,
                term,
                body: MessageBody::Heartbeat {
                    commit,
                    read_context: read_context.clone(),
                },
            });
        }
    }

    /// Raises the commit index to what a quorum has durably (counting only
    /// entries of this term, Figure 8) and tells the followers.
    pub(super) fn maybe_commit_and_broadcast(&mut self) {
        let before = self.log.committed();
        let quorum_index = self.tracker.committed_index();
        #[cfg(not(feature = "planted-bugs"))]
        let commit_term = self.term;
        // Planted bug: commit whatever term a quorum holds (Figure 8).
        #[cfg(feature = "planted-bugs")]
        let commit_term = if self
            .config
            .has_planted_bug(crate::config::PlantedBug::CommitPreviousTermByCounting)
        {
            self.log.term(quorum_index).unwrap_or(self.term)
        } else {
            self.term
        };
        if self.log.maybe_commit(quorum_index, commit_term) {
            let after = self.log.committed();
            let committed_bytes: u64 = (before + 1..=after)
                .filter_map(|i| self.log.entry(i))
                .filter(|e| e.term == self.term)
                .map(Entry::payload_size_bytes)
                .sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(committed_bytes);
            for peer in self.peers() {
                self.send_append(peer, true);
            }
        }
    }

    /// The leader's own persistence completed up to `index`.
    pub(super) fn leader_persisted(&mut self, index: Index) {
        let own_id = self.id();
        if let Some(progress) = self.tracker.progress_mut(own_id) {
            progress.maybe_update(index);
        }
        self.maybe_commit_and_broadcast();
    }

    /// The leader processes a message of its own term.
    pub(super) fn step_leader(&mut self, message: Message) -> Result<(), Error> {
        let from = message.from;
        match message.body {
            MessageBody::AppendResponse { index, reject } => {
                self.handle_append_response(from, index, reject)
            }
            MessageBody::HeartbeatResponse { read_context } => {
                self.handle_heartbeat_response(from, read_context)
            }
            MessageBody::VoteRequest { .. } | MessageBody::PreVoteRequest { .. } => {
                self.handle_vote_request(&message)
            }
            MessageBody::ReadIndexRequest { context } => self.handle_forwarded_read(from, context),
            MessageBody::ProposeRequest { batch_id, commands } => {
                self.handle_forwarded_proposals(from, batch_id, commands);
            }
            MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                // Two leaders in one term would break election safety; the
                // message must be corrupt or forged. Never act on it.
                tracing::error!(
                    id = self.id(),
                    from,
                    term = self.term,
                    "another leader claims this term; ignoring"
                );
            }
            _ => tracing::debug!(
                id = self.id(),
                from,
                kind = message.body.kind_name(),
                "leader ignores message"
            ),
        }
        Ok(())
    }

    fn handle_append_response(&mut self, from: NodeId, index: Index, reject: Option<RejectHint>) {
        if index > self.log.last_index() {
            // No follower can hold (or reject) an index this leader never
            // sent; acting on it would put the follower's match past our log.
            tracing::warn!(
                id = self.id(),
                from,
                index,
                "append response beyond the leader's log; ignoring"
            );
            return;
        }
        let Some(progress) = self.tracker.progress_mut(from) else {
            tracing::debug!(id = self.id(), from, "append response from a non-member");
            return;
        };
        progress.recent_active = true;
        if let Some(hint) = reject {
            // Skip back over the whole conflicting term at once: the
            // highest index at or below the hint whose term in our log is at
            // most the follower's term there.
            let (probe_index, _) = self.log.conflict_hint(hint.index, hint.term);
            let Some(progress) = self.tracker.progress_mut(from) else {
                return;
            };
            // A real rejection in Replicate drops the follower to Probe
            // inside `maybe_decrease_to`.
            if progress.maybe_decrease_to(index, probe_index) {
                self.send_append(from, true);
            }
            return;
        }
        let was_paused = progress.is_paused();
        if !progress.maybe_update(index) {
            return;
        }
        match progress.state {
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Snapshot { pending_index } if progress.matched >= pending_index => {
                // The follower caught up past the snapshot (from it, or from
                // entries): resume normal replication.
                progress.become_probe();
                progress.become_replicate();
            }
            ProgressState::Snapshot { .. } | ProgressState::Replicate => {}
        }
        let matched = progress.matched;
        let before = self.log.committed();
        self.maybe_commit_and_broadcast();
        if self.log.committed() == before && was_paused {
            // The follower was paused (a probe outstanding, or a full
            // window), so it may have missed the commit index carried by
            // appends sent meanwhile: send one even if it has no entries.
            // (With `false` a follower that just left Probe stayed behind on
            // the commit index until the next heartbeat; found by the
            // scenario election_basic.txt.)
            self.send_append(from, true);
        }
        // Pipelining: fill the in-flight window.
        while self.send_append(from, false) {}
        if self.lead_transferee == Some(from) && matched == self.log.last_index() {
            tracing::info!(
                id = self.id(),
                to = from,
                "transferee caught up; sending TimeoutNow"
            );
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, read_context: Option<Bytes>) {
        let Some(progress) = self.tracker.progress_mut(from) else {
            return;
        };
        progress.recent_active = true;
        progress.heartbeat_response_received();
        let needs_entries = progress.matched < self.log.last_index();
        if needs_entries {
            self.send_append(from, true);
        }
        if let Some(context) = read_context {
            self.acknowledge_read_round(from, &context);
        }
    }

    /// The caller finished (or failed) sending a snapshot to `to`.
    pub fn report_snapshot(&mut self, to: NodeId, success: bool) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.tracker.progress_mut(to) {
            progress.snapshot_reported(success);
        }
    }

    /// The caller could not reach `to`: stop pipelining to it and probe.
    pub fn report_unreachable(&mut self, to: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.tracker.progress_mut(to)
            && progress.state == ProgressState::Replicate
        {
            progress.become_probe();
        }
    }
}
