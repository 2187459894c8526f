//! A joint configuration: two majority configurations that must both agree
//! (thesis §4.3, joint consensus).

use std::collections::BTreeSet;
use std::fmt;

use super::{MajorityConfig, VoteResult};
use crate::ids::{Index, NodeId};

/// The voters of a configuration, possibly in transition: decisions need a
/// majority of the incoming voters *and* a majority of the outgoing ones.
///
/// Outside a membership change the outgoing half is empty, and since an
/// empty majority configuration agrees to everything the incoming half
/// alone decides; the same code therefore serves both cases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JointConfig {
    /// The configuration being moved to (or the only one). Invariant, kept
    /// by the membership changer rather than here: non-empty whenever the
    /// outgoing half is.
    incoming: MajorityConfig,
    /// The configuration being left; empty when not joint.
    outgoing: MajorityConfig,
}

impl JointConfig {
    /// A configuration from its two halves; pass an empty `outgoing` for a
    /// configuration that is not joint.
    pub fn new(incoming: MajorityConfig, outgoing: MajorityConfig) -> JointConfig {
        JointConfig { incoming, outgoing }
    }

    /// A configuration that is not joint.
    pub fn simple(voters: BTreeSet<NodeId>) -> JointConfig {
        JointConfig::new(MajorityConfig::new(voters), MajorityConfig::default())
    }

    /// The configuration being moved to (or the only one).
    pub fn incoming(&self) -> &MajorityConfig {
        &self.incoming
    }

    /// The configuration being left; empty when not joint.
    pub fn outgoing(&self) -> &MajorityConfig {
        &self.outgoing
    }

    /// Whether a membership change is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every voter of either half.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters()
            .union(self.outgoing.voters())
            .copied()
            .collect()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The largest index committed by both halves: an entry is committed in
    /// a joint configuration only once majorities of both store it. Returns
    /// `Index::MAX` when both halves are empty.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<Index>) -> Index {
        let incoming = self.incoming.committed_index(&acked);
        let outgoing = self.outgoing.committed_index(&acked);
        incoming.min(outgoing)
    }

    /// Won when both halves have won, Lost as soon as either has lost,
    /// Pending otherwise.
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(&votes);
        let outgoing = self.outgoing.vote_result(&votes);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

