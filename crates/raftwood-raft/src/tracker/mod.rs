//! The leader's bookkeeping: the current configuration, what it knows about
//! each member's log ([`Progress`]), and the votes of an election.
//!
//! It implements the leader's state of paper §5.3 (`nextIndex` and
//! `matchIndex` per follower, and the commit rule over them), the vote
//! counting of §5.2, check-quorum (thesis §6.2) and learners (thesis
//! §4.2.1), all decided by the quorum math of [`crate::quorum`] so that a
//! joint configuration (thesis §4.3) needs both majorities. The
//! configuration itself only changes through
//! [`crate::membership::Changer`], whose result is [`ProgressTracker::install`]ed.

mod inflights;
mod progress;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use inflights::Inflights;
pub use progress::{Progress, ProgressState};

use crate::ids::{Index, NodeId};
use crate::membership::ConfState;
use crate::quorum::{JointConfig, MajorityConfig, VoteResult};

/// A configuration as the tracker uses it: the voters as quorum
/// configurations, plus the learners.
///
/// Invariants (those of [`ConfState`], which this mirrors): learners are
/// voters of neither half; `learners_next` are all outgoing voters and not
/// incoming ones; `learners_next` is empty and `auto_leave` false unless the
/// configuration is joint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Who votes, in one or (during a change) two configurations.
    pub voters: JointConfig,
    /// Members that receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// Outgoing voters being demoted: they become learners when the joint
    /// configuration is left (a member cannot be a voter and a learner at
    /// once, so the demotion waits).
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration automatically once entering it is
    /// committed (thesis §4.3), rather than when the caller asks.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The configuration as persisted and reported.
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming().voters().clone(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters.outgoing().voters().clone(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
        }
    }

    /// The configuration a [`ConfState`] describes, as is. It does not
    /// validate: a `ConfState` from outside goes through
    /// `Changer::restore` (in `membership/changer.rs`), which does.
    pub fn from_conf_state(conf_state: &ConfState) -> TrackerConfig {
        TrackerConfig {
            voters: JointConfig::new(
                MajorityConfig::new(conf_state.voters.clone()),
                MajorityConfig::new(conf_state.voters_outgoing.clone()),
            ),
            learners: conf_state.learners.clone(),
            learners_next: conf_state.learners_next.clone(),
            auto_leave: conf_state.auto_leave,
        }
    }

    /// Every member: voters of either half and learners (`learners_next`
    /// are outgoing voters, so they are included).
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut members = self.voters.ids();
        members.extend(&self.learners);
        members
    }
}

impl fmt::Display for TrackerConfig {
    /// `voters=(1 2 3)&&(1 2 4) learners=(5) learners_next=(4) autoleave`,
    /// leaving out what is empty or false.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", self.voters)?;
        if !self.learners.is_empty() {
            write!(
                f,
                " learners={}",
                MajorityConfig::new(self.learners.clone())
            )?;
        }
        if !self.learners_next.is_empty() {
            write!(
                f,
                " learners_next={}",
                MajorityConfig::new(self.learners_next.clone())
            )?;
        }
        if self.auto_leave {
            f.write_str(" autoleave")?;
        }
        Ok(())
    }
}

/// The progress of every member, by id.
pub type ProgressMap = BTreeMap<NodeId, Progress>;

