//! A simple majority configuration: one set of voters, decisions need more
//! than half of them (paper §5.2 for votes, §5.3 for commitment).

use std::collections::BTreeSet;
use std::fmt;

use super::VoteResult;
use crate::ids::{Index, NodeId};

/// A set of voters deciding by simple majority.
///
/// An empty configuration is legal and has a deliberate meaning: it agrees
/// to everything (it has committed `Index::MAX` and every election is won),
/// so that in a joint configuration whose outgoing half is empty the
/// incoming half alone decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// A configuration of the given voters.
    pub fn new(voters: BTreeSet<NodeId>) -> MajorityConfig {
        MajorityConfig { voters }
    }

    /// The voters, in ascending order.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters (see the type's documentation for what
    /// an empty configuration decides).
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Whether `id` is a voter.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// How many voters make a majority: more than half. Zero for an empty
    /// configuration.
    fn quorum(&self) -> usize {
        if self.voters.is_empty() {
            0
        } else {
            self.voters.len() / 2 + 1
        }
    }

    /// The largest index that a majority of voters has acknowledged: the
    /// commit index this configuration allows (paper §5.3).
    ///
    /// `acked` says how far each voter has acknowledged; a voter for which it
    /// returns `None` counts as having acknowledged nothing (index 0). An
    /// empty configuration returns `Index::MAX` so that it never holds back
    /// the other half of a joint configuration.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<Index>) -> Index {
        if self.voters.is_empty() {
            return Index::MAX;
        }
        let mut indexes: Vec<Index> = self
            .voters
            .iter()
            .map(|&id| acked(id).unwrap_or(0))
            .collect();
        indexes.sort_unstable();
        // Sorted ascending, the element at `len - quorum` is the largest
        // index such that the `quorum` elements from it to the end are all
        // at least that large: exactly a majority has acknowledged it, and
        // any larger index is acknowledged by fewer than a majority.
        let position = indexes.len() - self.quorum();
        indexes[position]
    }

    /// Counts votes: `votes` returns `Some(true)` for a granted vote,
    /// `Some(false)` for a refusal and `None` for a voter that has not
    /// answered. Answers from non-voters are never asked for.
    ///
    /// Won once a majority granted; Lost once so many refused that the
    /// voters yet to answer cannot make a majority; Pending otherwise. An
    /// empty configuration has won (see the type's documentation).
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let mut granted = 0usize;
        let mut missing = 0usize;
        for &id in &self.voters {
            match votes(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.quorum();
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

impl fmt::Display for MajorityConfig {
    /// `(1 2 3)`, as etcd's transcripts print a configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (position, id) in self.voters.iter().enumerate() {
            if position > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str(")")
    }
}

impl FromIterator<NodeId> for MajorityConfig {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> MajorityConfig {
        MajorityConfig::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn config(ids: &[NodeId]) -> MajorityConfig {
        ids.iter().copied().collect()
    }

    /// The acknowledgements of a table row: voter i (1-based) acked
    /// `acks[i-1]`; `None` in the row means "no ack at all".
    fn acks_of(acks: &[Option<Index>]) -> BTreeMap<NodeId, Index> {
        acks.iter()
            .enumerate()
            .filter_map(|(position, ack)| ack.map(|index| (position as NodeId + 1, index)))
            .collect()
    }

    /// The definition, by brute force: the largest `i` such that a majority
    /// of voters acked at least `i` (0 if no positive `i` qualifies).
    fn brute_force_committed(voters: &BTreeSet<NodeId>, acks: &BTreeMap<NodeId, Index>) -> Index {
        if voters.is_empty() {
            return Index::MAX;
        }
        let candidates: BTreeSet<Index> = acks.values().copied().chain([0]).collect();
        candidates
            .into_iter()
            .filter(|&i| {
                let at_least = voters
                    .iter()
                    .filter(|id| acks.get(id).copied().unwrap_or(0) >= i)
                    .count();
                at_least * 2 > voters.len()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn committed_index_table_for_sizes_zero_to_five() {
        // (acks of voters 1..=n, expected commit index)
        let rows: &[(&[Option<Index>], Index)] = &[
            // Size 0: an empty configuration never holds anything back.
            (&[], Index::MAX),
            // Size 1: the single voter decides alone.
            (&[None], 0),
            (&[Some(0)], 0),
            (&[Some(12)], 12),
            // Size 2: both are needed (a majority of 2 is 2).
            (&[None, None], 0),
            (&[Some(12), None], 0),
            (&[Some(12), Some(5)], 5),
            (&[Some(5), Some(12)], 5),
            (&[Some(7), Some(7)], 7),
            // Size 3: the median.
            (&[None, None, None], 0),
            (&[Some(12), None, None], 0),
            (&[Some(12), Some(5), None], 5),
            (&[Some(12), Some(5), Some(7)], 7),
            (&[Some(5), Some(12), Some(12)], 12),
            (&[Some(1), Some(2), Some(3)], 2),
            // Size 4: three of four are needed.
            (&[Some(10), Some(20), None, None], 0),
            (&[Some(10), Some(20), Some(30), None], 10),
            (&[Some(10), Some(20), Some(30), Some(40)], 20),
            (&[Some(40), Some(40), Some(40), Some(1)], 40),
            // Size 5: three of five are needed.
            (&[Some(1), Some(2), Some(3), Some(4), Some(5)], 3),
            (&[Some(5), Some(5), None, None, None], 0),
            (&[Some(5), Some(5), Some(4), None, None], 4),
            (&[Some(9), None, Some(9), None, Some(9)], 9),
            (&[Some(2), Some(9), Some(9), Some(9), Some(9)], 9),
        ];
        for (acks, expected) in rows {
            let voters: Vec<NodeId> = (1..=acks.len() as NodeId).collect();
            let config = config(&voters);
            let acks = acks_of(acks);
            let got = config.committed_index(|id| acks.get(&id).copied());
            assert_eq!(got, *expected, "voters {config} acks {acks:?}");
            assert_eq!(got, brute_force_committed(config.voters(), &acks));
        }
    }

    #[test]
    fn acks_from_non_voters_do_not_count() {
        let config = config(&[1, 2, 3]);
        // Voter 1 and non-voters 4 and 5 acked; a majority of the voters has
        // not.
        let acks = BTreeMap::from([(1, 10), (4, 10), (5, 10)]);
        assert_eq!(config.committed_index(|id| acks.get(&id).copied()), 0);
    }

    #[test]
    fn vote_result_table_for_sizes_zero_to_five() {
        use VoteResult::{Lost, Pending, Won};
        // (votes of voters 1..=n, expected result)
        let rows: &[(&[Option<bool>], VoteResult)] = &[
            // Size 0: an empty configuration has won.
            (&[], Won),
            // Size 1.
            (&[None], Pending),
            (&[Some(true)], Won),
            (&[Some(false)], Lost),
            // Size 2: both must grant, one refusal loses.
            (&[None, None], Pending),
            (&[Some(true), None], Pending),
            (&[Some(true), Some(true)], Won),
            (&[Some(false), None], Lost),
            (&[Some(true), Some(false)], Lost),
            // Size 3: two must grant, two refusals lose.
            (&[None, None, None], Pending),
            (&[Some(true), None, None], Pending),
            (&[Some(false), None, None], Pending),
            (&[Some(true), Some(false), None], Pending),
            (&[Some(true), Some(true), None], Won),
            (&[Some(false), Some(false), None], Lost),
            (&[Some(true), Some(false), Some(false)], Lost),
            (&[Some(true), Some(false), Some(true)], Won),
            // Size 4: three must grant, two refusals lose.
            (&[Some(true), Some(true), None, None], Pending),
            (&[Some(true), Some(true), Some(true), None], Won),
            (&[Some(true), Some(true), Some(false), None], Pending),
            (&[Some(false), Some(false), None, None], Lost),
            (&[Some(true), Some(true), Some(false), Some(false)], Lost),
            // Size 5: three must grant, three refusals lose.
            (&[Some(true), Some(true), None, None, None], Pending),
            (&[Some(true), Some(true), Some(true), None, None], Won),
            (&[Some(false), Some(false), None, None, None], Pending),
            (&[Some(false), Some(false), Some(false), None, None], Lost),
            (
                &[Some(true), Some(true), Some(false), Some(false), None],
                Pending,
            ),
            (
                &[Some(true), Some(true), Some(false), Some(false), Some(true)],
                Won,
            ),
            (
                &[
                    Some(true),
                    Some(true),
                    Some(false),
                    Some(false),
                    Some(false),
                ],
                Lost,
            ),
        ];
        for (votes, expected) in rows {
            let voters: Vec<NodeId> = (1..=votes.len() as NodeId).collect();
            let config = config(&voters);
            let got = config.vote_result(|id| votes[(id - 1) as usize]);
            assert_eq!(got, *expected, "voters {config} votes {votes:?}");
        }
    }

    #[test]
    fn accessors_and_display() {
        let config = config(&[3, 1, 2]);
        assert_eq!(config.len(), 3);
        assert!(!config.is_empty());
        assert!(config.contains(2));
        assert!(!config.contains(4));
        assert_eq!(
            config.voters().iter().copied().collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(config.to_string(), "(1 2 3)");
        let empty = MajorityConfig::default();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.to_string(), "()");
    }

    proptest! {
        #[test]
        fn committed_index_matches_brute_force(
            voters in proptest::collection::btree_set(1u64..10, 0..8),
            acks in proptest::collection::btree_map(1u64..12, 0u64..20, 0..12),
        ) {
            let config = MajorityConfig::new(voters.clone());
            let got = config.committed_index(|id| acks.get(&id).copied());
            prop_assert_eq!(got, brute_force_committed(&voters, &acks));
        }

        /// Won and Lost are final: adding the missing answers never flips a
        /// decided outcome, and a fully answered vote is never Pending.
        #[test]
        fn vote_result_is_monotone(
            voters in proptest::collection::btree_set(1u64..8, 0..7),
            partial in proptest::collection::btree_map(1u64..8, any::<bool>(), 0..8),
            fill in any::<bool>(),
        ) {
            let config = MajorityConfig::new(voters);
            let before = config.vote_result(|id| partial.get(&id).copied());
            let after = config.vote_result(|id| Some(partial.get(&id).copied().unwrap_or(fill)));
            prop_assert_ne!(after, VoteResult::Pending);
            if before != VoteResult::Pending {
                prop_assert_eq!(before, after);
            }
        }
    }
}