impl fmt::Display for JointConfig {
    /// `(1 2 3)` when simple, `(1 2 3)&&(1 2 4)` (incoming first) when
    /// joint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_joint() {
            write!(f, "{}&&{}", self.incoming, self.outgoing)
        } else {
            write!(f, "{}", self.incoming)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn joint(incoming: &[NodeId], outgoing: &[NodeId]) -> JointConfig {
        JointConfig::new(
            incoming.iter().copied().collect(),
            outgoing.iter().copied().collect(),
        )
    }

    /// The definition, by brute force: the largest `i` such that each
    /// non-empty half has a majority that acked at least `i`.
    fn brute_force_committed(config: &JointConfig, acks: &BTreeMap<NodeId, Index>) -> Index {
        let halves = [config.incoming().voters(), config.outgoing().voters()];
        if halves.iter().all(|half| half.is_empty()) {
            return Index::MAX;
        }
        let majority_acked = |half: &BTreeSet<NodeId>, i: Index| {
            half.is_empty()
                || half
                    .iter()
                    .filter(|id| acks.get(id).copied().unwrap_or(0) >= i)
                    .count()
                    * 2
                    > half.len()
        };
        acks.values()
            .copied()
            .chain([0])
            .filter(|&i| halves.iter().all(|half| majority_acked(half, i)))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn simple_config_is_not_joint_and_is_decided_by_its_voters() {
        let config = JointConfig::simple(BTreeSet::from([1, 2, 3]));
        assert!(!config.is_joint());
        assert!(config.outgoing().is_empty());
        assert_eq!(config.to_string(), "(1 2 3)");
        let acks = BTreeMap::from([(1, 5), (2, 7), (3, 9)]);
        assert_eq!(config.committed_index(|id| acks.get(&id).copied()), 7);
        assert_eq!(
            config.vote_result(|id| (id != 3).then_some(true)),
            VoteResult::Won
        );
    }

    #[test]
    fn ids_and_contains_cover_both_halves() {
        let config = joint(&[1, 2, 3], &[2, 3, 4]);
        assert!(config.is_joint());
        assert_eq!(config.ids(), BTreeSet::from([1, 2, 3, 4]));
        for id in 1..=4 {
            assert!(config.contains(id), "{id}");
        }
        assert!(!config.contains(5));
        assert_eq!(config.to_string(), "(1 2 3)&&(2 3 4)");
    }

    #[test]
    fn empty_config_commits_everything_and_wins_every_vote() {
        let config = JointConfig::default();
        assert_eq!(config.committed_index(|_| None), Index::MAX);
        assert_eq!(config.vote_result(|_| None), VoteResult::Won);
        assert!(config.ids().is_empty());
    }

    #[test]
    fn joint_committed_index_is_the_minimum_of_both_halves() {
        // (incoming, outgoing, acks, expected)
        type Row<'a> = (&'a [NodeId], &'a [NodeId], &'a [(NodeId, Index)], Index);
        let rows: &[Row<'_>] = &[
            // The outgoing half holds back: the new voters 4 and 5 have not
            // caught up, so only the old half's 10 and new half's 0 count.
            (&[1, 4, 5], &[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 0),
            (&[1, 2, 4], &[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 10),
            // Each half has its own majority at a different index.
            (
                &[1, 2, 3],
                &[4, 5, 6],
                &[(1, 8), (2, 8), (3, 8), (4, 3), (5, 4), (6, 5)],
                4,
            ),
            (
                &[1, 2, 3],
                &[4, 5, 6],
                &[(1, 2), (2, 3), (3, 8), (4, 9), (5, 9), (6, 9)],
                3,
            ),
            // A single overlapping voter is not enough for either half.
            (&[1, 2], &[2, 3], &[(2, 50)], 0),
            (&[1, 2], &[2, 3], &[(1, 40), (2, 50), (3, 30)], 30),
            // An empty incoming half (only ever transient) defers to the other.
            (&[], &[1, 2, 3], &[(1, 4), (2, 6)], 4),
        ];
        for (incoming, outgoing, acks, expected) in rows {
            let config = joint(incoming, outgoing);
            let acks: BTreeMap<NodeId, Index> = acks.iter().copied().collect();
            let got = config.committed_index(|id| acks.get(&id).copied());
            assert_eq!(got, *expected, "{config} acks {acks:?}");
            assert_eq!(got, brute_force_committed(&config, &acks));
        }
    }

    #[test]
    fn joint_vote_result_needs_both_halves() {
        use VoteResult::{Lost, Pending, Won};
        // (incoming, outgoing, votes, expected)
        type Row<'a> = (&'a [NodeId], &'a [NodeId], &'a [(NodeId, bool)], VoteResult);
        let rows: &[Row<'_>] = &[
            (&[1, 2, 3], &[1, 2, 3], &[(1, true), (2, true)], Won),
            // The incoming half won, the outgoing one has not decided.
            (&[1, 2, 3], &[4, 5, 6], &[(1, true), (2, true)], Pending),
            (
                &[1, 2, 3],
                &[4, 5, 6],
                &[(1, true), (2, true), (4, true), (6, true)],
                Won,
            ),
            // Winning one half does not save a lost other half.
            (
                &[1, 2, 3],
                &[4, 5, 6],
                &[(1, true), (2, true), (4, false), (5, false)],
                Lost,
            ),
            (
                &[1, 2, 3],
                &[4, 5, 6],
                &[(1, false), (2, false), (4, true), (5, true)],
                Lost,
            ),
            // Lost in one half while the other is still pending.
            (&[1, 2, 3], &[3, 4, 5], &[(3, false), (4, false)], Lost),
            (&[1, 2, 3], &[3, 4, 5], &[(3, true), (4, true)], Pending),
            (
                &[1, 2, 3],
                &[3, 4, 5],
                &[(3, true), (4, true), (1, true)],
                Won,
            ),
            (&[1], &[2], &[(1, true)], Pending),
            (&[1], &[2], &[(1, true), (2, true)], Won),
            (&[1], &[2], &[(1, true), (2, false)], Lost),
        ];
        for (incoming, outgoing, votes, expected) in rows {
            let config = joint(incoming, outgoing);
            let votes: BTreeMap<NodeId, bool> = votes.iter().copied().collect();
            let got = config.vote_result(|id| votes.get(&id).copied());
            assert_eq!(got, *expected, "{config} votes {votes:?}");
        }
    }

    proptest! {
        #[test]
        fn joint_committed_index_matches_brute_force(
            incoming in proptest::collection::btree_set(1u64..8, 0..6),
            outgoing in proptest::collection::btree_set(1u64..8, 0..6),
            acks in proptest::collection::btree_map(1u64..9, 0u64..20, 0..9),
        ) {
            let config = JointConfig::new(MajorityConfig::new(incoming), MajorityConfig::new(outgoing));
            let got = config.committed_index(|id| acks.get(&id).copied());
            prop_assert_eq!(got, brute_force_committed(&config, &acks));
        }
    }
}