/// Checks that `config` and `progress` belong together: exactly the members
/// have a progress, and a progress is marked learner exactly when its member
/// is in `learners` (an outgoing voter in `learners_next` still votes, so it
/// is not).
pub(crate) fn check_consistent(
    config: &TrackerConfig,
    progress: &ProgressMap,
) -> Result<(), String> {
    let members = config.members();
    if let Some(id) = members.iter().find(|id| !progress.contains_key(id)) {
        return Err(format!("member {id} has no progress"));
    }
    if let Some(id) = progress.keys().find(|id| !members.contains(id)) {
        return Err(format!("{id} has a progress but is not a member"));
    }
    for (id, member_progress) in progress {
        let is_learner = config.learners.contains(id);
        if member_progress.is_learner != is_learner {
            return Err(format!(
                "progress of {id} says learner={} but the configuration says {is_learner}",
                member_progress.is_learner
            ));
        }
    }
    if let Some(id) = config
        .learners
        .iter()
        .find(|&&id| config.voters.contains(id))
    {
        return Err(format!("{id} is both a voter and a learner"));
    }
    if let Some(id) = config.learners_next.iter().find(|&&id| {
        !config.voters.outgoing().contains(id) || config.voters.incoming().contains(id)
    }) {
        return Err(format!(
            "{id} is a next learner but not only an outgoing voter"
        ));
    }
    if !config.voters.is_joint() && config.auto_leave {
        return Err("auto_leave set outside a joint configuration".to_owned());
    }
    Ok(())
}

/// The configuration, every member's progress and the votes of the current
/// election.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    /// Invariant: consistent with `progress` (see `check_consistent`).
    config: TrackerConfig,
    /// Invariant: one entry per member of `config`, no other.
    progress: ProgressMap,
    /// The answers of the current election, first answer per member; may
    /// hold answers of non-voters, which the tally ignores.
    votes: BTreeMap<NodeId, bool>,
    /// The in-flight window given to new progress. Invariant: at least 1.
    max_inflight_messages: usize,
    /// The in-flight byte budget given to new progress (0: no limit).
    max_inflight_bytes: u64,
}

impl ProgressTracker {
    /// A tracker with an empty configuration; new progress gets the given
    /// in-flight limits.
    pub fn new(max_inflight_messages: usize, max_inflight_bytes: u64) -> ProgressTracker {
        assert!(
            max_inflight_messages > 0,
            "max_inflight_messages must be at least 1"
        );
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: ProgressMap::new(),
            votes: BTreeMap::new(),
            max_inflight_messages,
            max_inflight_bytes,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The configuration in force, as persisted and reported.
    pub fn conf_state(&self) -> ConfState {
        self.config.to_conf_state()
    }

    /// Replaces the configuration and the progress map with a changer's
    /// result.
    ///
    /// Panics if they do not belong together: the changer only produces
    /// consistent pairs, so a mismatch is a bug.
    pub fn install(&mut self, config: TrackerConfig, progress: ProgressMap) {
        if let Err(problem) = check_consistent(&config, &progress) {
            panic!("installing an inconsistent configuration {config}: {problem}");
        }
        self.config = config;
        self.progress = progress;
    }

    /// The progress of member `id`.
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.progress.get(&id)
    }

