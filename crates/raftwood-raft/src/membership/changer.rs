//! The configuration changer: turns the tracker's configuration and a
//! requested change into the next configuration (thesis §4.1 for single
//! changes, §4.3 for joint consensus).
//!
//! It is a pure function: it reads the tracker and returns a new
//! configuration and progress map, which the caller installs with
//! [`ProgressTracker::install`] when the change entry is applied. A refused
//! change leaves everything as it was.

use std::collections::BTreeSet;

use crate::ids::{Index, NodeId};
use crate::membership::{ConfChange, ConfChangeKind, ConfChangeSingle, ConfState};
use crate::tracker::{Progress, ProgressMap, ProgressTracker, TrackerConfig};

/// Why a configuration change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    /// A direct change, or entering a joint configuration, was requested
    /// while one is in force; it has to be left first.
    #[error("a joint configuration is in force; leave it before changing the configuration again")]
    AlreadyJoint,
    /// Leaving a joint configuration was requested while none is in force.
    #[error("cannot leave a joint configuration: none is in force")]
    NotJoint,
    /// A direct change would change more than one voter. Two configurations
    /// differing by more than one voter may have disjoint majorities, so
    /// two leaders could be elected in one term (thesis §4.1); such a
    /// change has to go through a joint configuration (§4.3).
    #[error(
        "{count} voters would change at once; changing more than one voter needs a joint configuration"
    )]
    TooManyVoterChanges {
        /// How many voters would be added or removed.
        count: usize,
    },
    /// The change would leave the configuration without a voter, and with
    /// it nobody able to elect a leader or commit anything.
    #[error("the change would leave no voters")]
    NoVotersLeft,
    /// Entering a joint configuration was requested from a configuration
    /// with no voters: the outgoing half would be empty, which is the same
    /// as not being joint at all.
    #[error("cannot enter a joint configuration from one with no voters")]
    JointFromEmpty,
    /// A change named node 0, which means "nobody".
    #[error("node id 0 is reserved and cannot be a member")]
    ZeroNodeId,
    /// A configuration state (from a snapshot or the caller) breaks the
    /// invariants of [`ConfState`].
    #[error("invalid configuration state: {0}")]
    InvalidConfState(String),
}

/// The result of a change: the configuration and progress map to install.
type ChangeResult = Result<(TrackerConfig, ProgressMap), ConfChangeError>;

/// Computes configuration changes against a tracker, without modifying it.
#[derive(Debug, Clone, Copy)]
pub struct Changer<'a> {
    /// The configuration and progress the change applies to.
    tracker: &'a ProgressTracker,
    /// The index of the leader's (or this member's) last log entry: members
    /// added by the change are probed from just after it.
    last_index: Index,
}

