//! The follower's side: appends and heartbeats from the leader (paper §5.3),
//! snapshots (§7), TimeoutNow (thesis §3.10), answers to forwarded reads.

use bytes::Bytes;

use super::RaftNode;
use super::election::CampaignKind;
use crate::entry::Entry;
use crate::error::Error;
use crate::ids::{Index, NodeId, Term};
use crate::message::{Message, MessageBody, RejectHint};
use crate::snapshot::SnapshotMeta;

impl RaftNode {
    /// A follower processes a message of its own term.
    pub(super) fn step_follower(&mut self, message: Message) -> Result<(), Error> {
        let from = message.from;
        match message.body {
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                self.heard_from_leader(from);
                self.handle_append(
                    from,
                    message.term,
                    prev_log_index,
                    prev_log_term,
                    &entries,
                    commit,
                )
            }
            MessageBody::Heartbeat {
                commit,
                read_context,
            } => {
                self.heard_from_leader(from);
                // Commit only what this member holds; the leader caps the
                // commit at our match, this is the belt to those braces.
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(from, MessageBody::HeartbeatResponse { read_context });
                Ok(())
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.heard_from_leader(from);
                self.handle_snapshot(from, snapshot);
                Ok(())
            }
            MessageBody::VoteRequest { .. } | MessageBody::PreVoteRequest { .. } => {
                self.handle_vote_request(&message);
                Ok(())
            }
            MessageBody::TimeoutNow => {
                tracing::info!(
                    id = self.id(),
                    from,
                    "asked to campaign now (leadership transfer)"
                );
                self.campaign_if_allowed(CampaignKind::Transfer);
                Ok(())
            }
            MessageBody::ReadIndexResponse { context, index } => {
                self.handle_read_index_response(context, index);
                Ok(())
            }
            MessageBody::ProposeRequest { .. } => {
                // Only the leader of the message's term appends; dropping is
                // safe (see `MessageBody::ProposeRequest`). Not passed on: two
                // members with stale views of the leader would bounce it.
                tracing::debug!(
                    id = self.id(),
                    from,
                    "forwarded proposals reached a follower; dropped"
                );
                Ok(())
            }
            MessageBody::ReadIndexRequest { context } => {
                // Only a leader serves reads; the requester retries.
                self.send(
                    from,
                    MessageBody::ReadIndexResponse {
                        context,
                        index: None,
                    },
                );
                Ok(())
            }
            _ => {
                tracing::debug!(
                    id = self.id(),
                    from,
                    kind = message.body.kind_name(),
                    "follower ignores message"
                );
                Ok(())
            }
        }
    }

    fn heard_from_leader(&mut self, leader: NodeId) {
        self.election_elapsed_ticks = 0;
        self.leader = Some(leader);
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        term: Term,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: &[Entry],
        commit: Index,
    ) -> Result<(), Error> {
        if prev_log_index < self.log.committed() {
            // Everything up to our commit index matches the leader's log
            // (Log Matching); tell the leader where to continue.
            let committed = self.log.committed();
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: committed,
                    reject: None,
                },
            );
            return Ok(());
        }
        if !valid_entries(prev_log_index, prev_log_term, term, entries) {
            tracing::warn!(
                id = self.id(),
                from,
                "malformed append (indexes not consecutive or terms out of order); ignoring"
            );
            return Ok(());
        }
        match self
            .log
            .append_as_follower(prev_log_index, prev_log_term, entries)
        {
            Ok(Some(last_new_index)) => {
                // Log Matching (paper §5.3): the log now holds the leader's
                // entries through the last one sent.
                debug_assert!(
                    self.log.matches(
                        last_new_index,
                        entries.last().map_or(prev_log_term, |e| e.term)
                    ),
                    "the log does not end like the leader's append"
                );
                self.log.commit_to(commit.min(last_new_index));
                // Planted bug: acknowledge before the entries are durable.
                #[cfg(feature = "planted-bugs")]
                if self
                    .config
                    .has_planted_bug(crate::config::PlantedBug::FollowerAcksBeforePersist)
                {
                    let term = self.term;
                    self.send_now(Message {
                        from: self.id(),
                        to: from,
                        term,
                        body: MessageBody::AppendResponse {
                            index: last_new_index,
                            reject: None,
                        },
                    });
                    return Ok(());
                }
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: last_new_index,
                        reject: None,
                    },
                );
                Ok(())
            }
            Ok(None) => {
                let (hint_index, hint_term) = self.log.conflict_hint(prev_log_index, prev_log_term);
                tracing::debug!(
                    id = self.id(),
                    from,
                    prev_log_index,
                    prev_log_term,
                    hint_index,
                    hint_term,
                    "rejecting append"
                );
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: prev_log_index,
                        reject: Some(RejectHint {
                            index: hint_index,
                            term: hint_term,
                        }),
                    },
                );
                Ok(())
            }
            Err(conflict_index) => {
                tracing::error!(
                    id = self.id(),
                    from,
                    term,
                    conflict_index,
                    "append contradicts the committed log; ignoring"
                );
                Err(Error::ContradictsCommittedLog { from, term })
            }
        }
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: SnapshotMeta) {
        let index = snapshot.index;
        // Build the configuration first: a snapshot whose membership cannot
        // be used is refused before the log is touched.
        let restored = crate::membership::Changer::restore(
            &snapshot.conf_state,
            snapshot.index,
            self.config.max_inflight_messages,
            self.config.max_inflight_bytes,
        );
        let (config, progress) = match restored {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(id = self.id(), from, %error, "snapshot with an invalid configuration; ignoring");
                return;
            }
        };
        if self.log.install_snapshot(snapshot.clone()) {
            tracing::info!(id = self.id(), from, index, "installing a snapshot");
            self.tracker.install(config, progress);
            self.conf_history = vec![(snapshot.index, snapshot.conf_state)];
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: self.log.last_index(),
                    reject: None,
                },
            );
        } else {
            // Older than what we have committed (or we already hold its last
            // entry): nothing to install; tell the leader where we are.
            let committed = self.log.committed();
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: committed,
                    reject: None,
                },
            );
        }
    }

    fn handle_read_index_response(&mut self, context: Bytes, index: Option<Index>) {
        match index {
            Some(index) => self
                .read_states
                .push(crate::effects::ReadState { index, context }),
            None => self.failed_reads.push(context),
        }
    }
}

/// Entries of an append must follow its previous entry with consecutive
/// indexes and non-decreasing terms no higher than the message's term.
fn valid_entries(
    prev_log_index: Index,
    prev_log_term: Term,
    term: Term,
    entries: &[Entry],
) -> bool {
    let mut previous_term = prev_log_term;
    for (expected, entry) in (prev_log_index + 1..).zip(entries) {
        if entry.index != expected || entry.term < previous_term || entry.term > term {
            return false;
        }
        previous_term = entry.term;
    }
    prev_log_term <= term
}