    /// The progress of member `id`, to update.
    pub fn progress_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.get_mut(&id)
    }

    /// Every member's progress, by id.
    pub fn progress_map(&self) -> &ProgressMap {
        &self.progress
    }

    /// Every member's progress, to update (for instance to reset them all
    /// when becoming leader). Members can be neither added nor removed
    /// this way; that is the changer's job.
    pub fn progress_iter_mut(&mut self) -> impl Iterator<Item = (NodeId, &mut Progress)> {
        self.progress
            .iter_mut()
            .map(|(&id, progress)| (id, progress))
    }

    /// Every member, voters and learners, in ascending order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        // The progress map has exactly one entry per member.
        self.progress.keys().copied()
    }

    /// The voters of either half of the configuration.
    pub fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.config.voters.ids()
    }

    /// Whether `id` votes (in either half of a joint configuration).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.config.voters.contains(id)
    }

    /// Whether `id` is a learner. An outgoing voter waiting in
    /// `learners_next` is not one yet.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.config.learners.contains(&id)
    }

    /// Whether exactly one member votes, outside a change: it then decides
    /// elections and commitment alone.
    pub fn is_singleton(&self) -> bool {
        !self.config.voters.is_joint() && self.config.voters.incoming().len() == 1
    }

    /// The largest index stored by a quorum of voters (of both halves when
    /// joint), from their `matched`. Whether it may be committed is the
    /// caller's decision (paper §5.4.2: only an entry of the leader's term
    /// is committed by counting). `Index::MAX` when there are no voters.
    pub fn committed_index(&self) -> Index {
        self.config
            .voters
            .committed_index(|id| self.progress.get(&id).map(|progress| progress.matched))
    }

    /// Records `id`'s answer to the current election. Only the first
    /// answer counts: a member votes once per term, so a later,
    /// contradicting answer is a duplicate or reordered message.
    pub fn record_vote(&mut self, id: NodeId, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// Counts the voters' answers: how many granted, how many refused, and
    /// what that decides. Answers of non-voters are ignored.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let mut granted = 0;
        let mut rejected = 0;
        for id in self.config.voters.ids() {
            match self.votes.get(&id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        let result = self
            .config
            .voters
            .vote_result(|id| self.votes.get(&id).copied());
        (granted, rejected, result)
    }

    /// Forgets the answers, for a new election.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Whether the voters heard from since the last reset, with `self_id`
    /// counted as heard from, make a quorum (thesis §6.2, check-quorum: a
    /// leader that cannot reach a quorum steps down).
    pub fn quorum_active(&self, self_id: NodeId) -> bool {
        let result = self.config.voters.vote_result(|id| {
            if id == self_id {
                Some(true)
            } else {
                Some(
                    self.progress
                        .get(&id)
                        .is_some_and(|progress| progress.recent_active),
                )
            }
        });
        result == VoteResult::Won
    }

    /// Starts a new check-quorum round: nobody has been heard from yet,
    /// except `self_id`.
    pub fn reset_recent_active(&mut self, self_id: NodeId) {
        for (&id, progress) in &mut self.progress {
            progress.recent_active = id == self_id;
        }
    }

    /// The in-flight window given to new progress.
    pub fn max_inflight_messages(&self) -> usize {
        self.max_inflight_messages
    }

    /// The in-flight byte budget given to new progress (0: no limit).
    pub fn max_inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker with voters `incoming` (&& `outgoing` when non-empty) and
    /// `learners`, every progress at matched 0, next 1.
    fn tracker(incoming: &[NodeId], outgoing: &[NodeId], learners: &[NodeId]) -> ProgressTracker {
        let config = TrackerConfig {
            voters: JointConfig::new(
                incoming.iter().copied().collect(),
                outgoing.iter().copied().collect(),
            ),
            learners: learners.iter().copied().collect(),
            learners_next: BTreeSet::new(),
            auto_leave: false,
        };
        let progress = config
            .members()
            .into_iter()
            .map(|id| (id, Progress::new(1, 8, 0, learners.contains(&id))))
            .collect();
        let mut tracker = ProgressTracker::new(8, 0);
        tracker.install(config, progress);
        tracker
    }

    fn set_matched(tracker: &mut ProgressTracker, matched: &[(NodeId, Index)]) {
        for &(id, index) in matched {
            assert!(tracker.progress_mut(id).unwrap().maybe_update(index));
        }
    }

    #[test]
    fn a_new_tracker_is_empty() {
        let tracker = ProgressTracker::new(16, 1 << 20);
        assert_eq!(tracker.conf_state(), ConfState::default());
        assert_eq!(tracker.members().count(), 0);
        assert!(!tracker.is_singleton());
        assert_eq!(tracker.committed_index(), Index::MAX);
        assert_eq!(tracker.max_inflight_messages(), 16);
        assert_eq!(tracker.max_inflight_bytes(), 1 << 20);
    }

    #[test]
    fn membership_queries() {
        let tracker = tracker(&[1, 2, 3], &[], &[4]);
        assert_eq!(tracker.members().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(tracker.voter_ids(), BTreeSet::from([1, 2, 3]));
        assert!(tracker.is_voter(2) && !tracker.is_voter(4));
        assert!(tracker.is_learner(4) && !tracker.is_learner(2));
        assert!(!tracker.is_learner(9) && !tracker.is_voter(9));
        assert!(tracker.progress(4).unwrap().is_learner);
        assert!(tracker.progress(9).is_none());
        assert_eq!(tracker.config().to_string(), "voters=(1 2 3) learners=(4)");
    }

    #[test]
    fn singleton_is_one_voter_outside_a_change() {
        assert!(tracker(&[1], &[], &[]).is_singleton());
        // Learners do not matter.
        assert!(tracker(&[1], &[], &[2]).is_singleton());
        assert!(!tracker(&[1, 2], &[], &[]).is_singleton());
        // One incoming voter, but the outgoing half votes too.
        assert!(!tracker(&[1], &[1, 2], &[]).is_singleton());
    }

    #[test]
    fn conf_state_round_trips() {
        let conf_state = ConfState {
            voters: BTreeSet::from([1, 2, 3]),
            learners: BTreeSet::from([5]),
            voters_outgoing: BTreeSet::from([1, 2, 4, 6]),
            learners_next: BTreeSet::from([4]),
            auto_leave: true,
        };
        let config = TrackerConfig::from_conf_state(&conf_state);
        assert_eq!(config.to_conf_state(), conf_state);
        assert!(config.voters.is_joint());
        assert_eq!(config.members(), BTreeSet::from([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            config.to_string(),
            "voters=(1 2 3)&&(1 2 4 6) learners=(5) learners_next=(4) autoleave"
        );
    }

    #[test]
    fn committed_index_counts_voters_only() {
        let mut tracker = tracker(&[1, 2, 3], &[], &[4]);
        assert_eq!(tracker.committed_index(), 0);
        // The learner being far ahead does not commit anything (thesis
        // §4.2.1: learners do not count toward commitment).
        set_matched(&mut tracker, &[(1, 10), (4, 10)]);
        assert_eq!(tracker.committed_index(), 0);
        set_matched(&mut tracker, &[(2, 7)]);
        assert_eq!(tracker.committed_index(), 7);
        set_matched(&mut tracker, &[(3, 9)]);
        assert_eq!(tracker.committed_index(), 9);
    }

    #[test]
    fn committed_index_needs_both_halves_when_joint() {
        let mut tracker = tracker(&[1, 2, 3], &[1, 4, 5], &[]);
        set_matched(&mut tracker, &[(1, 10), (2, 10), (3, 10)]);
        assert_eq!(tracker.committed_index(), 0, "old majority has not acked");
        set_matched(&mut tracker, &[(4, 6)]);
        assert_eq!(tracker.committed_index(), 6);
        set_matched(&mut tracker, &[(5, 12)]);
        assert_eq!(tracker.committed_index(), 10);
    }

    #[test]
    fn votes_first_answer_wins_and_non_voters_are_ignored() {
        let mut tracker = tracker(&[1, 2, 3, 4, 5], &[], &[6]);
        tracker.record_vote(1, true);
        tracker.record_vote(6, true); // a learner's vote does not count
        assert_eq!(tracker.tally_votes(), (1, 0, VoteResult::Pending));
        tracker.record_vote(2, false);
        tracker.record_vote(2, true); // duplicate, contradicting: ignored
        assert_eq!(tracker.tally_votes(), (1, 1, VoteResult::Pending));
        tracker.record_vote(3, false);
        tracker.record_vote(4, false);
        assert_eq!(tracker.tally_votes(), (1, 3, VoteResult::Lost));
        tracker.reset_votes();
        assert_eq!(tracker.tally_votes(), (0, 0, VoteResult::Pending));
        for id in [1, 2, 3] {
            tracker.record_vote(id, true);
        }
        assert_eq!(tracker.tally_votes(), (3, 0, VoteResult::Won));
    }

    #[test]
    fn joint_election_needs_both_majorities() {
        let mut tracker = tracker(&[1, 2, 3], &[3, 4, 5], &[]);
        for id in [1, 2, 3] {
            tracker.record_vote(id, true);
        }
        assert_eq!(tracker.tally_votes(), (3, 0, VoteResult::Pending));
        tracker.record_vote(4, true);
        assert_eq!(tracker.tally_votes(), (4, 0, VoteResult::Won));
    }

    #[test]
    fn quorum_active_counts_self_and_recently_active_voters() {
        let mut tracker = tracker(&[1, 2, 3], &[], &[4]);
        tracker.reset_recent_active(1);
        assert!(tracker.progress(1).unwrap().recent_active);
        assert!(!tracker.progress(2).unwrap().recent_active);
        assert!(!tracker.quorum_active(1), "only self");
        // An active learner does not make a quorum.
        tracker.progress_mut(4).unwrap().recent_active = true;
        assert!(!tracker.quorum_active(1));
        tracker.progress_mut(3).unwrap().recent_active = true;
        assert!(tracker.quorum_active(1));
        tracker.reset_recent_active(1);
        assert!(!tracker.quorum_active(1));
        assert!(!tracker.progress(4).unwrap().recent_active);
    }

    #[test]
    fn quorum_active_when_joint_needs_both_halves() {
        let mut tracker = tracker(&[1, 2, 3], &[1, 4, 5], &[]);
        tracker.reset_recent_active(1);
        tracker.progress_mut(2).unwrap().recent_active = true;
        assert!(!tracker.quorum_active(1), "the outgoing half has only self");
        tracker.progress_mut(5).unwrap().recent_active = true;
        assert!(tracker.quorum_active(1));
    }

    #[test]
    fn a_singleton_is_always_quorum_active() {
        let mut tracker = tracker(&[1], &[], &[]);
        tracker.reset_recent_active(1);
        assert!(tracker.quorum_active(1));
    }

    #[test]
    fn progress_iter_mut_updates_every_member() {
        let mut tracker = tracker(&[1, 2], &[], &[3]);
        for (_, progress) in tracker.progress_iter_mut() {
            progress.recent_active = true;
        }
        assert!(
            tracker
                .progress_map()
                .values()
                .all(|progress| progress.recent_active)
        );
    }

    #[test]
    #[should_panic(expected = "member 2 has no progress")]
    fn install_refuses_a_member_without_progress() {
        let config = TrackerConfig {
            voters: JointConfig::simple(BTreeSet::from([1, 2])),
            ..TrackerConfig::default()
        };
        let progress = ProgressMap::from([(1, Progress::new(1, 1, 0, false))]);
        ProgressTracker::new(1, 0).install(config, progress);
    }

    #[test]
    #[should_panic(expected = "3 has a progress but is not a member")]
    fn install_refuses_progress_of_a_non_member() {
        let config = TrackerConfig {
            voters: JointConfig::simple(BTreeSet::from([1])),
            ..TrackerConfig::default()
        };
        let progress = ProgressMap::from([
            (1, Progress::new(1, 1, 0, false)),
            (3, Progress::new(1, 1, 0, false)),
        ]);
        ProgressTracker::new(1, 0).install(config, progress);
    }

    #[test]
    #[should_panic(expected = "says learner=false")]
    fn install_refuses_a_learner_progress_mismatch() {
        let config = TrackerConfig {
            voters: JointConfig::simple(BTreeSet::from([1])),
            learners: BTreeSet::from([2]),
            ..TrackerConfig::default()
        };
        let progress = ProgressMap::from([
            (1, Progress::new(1, 1, 0, false)),
            (2, Progress::new(1, 1, 0, false)),
        ]);
        ProgressTracker::new(1, 0).install(config, progress);
    }
}