impl<'a> Changer<'a> {
    /// A changer applying to `tracker`'s configuration; new members start
    /// probing after `last_index`.
    pub fn new(tracker: &'a ProgressTracker, last_index: Index) -> Changer<'a> {
        Changer {
            tracker,
            last_index,
        }
    }

    /// Applies `change` as its kind says: leaves the joint configuration
    /// for an empty change, enters one for a change that asks for it (see
    /// [`ConfChange::enters_joint`]), and changes directly otherwise.
    pub fn apply(&self, change: &ConfChange) -> ChangeResult {
        if change.is_leave_joint() {
            self.leave_joint()
        } else if let Some(auto_leave) = change.enters_joint() {
            self.enter_joint(auto_leave, &change.changes)
        } else {
            self.simple(&change.changes)
        }
    }

    /// Applies `changes` directly, without a joint configuration (thesis
    /// §4.1). Refused while joint, and refused if more than one voter
    /// would be added or removed: the old and new majorities must overlap.
    ///
    /// This is the guard against the "single-server membership change"
    /// class of bugs in the configuration itself; the other half of the
    /// fix Ongaro described (a new leader commits an entry of its term
    /// before it proposes a change) is the node's.
    pub fn simple(&self, changes: &[ConfChangeSingle]) -> ChangeResult {
        if self.tracker.config().voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        let mut draft = self.draft();
        draft.apply(changes)?;
        let before = self.tracker.config().voters.incoming().voters();
        let count = before.symmetric_difference(&draft.conf.voters).count();
        if count > 1 {
            return Err(ConfChangeError::TooManyVoterChanges { count });
        }
        let (config, progress) = draft.finish();
        debug_assert!(
            !config.voters.is_joint(),
            "a simple change made a joint configuration"
        );
        Ok((config, progress))
    }

    /// Enters a joint configuration (thesis §4.3): the current voters
    /// become the outgoing half, and `changes` are applied to the incoming
    /// half. A voter demoted to learner stays an outgoing voter until the
    /// joint configuration is left, so it waits in `learners_next`.
    ///
    /// With `auto_leave`, the node leaves the joint configuration by itself
    /// once this one is committed; otherwise the caller proposes the leave.
    pub fn enter_joint(&self, auto_leave: bool, changes: &[ConfChangeSingle]) -> ChangeResult {
        let config = self.tracker.config();
        if config.voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        if config.voters.incoming().is_empty() {
            return Err(ConfChangeError::JointFromEmpty);
        }
        let mut draft = self.draft();
        draft.conf.voters_outgoing = draft.conf.voters.clone();
        draft.apply(changes)?;
        draft.conf.auto_leave = auto_leave;
        let (joint, progress) = draft.finish();
        // The shape of a joint configuration (thesis §4.3): the voters
        // before the change decide as the outgoing half, whatever the
        // changes did to the incoming one.
        debug_assert_eq!(
            joint.voters.outgoing().voters(),
            config.voters.incoming().voters(),
            "the outgoing half is not the configuration left"
        );
        Ok((joint, progress))
    }

    /// Leaves the joint configuration: the incoming voters alone decide,
    /// demoted voters become learners, and members that are neither voters
    /// nor learners anymore are dropped with their progress.
    pub fn leave_joint(&self) -> ChangeResult {
        if !self.tracker.config().voters.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        let mut draft = self.draft();
        for id in std::mem::take(&mut draft.conf.learners_next) {
            draft.conf.learners.insert(id);
            if let Some(progress) = draft.progress.get_mut(&id) {
                progress.is_learner = true;
            }
        }
        let outgoing = std::mem::take(&mut draft.conf.voters_outgoing);
        for id in outgoing {
            if !draft.conf.voters.contains(&id) && !draft.conf.learners.contains(&id) {
                draft.progress.remove(&id);
            }
        }
        draft.conf.auto_leave = false;
        let (left, progress) = draft.finish();
        // The incoming half alone remains, unchanged.
        debug_assert_eq!(
            left.voters,
            crate::quorum::JointConfig::simple(
                self.tracker.config().voters.incoming().voters().clone()
            ),
            "leaving changed the incoming voters"
        );
        Ok((left, progress))
    }

    /// Builds the configuration a [`ConfState`] describes (from a snapshot,
    /// or the initial state of storage), with fresh progress for every
    /// member probing after `last_index`.
    ///
    /// The state is validated first. A joint state is rebuilt the way it
    /// was reached: the outgoing voters form a simple configuration, from
    /// which the incoming one is entered, so the result is exactly what
    /// [`Changer::enter_joint`] would have produced. An empty state gives
    /// an empty configuration (a member waiting to be sent a snapshot).
    pub fn restore(
        conf_state: &ConfState,
        last_index: Index,
        max_inflight_messages: usize,
        max_inflight_bytes: u64,
    ) -> ChangeResult {
        conf_state
            .validate()
            .map_err(ConfChangeError::InvalidConfState)?;
        // Not all checked by `ConfState::validate`, but no sequence of
        // changes can produce them.
        if let Some(id) = conf_state
            .learners_next
            .intersection(&conf_state.voters)
            .next()
        {
            return Err(ConfChangeError::InvalidConfState(format!(
                "{id} is both an incoming voter and a next learner"
            )));
        }
        if conf_state.voters.is_empty() && *conf_state != ConfState::default() {
            return Err(ConfChangeError::InvalidConfState(
                "members but no incoming voters".to_owned(),
            ));
        }

        let empty = ProgressTracker::new(max_inflight_messages, max_inflight_bytes);
        let restored = if conf_state.is_joint() {
            // The outgoing configuration as it was before entering joint...
            let mut draft = Changer::new(&empty, last_index).draft();
            draft.apply(&adds(ConfChangeKind::AddVoter, &conf_state.voters_outgoing))?;
            let (config, progress) = draft.finish();
            let mut outgoing = ProgressTracker::new(max_inflight_messages, max_inflight_bytes);
            outgoing.install(config, progress);
            // ...then the change that entered it: the incoming voters
            // replace the outgoing ones, learners are added (learners_next
            // among them, which lands them in learners_next).
            let mut changes = adds(ConfChangeKind::RemoveNode, &conf_state.voters_outgoing);
            changes.extend(adds(ConfChangeKind::AddVoter, &conf_state.voters));
            changes.extend(adds(ConfChangeKind::AddLearner, &conf_state.learners));
            changes.extend(adds(ConfChangeKind::AddLearner, &conf_state.learners_next));
            Changer::new(&outgoing, last_index).enter_joint(conf_state.auto_leave, &changes)?
        } else {
            let mut changes = adds(ConfChangeKind::AddVoter, &conf_state.voters);
            changes.extend(adds(ConfChangeKind::AddLearner, &conf_state.learners));
            let mut draft = Changer::new(&empty, last_index).draft();
            if !changes.is_empty() {
                draft.apply(&changes)?;
            }
            draft.finish()
        };
        debug_assert_eq!(restored.0.to_conf_state(), *conf_state);
        Ok(restored)
    }

    /// A copy of the tracker's state to change.
    fn draft(&self) -> Draft {
        Draft {
            conf: self.tracker.conf_state(),
            progress: self.tracker.progress_map().clone(),
            last_index: self.last_index,
            max_inflight_messages: self.tracker.max_inflight_messages(),
            max_inflight_bytes: self.tracker.max_inflight_bytes(),
        }
    }
}

/// One single change of `kind` per id.
fn adds(kind: ConfChangeKind, ids: &BTreeSet<NodeId>) -> Vec<ConfChangeSingle> {
    ids.iter()
        .map(|&node_id| ConfChangeSingle { kind, node_id })
        .collect()
}

/// A configuration being changed: plain sets (a [`ConfState`]) and the
/// progress map, kept consistent with each other by every method.
struct Draft {
    conf: ConfState,
    progress: ProgressMap,
    last_index: Index,
    max_inflight_messages: usize,
    max_inflight_bytes: u64,
}

impl Draft {
    /// Applies single changes in order; the incoming voters must not end up
    /// empty.
    fn apply(&mut self, changes: &[ConfChangeSingle]) -> Result<(), ConfChangeError> {
        for change in changes {
            if change.node_id == 0 {
                return Err(ConfChangeError::ZeroNodeId);
            }
            match change.kind {
                ConfChangeKind::AddVoter => self.make_voter(change.node_id),
                ConfChangeKind::AddLearner => self.make_learner(change.node_id),
                ConfChangeKind::RemoveNode => self.remove(change.node_id),
            }
        }
        if self.conf.voters.is_empty() {
            return Err(ConfChangeError::NoVotersLeft);
        }
        Ok(())
    }

