//! Linearizable reads without writing to the log (thesis §6.4): ReadIndex,
//! confirmed by a heartbeat round, and the lease-based variant (§6.4.1).

use bytes::Bytes;

use super::RaftNode;
use crate::config::ReadOnlyMode;
use crate::effects::ReadState;
use crate::error::Error;
use crate::ids::NodeId;
use crate::message::MessageBody;
use crate::quorum::VoteResult;
use crate::read_only::{context_to_round, round_to_context};
use crate::role::Role;

impl RaftNode {
    /// Asks for a linearizable read. When it is confirmed, a
    /// [`ReadState`] with the same `context` appears in the effects: the read
    /// may be served once the state machine has applied up to its index. A
    /// follower forwards the request to the leader.
    pub fn read_index(&mut self, context: Bytes) -> Result<(), Error> {
        match self.role {
            Role::Leader => self.serve_read(self.id(), context),
            Role::Follower => match self.leader {
                Some(leader) => {
                    self.send(leader, MessageBody::ReadIndexRequest { context });
                    Ok(())
                }
                None => Err(Error::NotLeader { leader: None }),
            },
            Role::Candidate | Role::PreCandidate => Err(Error::NotLeader { leader: None }),
        }
    }

    /// The leader received a read forwarded by a follower.
    pub(super) fn handle_forwarded_read(&mut self, from: NodeId, context: Bytes) {
        if let Err(error) = self.serve_read(from, context.clone()) {
            tracing::debug!(id = self.id(), from, %error, "cannot serve a forwarded read yet");
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    context,
                    index: None,
                },
            );
        }
    }

    fn serve_read(&mut self, requester: NodeId, context: Bytes) -> Result<(), Error> {
        // Until an entry of this term is committed, the leader's commit index
        // may lag what earlier leaders committed (thesis §6.4 step 1).
        let committed = self.log.committed();
        if self.log.term(committed) != Ok(self.term) {
            return Err(Error::ReadIndexNotReady);
        }
        if self.tracker.is_singleton() && self.tracker.is_voter(self.id()) {
            self.confirm_read(requester, context, committed);
            return Ok(());
        }
        match self.config.read_only_mode {
            // Check-quorum guarantees the leader steps down within an
            // election timeout of losing its quorum, and no other member
            // votes while it heard from this leader within the timeout, so
            // no newer leader can exist yet (assuming bounded clock drift).
            ReadOnlyMode::LeaseBased => self.confirm_read(requester, context, committed),
            ReadOnlyMode::Safe => {
                let round = self.read_only.add(context, committed, requester, self.id());
                self.broadcast_heartbeat(Some(round_to_context(round)));
            }
        }
        Ok(())
    }

    /// A follower answered a heartbeat that carried a read round.
    pub(super) fn acknowledge_read_round(&mut self, from: NodeId, context: &[u8]) {
        let Some(round) = context_to_round(context) else {
            return;
        };
        let Some(acknowledged) = self.read_only.acknowledge(round, from) else {
            return;
        };
        let acknowledged = acknowledged.clone();
        let result = self
            .tracker
            .config()
            .voters
            .vote_result(|id| acknowledged.contains(&id).then_some(true));
        if result != VoteResult::Won {
            return;
        }
        for read in self.read_only.confirm_through(round) {
            self.confirm_read(read.requester, read.context, read.index);
        }
    }

    fn confirm_read(&mut self, requester: NodeId, context: Bytes, index: crate::ids::Index) {
        if requester == self.id() {
            self.read_states.push(ReadState { index, context });
        } else {
            self.send(
                requester,
                MessageBody::ReadIndexResponse {
                    context,
                    index: Some(index),
                },
            );
        }
    }

    /// A read that can no longer be confirmed (this member stepped down).
    pub(super) fn fail_read(&mut self, requester: NodeId, context: Bytes) {
        if requester == self.id() {
            self.failed_reads.push(context);
        } else {
            self.send(
                requester,
                MessageBody::ReadIndexResponse {
                    context,
                    index: None,
                },
            );
        }
    }
}
