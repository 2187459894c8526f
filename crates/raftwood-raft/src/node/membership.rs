//! Membership changes (thesis §4: one server at a time, or joint consensus
//! with automatic leave) and leadership transfer (thesis §3.10).

use super::{LogPosition, RaftNode};
use crate::entry::EntryPayload;
use crate::error::Error;
use crate::ids::{Index, NodeId};
use crate::membership::{Changer, ConfChange};
use crate::message::{Message, MessageBody};
use crate::role::Role;

impl RaftNode {
    /// Proposes a membership change (leader only). Refused while another
    /// change is pending — proposed but not yet applied — and before the
    /// leader has applied the first entry of its term, so that at most one
    /// change is ever in flight (the single-server-change bug needs two).
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<LogPosition, Error> {
        self.check_can_propose()?;
        if self.pending_conf_index > self.log.applied() {
            return Err(Error::ConfChangePending);
        }
        // Dry run against the configuration in force: a change that cannot
        // apply is refused now rather than ignored by every member later.
        Changer::new(&self.tracker, self.log.last_index()).apply(&change)?;
        Ok(self.append_conf_change(EntryPayload::ConfChange(change)))
    }

    /// Applies a committed configuration change (the caller reported its
    /// entry applied). Every member applies the same changes in the same
    /// order, so a change that fails here fails everywhere and is skipped
    /// everywhere.
    pub(super) fn apply_conf_change(&mut self, index: Index, change: &ConfChange) {
        match Changer::new(&self.tracker, self.log.last_index()).apply(change) {
            Ok((config, progress)) => {
                self.tracker.install(config, progress);
                let conf_state = self.tracker.conf_state();
                tracing::info!(
                    id = self.id(),
                    index,
                    ?conf_state,
                    "applied a configuration change"
                );
                self.conf_history.push((index, conf_state));
            }
            Err(error) => {
                tracing::warn!(id = self.id(), index, %error, "committed configuration change cannot apply; skipped");
                return;
            }
        }
        if self.role != Role::Leader {
            return;
        }
        let still_member = self.tracker.config().voters.contains(self.id());
        if !still_member {
            // Thesis §4.2.2: a leader removed from the configuration steps
            // down once the change is committed (it is: it was applied).
            tracing::info!(
                id = self.id(),
                "removed from the configuration; stepping down"
            );
            self.become_follower(self.term, None);
            return;
        }
        if self
            .lead_transferee
            .is_some_and(|transferee| !self.tracker.is_voter(transferee))
        {
            self.lead_transferee = None;
        }
        // The quorum changed: the commit index may move, and new members
        // need the log.
        self.maybe_commit_and_broadcast();
        self.broadcast_append();
    }

    /// Leaves a joint configuration that asked for it, once the change that
    /// entered it is applied (leader only).
    pub(super) fn maybe_auto_leave_joint(&mut self) {
        let config = self.tracker.config();
        if self.role != Role::Leader || !config.voters.is_joint() || !config.auto_leave {
            return;
        }
        if self.pending_conf_index > self.log.applied() || self.lead_transferee.is_some() {
            return;
        }
        tracing::info!(id = self.id(), "leaving the joint configuration");
        self.append_conf_change(EntryPayload::ConfChange(ConfChange::leave_joint()));
    }

    /// Asks the leader to hand leadership to `to` (thesis §3.10): the leader
    /// stops accepting proposals, brings `to` up to date and tells it to
    /// campaign at once. The transfer is abandoned after an election
    /// timeout.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.id() || self.lead_transferee == Some(to) {
            return Ok(());
        }
        if !self.tracker.is_voter(to) {
            return Err(Error::UnknownMember(to));
        }
        tracing::info!(id = self.id(), to, "transferring leadership");
        self.lead_transferee = Some(to);
        self.election_elapsed_ticks = 0;
        let caught_up = self
            .tracker
            .progress(to)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(to);
        } else {
            self.send_append(to, true);
        }
        Ok(())
    }

    pub(super) fn send_timeout_now(&mut self, to: NodeId) {
        let term = self.term;
        self.send_now(Message {
            from: self.id(),
            to,
            term,
            body: MessageBody::TimeoutNow,
        });
    }
}
