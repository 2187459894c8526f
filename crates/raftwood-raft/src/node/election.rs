//! Terms, votes and roles (paper §5.1, §5.2, §5.4.1; thesis §9.6 pre-vote,
//! §6.2 check-quorum).

use rand::Rng;

use super::RaftNode;
use crate::error::Error;
use crate::ids::{NodeId, Term};
use crate::message::{Message, MessageBody};
use crate::quorum::VoteResult;
use crate::role::Role;

/// Why an election starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignKind {
    /// The election timer fired: pre-vote first if configured.
    Timeout,
    /// The leader asked (TimeoutNow): vote directly, and voters ignore
    /// their leader lease.
    Transfer,
}

impl RaftNode {
    /// Follower and candidate tick: campaign once the election timer fires.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.randomized_election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            self.campaign_if_allowed(CampaignKind::Timeout);
        }
    }

    /// Starts an election unless this member may not lead: it is not a
    /// voter, or committed configuration changes are not yet applied (it
    /// could otherwise lead under a configuration it has not seen).
    pub(super) fn campaign_if_allowed(&mut self, kind: CampaignKind) {
        if !self.is_promotable() {
            tracing::debug!(id = self.id(), "not a voter; no campaign");
            return;
        }
        if self.has_unapplied_conf_change() {
            tracing::debug!(
                id = self.id(),
                "committed configuration changes are unapplied; no campaign"
            );
            return;
        }
        if kind == CampaignKind::Timeout && self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(kind);
        }
    }

    /// Whether this member is a voter of the configuration in force.
    pub(super) fn is_promotable(&self) -> bool {
        self.tracker.is_voter(self.id())
    }

    fn has_unapplied_conf_change(&self) -> bool {
        let from = self.log.applied() + 1;
        (from..=self.log.committed()).any(|i| self.log.entry(i).is_some_and(|e| e.is_conf_change()))
    }

    /// Draws this term's election timeout from the seeded generator.
    pub(super) fn reset_randomized_election_timeout(&mut self) {
        let base = self.config.election_timeout_ticks;
        self.randomized_election_timeout_ticks = self.rng.random_range(base..2 * base);
    }

    fn reset(&mut self, term: Term) {
        if self.term != term {
            assert!(term > self.term, "terms never go back");
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.tracker.reset_votes();
        self.uncommitted_bytes = 0;
        for read in self.read_only.drain() {
            self.fail_read(read.requester, read.context);
        }
    }

    /// Becomes a follower of `term`, following `leader` if known.
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.leader = leader;
        if self.role != Role::Follower {
            tracing::info!(id = self.id(), term, ?leader, "became follower");
        }
        self.role = Role::Follower;
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        debug_assert!(self.is_promotable(), "only a voter campaigns");
        // Pre-vote changes neither term nor vote (thesis §9.6): a member
        // that cannot win leaves no trace.
        self.tracker.reset_votes();
        self.leader = None;
        self.election_elapsed_ticks = 0;
        // A fresh draw per attempt, so that two members whose pre-votes
        // collided do not collide again.
        self.reset_randomized_election_timeout();
        self.role = Role::PreCandidate;
        tracing::info!(id = self.id(), term = self.term, "became pre-candidate");
        self.tracker.record_vote(self.id(), true);
        if self.tally() == VoteResult::Won {
            self.become_candidate(CampaignKind::Timeout);
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for voter in self.other_voters() {
            // A pre-vote request carries the term the member would campaign
            // in; it depends on no durable state, so it goes out at once.
            self.send_now(Message {
                from: self.id(),
                to: voter,
                term: self.term + 1,
                body: MessageBody::PreVoteRequest {
                    last_log_index,
                    last_log_term,
                },
            });
        }
    }

    fn become_candidate(&mut self, kind: CampaignKind) {
        assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        self.reset(self.term + 1);
        self.vote = Some(self.id());
        self.role = Role::Candidate;
        tracing::info!(id = self.id(), term = self.term, "became candidate");
        // The candidate's own vote counts only once it is durable: it is a
        // message to itself, released by the persistence of this term and
        // vote. Otherwise a crash could let it vote twice in one term.
        let own_vote = MessageBody::VoteResponse { reject: false };
        self.send(self.id(), own_vote);
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for voter in self.other_voters() {
            self.send(
                voter,
                MessageBody::VoteRequest {
                    last_log_index,
                    last_log_term,
                    leadership_transfer: kind == CampaignKind::Transfer,
                },
            );
        }
    }

    fn other_voters(&self) -> Vec<NodeId> {
        self.tracker
            .config()
            .voters
            .ids()
            .into_iter()
            .filter(|&id| id != self.id())
            .collect()
    }

    fn tally(&self) -> VoteResult {
        self.tracker.tally_votes().2
    }

    /// Applies the term rules every message goes through (paper §5.1):
    /// returns false if the message must be dropped.
    pub(super) fn step_term(&mut self, message: &Message) -> bool {
        use MessageBody as B;
        if message.term > self.term {
            let is_vote_request = match message.body {
                B::VoteRequest {
                    leadership_transfer,
                    ..
                } => !leadership_transfer,
                B::PreVoteRequest { .. } => true,
                _ => false,
            };
            if is_vote_request && self.in_leader_lease() {
                tracing::debug!(
                    id = self.id(),
                    from = message.from,
                    "ignoring a vote request inside the leader lease"
                );
                return false;
            }
            match message.body {
                // Answering a pre-vote changes nothing here.
                B::PreVoteRequest { .. } => {}
                // A granted pre-vote comes back at the term we would campaign
                // in; that is not a newer term of the cluster.
                B::PreVoteResponse { reject: false } => {}
                B::AppendRequest { .. } | B::Heartbeat { .. } | B::InstallSnapshot { .. } => {
                    self.become_follower(message.term, Some(message.from));
                }
                _ => self.become_follower(message.term, None),
            }
            return true;
        }
        if message.term < self.term {
            match message.body {
                // A stale leader (partitioned, then healed) learns the newer
                // term from the answer and steps down; without this, with
                // check-quorum or pre-vote it could go on heartbeating a
                // cluster that ignores it.
                B::AppendRequest { .. } | B::Heartbeat { .. }
                    if self.config.check_quorum || self.config.pre_vote =>
                {
                    self.send(
                        message.from,
                        B::AppendResponse {
                            index: self.log.last_index(),
                            reject: None,
                        },
                    );
                }
                // A pre-candidate with a stale term learns the current term
                // from the rejection (the "pre-vote with lagging term" case).
                B::PreVoteRequest { .. } => {
                    self.send(message.from, B::PreVoteResponse { reject: true });
                }
                _ => tracing::debug!(
                    id = self.id(),
                    from = message.from,
                    term = message.term,
                    "ignoring a message from an older term"
                ),
            }
            return false;
        }
        true
    }

    /// Inside the lease: check-quorum is on and this member heard from a
    /// leader less than an election timeout ago (or is the leader). Vote
    /// requests are then ignored, so a member that was cut off cannot
    /// depose a healthy leader (thesis §4.2.3).
    fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed_ticks < self.config.election_timeout_ticks
    }

    /// Answers a vote or pre-vote request (paper §5.2, §5.4.1).
    pub(super) fn handle_vote_request(&mut self, message: &Message) {
        let (last_log_index, last_log_term, is_pre_vote) = match message.body {
            MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                ..
            } => (last_log_index, last_log_term, false),
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
            } => (last_log_index, last_log_term, true),
            _ => return,
        };
        let can_vote = self.vote == Some(message.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (is_pre_vote && message.term > self.term);
        // Planted bug: vote again in a term already voted in.
        #[cfg(feature = "planted-bugs")]
        let can_vote = can_vote
            || (!is_pre_vote
                && self
                    .config
                    .has_planted_bug(crate::config::PlantedBug::VoteTwiceInOneTerm));
        let grant = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        // Learners answer too: a learner may already be a voter in a
        // configuration it has not applied yet, and the candidate may need
        // its vote there.
        if is_pre_vote {
            let term = if grant { message.term } else { self.term };
            self.send_now(Message {
                from: self.id(),
                to: message.from,
                term,
                body: MessageBody::PreVoteResponse { reject: !grant },
            });
        } else {
            if grant {
                self.vote = Some(message.from);
                self.election_elapsed_ticks = 0;
            }
            // The answer waits until the vote is durable.
            self.send(message.from, MessageBody::VoteResponse { reject: !grant });
        }
        tracing::debug!(
            id = self.id(),
            candidate = message.from,
            grant,
            is_pre_vote,
            "answered a vote request"
        );
    }

    /// A candidate or pre-candidate processes a message of its own term.
    pub(super) fn step_candidate(&mut self, message: Message) -> Result<(), Error> {
        match (&message.body, self.role) {
            (MessageBody::PreVoteResponse { reject }, Role::PreCandidate)
            | (MessageBody::VoteResponse { reject }, Role::Candidate) => {
                let reject = *reject;
                self.tracker.record_vote(message.from, !reject);
                match self.tally() {
                    VoteResult::Won if self.role == Role::PreCandidate => {
                        self.become_candidate(CampaignKind::Timeout)
                    }
                    VoteResult::Won => self.become_leader(),
                    VoteResult::Lost => self.become_follower(self.term, None),
                    VoteResult::Pending => {}
                }
                Ok(())
            }
            (MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. }, _) => Ok(()),
            (
                MessageBody::AppendRequest { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. },
                _,
            ) => {
                // A leader of this term exists (paper §5.2: "if AppendEntries
                // RPC received from new leader: convert to follower").
                self.become_follower(self.term, Some(message.from));
                self.step_follower(message)
            }
            (MessageBody::VoteRequest { .. } | MessageBody::PreVoteRequest { .. }, _) => {
                self.handle_vote_request(&message);
                Ok(())
            }
            _ => {
                tracing::debug!(
                    id = self.id(),
                    kind = message.body.kind_name(),
                    "candidate ignores message"
                );
                Ok(())
            }
        }
    }
}