    /// Makes `id` an incoming voter: a new member, a learner promoted, or an
    /// outgoing voter kept (which also cancels a pending demotion).
    fn make_voter(&mut self, id: NodeId) {
        match self.progress.get_mut(&id) {
            None => self.add_member(id, false),
            Some(progress) => {
                progress.is_learner = false;
                self.conf.learners.remove(&id);
                self.conf.learners_next.remove(&id);
                self.conf.voters.insert(id);
            }
        }
    }

    /// Makes `id` a learner: a new member, or a voter demoted. A voter of
    /// the outgoing half keeps voting there until the joint configuration
    /// is left, so its demotion waits in `learners_next`.
    fn make_learner(&mut self, id: NodeId) {
        let Some(progress) = self.progress.get_mut(&id) else {
            self.add_member(id, true);
            return;
        };
        if progress.is_learner {
            return;
        }
        self.conf.voters.remove(&id);
        if self.conf.voters_outgoing.contains(&id) {
            self.conf.learners_next.insert(id);
        } else {
            progress.is_learner = true;
            self.conf.learners.insert(id);
        }
    }

    /// Removes `id` from the incoming voters and the learners. An outgoing
    /// voter keeps its progress until the joint configuration is left,
    /// because it still votes there. Removing a non-member does nothing.
    fn remove(&mut self, id: NodeId) {
        if !self.progress.contains_key(&id) {
            return;
        }
        self.conf.voters.remove(&id);
        self.conf.learners.remove(&id);
        self.conf.learners_next.remove(&id);
        if !self.conf.voters_outgoing.contains(&id) {
            self.progress.remove(&id);
        }
    }

    /// Adds a member the configuration does not know at all.
    fn add_member(&mut self, id: NodeId, is_learner: bool) {
        debug_assert!(!self.progress.contains_key(&id));
        if is_learner {
            self.conf.learners.insert(id);
        } else {
            self.conf.voters.insert(id);
        }
        // Nothing is known of its log; it is probed from the end of ours,
        // and the rejections walk back to where the logs agree (or to a
        // snapshot).
        let mut progress = Progress::new(
            self.last_index.saturating_add(1),
            self.max_inflight_messages,
            self.max_inflight_bytes,
            is_learner,
        );
        // Counted as active until the next check-quorum round, so that a
        // leader does not step down before the new member could answer.
        progress.recent_active = true;
        self.progress.insert(id, progress);
    }

