//! Membership changes on the leader: the checks that need what only the
//! raft core knows — whom the leader hears from, how far a learner has
//! caught up — before a change is proposed (etcd's strict reconfiguration
//! check), then the proposal, answered when the change is applied. The
//! checks that need the member registry (names, URLs, learner count) were
//! made by the Cluster service before the change reached the loop.

use std::collections::HashMap;

use raftwood_raft::{ConfChange, ConfChangeKind, Error, NodeId, Role};
use tokio::sync::oneshot;

use super::{DriveLoop, MembershipRefusal, ProposeError, ProposeResult};

/// How far behind the leader's log a learner may be and still be promoted:
/// etcd's 90 %.
const LEARNER_READY_PERCENT: u64 = 90;

/// When the loop last heard from each peer, in its ticks.
#[derive(Debug, Default)]
pub struct PeerActivity {
    last_heard_tick: HashMap<NodeId, u64>,
}

impl PeerActivity {
    /// Messages from `peer` arrived at `tick`.
    pub fn heard(&mut self, peer: NodeId, tick: u64) {
        let before = self.last_heard_tick.insert(peer, tick);
        assert!(
            before.is_none_or(|before| before <= tick),
            "the loop's ticks went back"
        );
    }

    /// Nobody was heard from after the loop's clock.
    pub fn check_invariants(&self, now_tick: u64) {
        assert!(
            self.last_heard_tick
                .values()
                .all(|heard| *heard <= now_tick),
            "heard from a peer after tick {now_tick}"
        );
    }

    /// Whether `peer` was heard from within `window_ticks` of `now_tick`.
    pub fn is_active(&self, peer: NodeId, now_tick: u64, window_ticks: u64) -> bool {
        self.last_heard_tick.get(&peer).is_some_and(|heard| {
            assert!(*heard <= now_tick, "heard from {peer:x} after now");
            now_tick - heard <= window_ticks
        })
    }
}

impl DriveLoop {
    /// Proposes `change` if this member leads and the change passes the
    /// leader's checks; `reply` hears the outcome once it is applied.
    pub(super) fn change_membership(
        &mut self,
        change: ConfChange,
        reply: oneshot::Sender<ProposeResult>,
    ) {
        if self.node.role() != Role::Leader {
            let leader = self.node.leader();
            let _ = reply.send(Err(ProposeError::NotLeader { leader }));
            return;
        }
        if let Err(refusal) = self.check_membership_change(&change) {
            let _ = reply.send(Err(refusal.into()));
            return;
        }
        match self.node.propose_conf_change(change) {
            Ok(position) => {
                assert!(
                    position.index > self.node.log().applied(),
                    "a change proposed at {} is behind the applied index",
                    position.index
                );
                // One change at a time: the core took this one as its only
                // pending change, at the log's tail, in this leader's term.
                assert_eq!(position.index, self.node.log().last_index());
                assert_eq!(position.term, self.node.term());
                self.outputs
                    .waiters
                    .lock()
                    .register(position.index, position.term, reply);
            }
            Err(Error::NotLeader { leader }) => {
                let _ = reply.send(Err(ProposeError::NotLeader { leader }));
            }
            Err(Error::ConfChangePending) => {
                let _ = reply.send(Err(MembershipRefusal::ChangePending.into()));
            }
            Err(Error::ProposalDropped | Error::TransferInProgress) => {
                let _ = reply.send(Err(ProposeError::Busy));
            }
            Err(other) => {
                let _ = reply.send(Err(MembershipRefusal::Invalid(other.to_string()).into()));
            }
        }
    }

    /// etcd's strict reconfiguration check, on what the leader hears: a
    /// member added or promoted needs every voter active (so the new, larger
    /// quorum is reachable); a voter removed needs a quorum of the rest
    /// active, unless it is itself unreachable. A learner to promote must
    /// have caught up to 90 % of the leader's log.
    fn check_membership_change(&self, change: &ConfChange) -> Result<(), MembershipRefusal> {
        let tracker = self.node.tracker();
        let voters = tracker.conf_state().voters;
        let me = self.node.id();
        let active = |peer: NodeId| {
            peer == me
                || self
                    .activity
                    .is_active(peer, self.ticks, self.activity_window_ticks())
        };
        for single in &change.changes {
            match single.kind {
                ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
                    if single.kind == ConfChangeKind::AddVoter && tracker.is_learner(single.node_id)
                    {
                        let matched = tracker.progress(single.node_id).map_or(0, |p| p.matched);
                        debug_assert!(
                            matched <= self.node.log().last_index(),
                            "a learner matched past the leader's log"
                        );
                        let needed = self.node.log().last_index() * LEARNER_READY_PERCENT / 100;
                        if matched < needed {
                            return Err(MembershipRefusal::LearnerNotReady);
                        }
                    }
                    if !voters.iter().all(|voter| active(*voter)) {
                        return Err(MembershipRefusal::Unhealthy);
                    }
                }
                ConfChangeKind::RemoveNode => {
                    if !voters.contains(&single.node_id) || !active(single.node_id) {
                        continue;
                    }
                    let remaining = voters.len() - 1;
                    let active_remaining = voters
                        .iter()
                        .filter(|voter| **voter != single.node_id && active(**voter))
                        .count();
                    if active_remaining < remaining / 2 + 1 {
                        return Err(MembershipRefusal::Unhealthy);
                    }
                }
            }
        }
        Ok(())
    }

    /// Ticks within which a peer heard from counts as active: an election
    /// timeout, in which a healthy follower answers many heartbeats.
    fn activity_window_ticks(&self) -> u64 {
        u64::from(self.node.config().election_timeout_ticks).max(2)
    }
}
