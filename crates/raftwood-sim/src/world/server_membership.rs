//! Membership churn in the server-loop mode, as an operator makes it with
//! etcdctl: one change at a time, each the configuration change the
//! Cluster service proposes (`raftwood_server::membership::conf_change`,
//! carrying the registry change), handed to the leader's drive loop as
//! [`LoopEvent::ChangeMembership`], which makes etcd's strict
//! reconfiguration checks and answers once the change is applied.
//!
//! A member is added empty (its data directory new) and catches up from
//! the leader's snapshot; a member that applies its own removal stops for
//! good, as the server does. Replacing a member is a removal and an add.

use raftwood_kv::proto::raftwoodpb::member_change;
use raftwood_server::driver::ProposeResult;
use raftwood_server::membership::conf_change;
use tokio::sync::oneshot;

use super::*;
use crate::state_machine::registry_record;
use raftwood_kv::proto::etcdserverpb::Member;
use raftwood_server::driver::LoopEvent;

/// The one change an operator is waiting for.
#[derive(Debug)]
pub(super) struct PendingMembershipChange {
    /// What it is, for the summary and the trace.
    kind: &'static str,
    /// Where the leader's answer arrives.
    outcome: oneshot::Receiver<ProposeResult>,
}

impl Simulation {
    /// The next membership step, if the last one was answered: promote the
    /// learner, else add a member (a learner, or a voter directly as
    /// `member add` without `--learner` does), else remove a voter.
    pub(super) fn server_membership_change(&mut self) {
        self.poll_membership_change();
        if self.membership_pending.is_some() {
            return;
        }
        let Some((leader, conf)) = self.leader_conf() else {
            return;
        };
        assert!(
            !conf.is_joint(),
            "the server proposes single changes only, so never enters a joint configuration"
        );
        let (kind, registry_change, member, name) =
            if let Some(&learner) = conf.learners.iter().next() {
                (
                    ConfChangeKind::AddVoter,
                    member_change::Kind::Promote,
                    id_only(learner),
                    "membership-promote",
                )
            } else if conf.voters.len() < self.options.max_voters {
                let learner = self.rng.random_bool(0.7);
                let (kind, name) = if learner {
                    (ConfChangeKind::AddLearner, "membership-add-learner")
                } else {
                    (ConfChangeKind::AddVoter, "membership-add-voter")
                };
                let record = registry_record(self.next_node_id, learner);
                (kind, member_change::Kind::Add, record, name)
            } else {
                let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
                let Some(removed) = self.pick(&voters) else {
                    return;
                };
                (
                    ConfChangeKind::RemoveNode,
                    member_change::Kind::Remove,
                    id_only(removed),
                    "membership-remove-voter",
                )
            };
        let id = member.id;
        let change = conf_change(kind, registry_change, member);
        let (reply, outcome) = oneshot::channel();
        self.count_fault(name);
        self.trace(|| format!("operator asks leader {leader}: {name} {id}"));
        self.server_enqueue(leader, vec![LoopEvent::ChangeMembership { change, reply }]);
        if registry_change == member_change::Kind::Add {
            // Started at once, as an operator starts the machine right
            // after `member add`: it must exist to vote on the change if
            // it is added as a voter.
            self.next_node_id += 1;
            self.add_node(id, DurableState::default());
        }
        self.membership_pending = Some(PendingMembershipChange {
            kind: name,
            outcome,
        });
    }

    /// Counts the answer to the pending change, if it came. A member added
    /// by a change that was refused stays out of the configuration; the
    /// liveness phase stops it with the other non-members.
    pub(super) fn poll_membership_change(&mut self) {
        let Some(pending) = self.membership_pending.as_mut() else {
            return;
        };
        let outcome = match pending.outcome.try_recv() {
            Ok(Ok(_)) => "membership-applied",
            Ok(Err(_)) => "membership-refused",
            Err(oneshot::error::TryRecvError::Empty) => return,
            // The leader crashed or stepped down with the change in flight:
            // its outcome is unknown to the operator.
            Err(oneshot::error::TryRecvError::Closed) => "membership-unanswered",
        };
        let kind = pending.kind;
        self.membership_pending = None;
        self.count_fault(outcome);
        self.trace(|| format!("operator hears {kind}: {outcome}"));
    }

    /// Member `id` applied its own removal: it stops, for good, as the
    /// server does (`LoopEvent::Removed`).
    pub(super) fn stop_removed_member(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.status = Status::Stopped;
        node.raft = None;
        node.server = None;
        node.incarnation += 1;
        self.count_fault("member-removed-stopped");
        self.trace(|| format!("member {id} applied its removal and stops"));
    }
}

/// The registry record of a change that names only the member.
fn id_only(id: NodeId) -> Member {
    Member {
        id,
        ..Member::default()
    }
}