    /// The configuration and progress to install.
    fn finish(self) -> (TrackerConfig, ProgressMap) {
        let config = TrackerConfig::from_conf_state(&self.conf);
        debug_assert_eq!(self.conf.validate(), Ok(()));
        debug_assert_eq!(
            crate::tracker::check_consistent(&config, &self.progress),
            Ok(())
        );
        (config, self.progress)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::membership::ConfChangeTransition;
    use crate::tracker::ProgressState;

    const LAST_INDEX: Index = 10;

    fn voter(node_id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeKind::AddVoter,
            node_id,
        }
    }

    fn learner(node_id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeKind::AddLearner,
            node_id,
        }
    }

    fn remove(node_id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeKind::RemoveNode,
            node_id,
        }
    }

    fn ids(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    /// A tracker in the configuration `conf_state`.
    fn tracker(conf_state: &ConfState) -> ProgressTracker {
        let (config, progress) = Changer::restore(conf_state, LAST_INDEX, 4, 0).unwrap();
        let mut tracker = ProgressTracker::new(4, 0);
        tracker.install(config, progress);
        tracker
    }

    fn voters(voter_ids: &[NodeId]) -> ProgressTracker {
        tracker(&ConfState::with_voters(voter_ids.iter().copied()))
    }

    /// Installs a change's result.
    fn install(tracker: &mut ProgressTracker, result: (TrackerConfig, ProgressMap)) {
        tracker.install(result.0, result.1);
    }

    #[test]
    fn bootstrap_adds_a_first_voter_with_fresh_progress() {
        let mut tracker = ProgressTracker::new(4, 0);
        let result = Changer::new(&tracker, LAST_INDEX)
            .simple(&[voter(1)])
            .unwrap();
        install(&mut tracker, result);
        assert_eq!(tracker.conf_state(), ConfState::with_voters([1]));
        let progress = tracker.progress(1).unwrap();
        assert_eq!((progress.matched, progress.next), (0, LAST_INDEX + 1));
        assert_eq!(progress.state, ProgressState::Probe);
        assert!(progress.recent_active, "new members count as active");
        assert!(!progress.is_learner);
        assert_eq!(progress.inflights.max_messages(), 4);
    }

    #[test]
    fn add_learner_then_promote_keeps_its_progress() {
        let mut tracker = voters(&[1, 2, 3]);
        let result = Changer::new(&tracker, LAST_INDEX)
            .simple(&[learner(4)])
            .unwrap();
        install(&mut tracker, result);
        assert_eq!(tracker.conf_state().learners, ids(&[4]));
        assert!(tracker.progress(4).unwrap().is_learner);
        assert!(tracker.progress_mut(4).unwrap().maybe_update(7));

        let result = Changer::new(&tracker, 20).simple(&[voter(4)]).unwrap();
        install(&mut tracker, result);
        assert_eq!(tracker.conf_state(), ConfState::with_voters([1, 2, 3, 4]));
        let progress = tracker.progress(4).unwrap();
        assert!(!progress.is_learner);
        assert_eq!(
            progress.matched, 7,
            "a promotion keeps what the leader knows"
        );
    }

    #[test]
    fn demote_voter_directly_outside_joint() {
        let mut tracker = voters(&[1, 2, 3]);
        assert!(tracker.progress_mut(3).unwrap().maybe_update(5));
        let result = Changer::new(&tracker, LAST_INDEX)
            .simple(&[learner(3)])
            .unwrap();
        install(&mut tracker, result);
        let conf_state = tracker.conf_state();
        assert_eq!(conf_state.voters, ids(&[1, 2]));
        assert_eq!(conf_state.learners, ids(&[3]));
        assert!(conf_state.learners_next.is_empty());
        let progress = tracker.progress(3).unwrap();
        assert!(progress.is_learner);
        assert_eq!(progress.matched, 5);
    }

    #[test]
    fn single_server_changes_refuse_two_voter_changes() {
        // Thesis §4.1: with two voters added at once, (1 2 3) and
        // (1 2 3 4 5) have majorities {1 2} and {3 4 5} that do not
        // overlap; two leaders could be elected in the same term.
        let tracker = voters(&[1, 2, 3]);
        let changer = Changer::new(&tracker, LAST_INDEX);
        assert_eq!(
            changer.simple(&[voter(4), voter(5)]),
            Err(ConfChangeError::TooManyVoterChanges { count: 2 })
        );
        // Replacing a voter is two changes too.
        assert_eq!(
            changer.simple(&[remove(3), voter(4)]),
            Err(ConfChangeError::TooManyVoterChanges { count: 2 })
        );
        assert_eq!(
            changer.simple(&[remove(2), remove(3)]),
            Err(ConfChangeError::TooManyVoterChanges { count: 2 })
        );
        // A demotion plus an addition changes two voters.
        assert_eq!(
            changer.simple(&[learner(1), voter(4)]),
            Err(ConfChangeError::TooManyVoterChanges { count: 2 })
        );
        // Learners are free: any number may change along with one voter.
        let (config, _) = changer
            .simple(&[learner(6), learner(7), voter(4), remove(6)])
            .unwrap();
        assert_eq!(config.to_conf_state().voters, ids(&[1, 2, 3, 4]));
        assert_eq!(config.learners, ids(&[7]));
        // Changes that cancel out count for nothing.
        let (config, _) = changer.simple(&[voter(4), remove(4), voter(5)]).unwrap();
        assert_eq!(config.to_conf_state().voters, ids(&[1, 2, 3, 5]));
        // The same change through a joint configuration is accepted.
        assert!(changer.enter_joint(false, &[voter(4), voter(5)]).is_ok());
        // The refusal left the tracker as it was.
        assert_eq!(tracker.conf_state(), ConfState::with_voters([1, 2, 3]));
    }

    #[test]
    fn refusals() {
        let simple = voters(&[1, 2, 3]);
        let changer = Changer::new(&simple, LAST_INDEX);
        assert_eq!(
            changer.simple(&[voter(0)]),
            Err(ConfChangeError::ZeroNodeId)
        );
        assert_eq!(
            changer.enter_joint(true, &[remove(0)]),
            Err(ConfChangeError::ZeroNodeId)
        );
        assert_eq!(changer.leave_joint(), Err(ConfChangeError::NotJoint));
        assert_eq!(
            changer.enter_joint(false, &[remove(1), remove(2), remove(3)]),
            Err(ConfChangeError::NoVotersLeft)
        );
        // Demoting every voter leaves no voter either.
        assert_eq!(
            changer.enter_joint(false, &[learner(1), learner(2), learner(3)]),
            Err(ConfChangeError::NoVotersLeft)
        );

        let single = voters(&[1]);
        let changer = Changer::new(&single, LAST_INDEX);
        assert_eq!(
            changer.simple(&[remove(1)]),
            Err(ConfChangeError::NoVotersLeft)
        );
        assert_eq!(
            changer.simple(&[learner(1)]),
            Err(ConfChangeError::NoVotersLeft)
        );

        let empty = ProgressTracker::new(4, 0);
        let changer = Changer::new(&empty, LAST_INDEX);
        assert_eq!(
            changer.enter_joint(true, &[voter(1), voter(2)]),
            Err(ConfChangeError::JointFromEmpty)
        );
        assert_eq!(
            changer.simple(&[learner(1)]),
            Err(ConfChangeError::NoVotersLeft)
        );

        let mut joint = voters(&[1, 2, 3]);
        let result = Changer::new(&joint, LAST_INDEX)
            .enter_joint(false, &[voter(4)])
            .unwrap();
        install(&mut joint, result);
        let changer = Changer::new(&joint, LAST_INDEX);
        assert_eq!(
            changer.simple(&[voter(5)]),
            Err(ConfChangeError::AlreadyJoint)
        );
        assert_eq!(
            changer.enter_joint(false, &[voter(5)]),
            Err(ConfChangeError::AlreadyJoint)
        );
    }

    #[test]
    fn removing_a_non_member_changes_nothing() {
        let tracker = tracker(&ConfState {
            voters: ids(&[1, 2]),
            learners: ids(&[3]),
            ..ConfState::default()
        });
        let (config, progress) = Changer::new(&tracker, LAST_INDEX)
            .simple(&[remove(9)])
            .unwrap();
        assert_eq!(&config, tracker.config());
        assert_eq!(&progress, tracker.progress_map());
    }

    #[test]
    fn replacing_a_voter_through_joint_consensus() {
        let mut tracker = voters(&[1, 2, 3]);
        assert!(tracker.progress_mut(3).unwrap().maybe_update(8));
        let result = Changer::new(&tracker, LAST_INDEX)
            .enter_joint(true, &[remove(3), voter(4)])
            .unwrap();
        install(&mut tracker, result);
        assert_eq!(
            tracker.config().to_string(),
            "voters=(1 2 4)&&(1 2 3) autoleave"
        );
        // 3 still votes in the outgoing half, so its progress is kept.
        assert_eq!(tracker.progress(3).unwrap().matched, 8);
        assert!(tracker.is_voter(3));
        assert_eq!(tracker.progress(4).unwrap().next, LAST_INDEX + 1);

        let result = Changer::new(&tracker, 30).leave_joint().unwrap();
        install(&mut tracker, result);
        assert_eq!(tracker.conf_state(), ConfState::with_voters([1, 2, 4]));
        assert!(
            tracker.progress(3).is_none(),
            "a removed member loses its progress"
        );
        assert_eq!(
            tracker.progress(4).unwrap().next,
            LAST_INDEX + 1,
            "kept, not reset"
        );
    }

    #[test]
    fn demoting_a_voter_while_joint_goes_through_learners_next() {
        let mut tracker = voters(&[1, 2, 3]);
        assert!(tracker.progress_mut(3).unwrap().maybe_update(6));
        let result = Changer::new(&tracker, LAST_INDEX)
            .enter_joint(false, &[learner(3), learner(5)])
            .unwrap();
        install(&mut tracker, result);
        let conf_state = tracker.conf_state();
        assert_eq!(conf_state.voters, ids(&[1, 2]));
        assert_eq!(conf_state.voters_outgoing, ids(&[1, 2, 3]));
        // 3 still votes in the outgoing half: it cannot be a learner yet.
        assert_eq!(conf_state.learners_next, ids(&[3]));
        // 5 was never a voter, so it is a learner right away.
        assert_eq!(conf_state.learners, ids(&[5]));
        assert!(!conf_state.auto_leave);
        assert!(!tracker.progress(3).unwrap().is_learner);
        assert!(!tracker.is_learner(3));
        assert!(tracker.progress(5).unwrap().is_learner);

        let result = Changer::new(&tracker, LAST_INDEX).leave_joint().unwrap();
        install(&mut tracker, result);
        let conf_state = tracker.conf_state();
        assert_eq!(conf_state.voters, ids(&[1, 2]));
        assert_eq!(conf_state.learners, ids(&[3, 5]));
        assert!(conf_state.learners_next.is_empty() && !conf_state.is_joint());
        let progress = tracker.progress(3).unwrap();
        assert!(progress.is_learner);
        assert_eq!(progress.matched, 6);
    }

    #[test]
    fn a_pending_demotion_can_be_cancelled_in_the_same_change() {
        let tracker = voters(&[1, 2, 3]);
        let (config, progress) = Changer::new(&tracker, LAST_INDEX)
            .enter_joint(false, &[learner(3), voter(4), voter(3)])
            .unwrap();
        let conf_state = config.to_conf_state();
        assert_eq!(conf_state.voters, ids(&[1, 2, 3, 4]));
        assert!(conf_state.learners_next.is_empty());
        assert!(!progress[&3].is_learner);
    }

    #[test]
    fn removing_a_learner_while_joint_drops_it_at_once() {
        let tracker = tracker(&ConfState {
            voters: ids(&[1, 2, 3]),
            learners: ids(&[4]),
            ..ConfState::default()
        });
        let (config, progress) = Changer::new(&tracker, LAST_INDEX)
            .enter_joint(false, &[remove(4), remove(3)])
            .unwrap();
        assert!(config.learners.is_empty());
        assert!(!progress.contains_key(&4), "not an outgoing voter");
        assert!(progress.contains_key(&3), "an outgoing voter");
    }

    #[test]
    fn enter_and_leave_round_trip() {
        let start = ConfState {
            voters: ids(&[1, 2, 3]),
            learners: ids(&[4]),
            ..ConfState::default()
        };
        // (changes, the simple configuration reached after leaving)
        let rows: Vec<(Vec<ConfChangeSingle>, ConfState)> = vec![
            // Nothing changes between the halves: back to where it started.
            (vec![], start.clone()),
            (vec![learner(4)], start.clone()),
            (
                vec![voter(5), voter(6), remove(1)],
                ConfState {
                    voters: ids(&[2, 3, 5, 6]),
                    learners: ids(&[4]),
                    ..ConfState::default()
                },
            ),
            (
                vec![voter(4), learner(1), learner(2)],
                ConfState {
                    voters: ids(&[3, 4]),
                    learners: ids(&[1, 2]),
                    ..ConfState::default()
                },
            ),
            (
                vec![remove(4), remove(3), voter(9)],
                ConfState::with_voters([1, 2, 9]),
            ),
        ];
        for (changes, expected) in rows {
            let mut tracker = tracker(&start);
            let result = Changer::new(&tracker, LAST_INDEX)
                .enter_joint(true, &changes)
                .unwrap();
            install(&mut tracker, result);
            assert!(tracker.config().voters.is_joint(), "{changes:?}");
            assert_eq!(tracker.conf_state().voters_outgoing, start.voters);
            let result = Changer::new(&tracker, LAST_INDEX).leave_joint().unwrap();
            install(&mut tracker, result);
            assert_eq!(tracker.conf_state(), expected, "{changes:?}");
            assert_eq!(
                tracker.members().collect::<BTreeSet<_>>(),
                expected.members(),
                "exactly the members keep a progress"
            );
        }
    }

    #[test]
    fn restore_of_a_joint_state_equals_entering_joint() {
        // Outgoing (1 2 4 6) with learner 5 enters (1 2 3), demoting 4 and
        // removing 6.
        let mut entered = tracker(&ConfState {
            voters: ids(&[1, 2, 4, 6]),
            learners: ids(&[5]),
            ..ConfState::default()
        });
        let result = Changer::new(&entered, LAST_INDEX)
            .enter_joint(true, &[voter(3), learner(4), remove(6)])
            .unwrap();
        install(&mut entered, result);
        let conf_state = entered.conf_state();
        assert_eq!(
            conf_state,
            ConfState {
                voters: ids(&[1, 2, 3]),
                learners: ids(&[5]),
                voters_outgoing: ids(&[1, 2, 4, 6]),
                learners_next: ids(&[4]),
                auto_leave: true,
            }
        );

        let (config, progress) = Changer::restore(&conf_state, LAST_INDEX, 4, 0).unwrap();
        assert_eq!(&config, entered.config());
        assert_eq!(&config, &TrackerConfig::from_conf_state(&conf_state));
        // Every progress is fresh, as for a new leader, and learner flags
        // agree with entering joint.
        assert_eq!(
            progress.keys().collect::<Vec<_>>(),
            entered.progress_map().keys().collect::<Vec<_>>()
        );
        for (id, restored) in &progress {
            let reached = &entered.progress_map()[id];
            assert_eq!(restored.is_learner, reached.is_learner, "{id}");
            assert_eq!((restored.matched, restored.next), (0, LAST_INDEX + 1));
            assert!(restored.recent_active);
        }
    }

    #[test]
    fn restore_of_simple_and_empty_states() {
        let conf_state = ConfState {
            voters: ids(&[1, 2, 3]),
            learners: ids(&[4, 5]),
            ..ConfState::default()
        };
        let (config, progress) = Changer::restore(&conf_state, 7, 2, 100).unwrap();
        assert_eq!(config.to_conf_state(), conf_state);
        assert_eq!(progress.len(), 5);
        assert!(progress[&4].is_learner && !progress[&1].is_learner);
        assert_eq!(progress[&1].next, 8);
        assert_eq!(progress[&1].inflights.max_messages(), 2);
        assert_eq!(progress[&1].inflights.max_bytes(), 100);

        let (config, progress) = Changer::restore(&ConfState::default(), 0, 2, 0).unwrap();
        assert_eq!(config, TrackerConfig::default());
        assert!(progress.is_empty());
    }

    #[test]
    fn restore_refuses_invalid_states() {
        let invalid = [
            ConfState {
                voters: ids(&[1]),
                learners: ids(&[1]),
                ..ConfState::default()
            },
            ConfState::with_voters([0, 1]),
            ConfState {
                voters: ids(&[1]),
                auto_leave: true,
                ..ConfState::default()
            },
            ConfState {
                voters: ids(&[1, 2]),
                voters_outgoing: ids(&[1, 2]),
                learners_next: ids(&[2]),
                ..ConfState::default()
            },
            ConfState {
                learners: ids(&[1]),
                ..ConfState::default()
            },
            ConfState {
                voters_outgoing: ids(&[1, 2]),
                ..ConfState::default()
            },
        ];
        for conf_state in invalid {
            let result = Changer::restore(&conf_state, LAST_INDEX, 4, 0);
            assert!(
                matches!(result, Err(ConfChangeError::InvalidConfState(_))),
                "{conf_state:?}: {result:?}"
            );
        }
    }

    #[test]
    fn apply_dispatches_on_the_kind_of_change() {
        let mut tracker = voters(&[1, 2, 3]);
        // One change, Auto: direct.
        let result = Changer::new(&tracker, LAST_INDEX)
            .apply(&ConfChange::single(ConfChangeKind::AddVoter, 4))
            .unwrap();
        install(&mut tracker, result);
        assert!(!tracker.config().voters.is_joint());

        // Several changes, Auto: joint, left automatically.
        let auto = ConfChange {
            transition: ConfChangeTransition::Auto,
            changes: vec![voter(5), remove(1)],
            context: Bytes::new(),
        };
        let result = Changer::new(&tracker, LAST_INDEX).apply(&auto).unwrap();
        install(&mut tracker, result);
        assert!(tracker.config().voters.is_joint() && tracker.config().auto_leave);

        // The empty change leaves.
        let result = Changer::new(&tracker, LAST_INDEX)
            .apply(&ConfChange::leave_joint())
            .unwrap();
        install(&mut tracker, result);
        assert_eq!(tracker.conf_state(), ConfState::with_voters([2, 3, 4, 5]));

        // One change, explicitly joint: joint, left by the caller.
        let explicit = ConfChange {
            transition: ConfChangeTransition::JointExplicit,
            changes: vec![learner(2)],
            context: Bytes::new(),
        };
        let result = Changer::new(&tracker, LAST_INDEX).apply(&explicit).unwrap();
        install(&mut tracker, result);
        assert!(tracker.config().voters.is_joint() && !tracker.config().auto_leave);
        assert_eq!(tracker.conf_state().learners_next, ids(&[2]));

        // And the refusals come through.
        assert_eq!(
            Changer::new(&tracker, LAST_INDEX)
                .apply(&ConfChange::single(ConfChangeKind::AddVoter, 9)),
            Err(ConfChangeError::AlreadyJoint)
        );
    }

    #[test]
    fn error_messages_say_what_went_wrong() {
        assert_eq!(
            ConfChangeError::TooManyVoterChanges { count: 2 }.to_string(),
            "2 voters would change at once; changing more than one voter needs a joint configuration"
        );
        assert_eq!(
            ConfChangeError::InvalidConfState("1 is both a voter and a learner".to_owned())
                .to_string(),
            "invalid configuration state: 1 is both a voter and a learner"
        );
    }

    fn single_change() -> impl Strategy<Value = ConfChangeSingle> {
        let kind = prop_oneof![
            Just(ConfChangeKind::AddVoter),
            Just(ConfChangeKind::AddLearner),
            Just(ConfChangeKind::RemoveNode),
        ];
        // Id 0 now and then, to exercise the refusal.
        (kind, prop_oneof![20 => 1u64..7, 1 => Just(0u64)])
            .prop_map(|(kind, node_id)| ConfChangeSingle { kind, node_id })
    }

    fn conf_change() -> impl Strategy<Value = ConfChange> {
        let transition = prop_oneof![
            Just(ConfChangeTransition::Auto),
            Just(ConfChangeTransition::JointImplicit),
            Just(ConfChangeTransition::JointExplicit),
        ];
        (transition, proptest::collection::vec(single_change(), 0..4)).prop_map(
            |(transition, changes)| ConfChange {
                transition,
                changes,
                context: Bytes::new(),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever sequence of changes is applied, every configuration
        /// reached is valid, has voters, is consistent with its progress
        /// map, restores to itself, and keeps the progress of the members
        /// that stay; direct changes never change more than one voter.
        #[test]
        fn random_changes_always_yield_valid_configurations(
            changes in proptest::collection::vec(conf_change(), 1..25),
        ) {
            let mut tracker = voters(&[1]);
            for (step, change) in changes.iter().enumerate() {
                // Mark every member's progress so that we can see whether a
                // change kept it.
                for (id, progress) in tracker.progress_iter_mut() {
                    progress.maybe_update(id * 100 + step as u64);
                }
                let before = tracker.clone();
                let last_index = 1_000 + step as u64;
                let Ok((config, progress)) = Changer::new(&tracker, last_index).apply(change) else {
                    continue;
                };
                let conf_state = config.to_conf_state();
                prop_assert_eq!(conf_state.validate(), Ok(()), "{:?} then {:?}", before.conf_state(), change);
                prop_assert!(!conf_state.voters.is_empty());
                prop_assert_eq!(crate::tracker::check_consistent(&config, &progress), Ok(()));
                if !change.is_leave_joint() && change.enters_joint().is_none() {
                    let before_voters = before.config().voters.incoming().voters();
                    prop_assert!(before_voters.symmetric_difference(&conf_state.voters).count() <= 1);
                    prop_assert!(!conf_state.is_joint());
                }
                for (id, after) in &progress {
                    match before.progress(*id) {
                        // A member keeps its progress, unless the change
                        // removed it and added it back (then it is new).
                        Some(kept) if after.matched != kept.matched => {
                            let removed = change.changes.iter().any(|single| {
                                single.kind == ConfChangeKind::RemoveNode && single.node_id == *id
                            });
                            prop_assert!(removed, "member {} lost its progress", id);
                            prop_assert_eq!((after.matched, after.next), (0, last_index + 1));
                        }
                        Some(_) => {}
                        None => {
                            prop_assert_eq!((after.matched, after.next), (0, last_index + 1));
                            prop_assert!(after.recent_active);
                        }
                    }
                }
                let (restored, _) = Changer::restore(&conf_state, last_index, 4, 0).unwrap();
                prop_assert_eq!(&restored, &config);
                tracker.install(config, progress);
            }
        }
    }
}
