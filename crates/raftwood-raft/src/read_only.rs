//! The leader's queue of linearizable reads waiting for a heartbeat round to
//! confirm that it is still the leader (thesis §6.4, ReadIndex).
//!
//! Each read remembers the commit index when it arrived. A heartbeat round
//! carries a round number; once a quorum answers that round, every read
//! queued up to it is confirmed — a quorum answering a later round proves
//! leadership for all earlier ones too.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::ids::{Index, NodeId};

/// One read waiting for confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRead {
    /// The caller's context.
    pub context: Bytes,
    /// The commit index when the read arrived.
    pub index: Index,
    /// Who asked: this member, or a follower that forwarded it.
    pub requester: NodeId,
    /// The heartbeat round that confirms it.
    pub round: u64,
}

/// Reads in arrival order, with the acknowledgements of each round.
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyQueue {
    /// Invariant: rounds are non-decreasing along the queue.
    pending: VecDeque<PendingRead>,
    /// Members that answered each round still in the queue (oldest first),
    /// as (round, acknowledgers).
    acks: VecDeque<(u64, BTreeSet<NodeId>)>,
    /// The last round number handed out.
    last_round: u64,
}

impl ReadOnlyQueue {
    /// Queues a read at commit index `index`, returning the round whose
    /// heartbeats must be sent to confirm it. The leader counts as having
    /// answered its own round.
    pub fn add(&mut self, context: Bytes, index: Index, requester: NodeId, leader: NodeId) -> u64 {
        self.last_round += 1;
        let round = self.last_round;
        debug_assert!(self.pending.back().is_none_or(|p| p.round <= round));
        self.pending.push_back(PendingRead {
            context,
            index,
            requester,
            round,
        });
        self.acks.push_back((round, BTreeSet::from([leader])));
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        round
    }

    /// Records that `from` answered `round`; returns the members that have
    /// answered it (so the caller can check for a quorum), or `None` if the
    /// round is unknown (already confirmed, or from an earlier term).
    pub fn acknowledge(&mut self, round: u64, from: NodeId) -> Option<&BTreeSet<NodeId>> {
        let (_, members) = self.acks.iter_mut().find(|(r, _)| *r == round)?;
        members.insert(from);
        Some(members)
    }

    /// Removes and returns every read up to and including `round`, now
    /// confirmed.
    pub fn confirm_through(&mut self, round: u64) -> Vec<PendingRead> {
        let mut confirmed = Vec::new();
        while self.pending.front().is_some_and(|p| p.round <= round) {
            if let Some(read) = self.pending.pop_front() {
                confirmed.push(read);
            }
        }
        while self.acks.front().is_some_and(|(r, _)| *r <= round) {
            self.acks.pop_front();
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        confirmed
    }

    /// Removes every pending read (the leader stepped down).
    pub fn drain(&mut self) -> Vec<PendingRead> {
        self.acks.clear();
        self.pending.drain(..).collect()
    }

    /// The most recent round still waiting, if any (heartbeats carry it).
    pub fn latest_round(&self) -> Option<u64> {
        self.acks.back().map(|(r, _)| *r)
    }

    /// Number of reads waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The queue's invariants: reads in round order, one acknowledgement
    /// set per waiting read's round (a round is confirmed, and forgotten,
    /// together with its reads), and no round above the last handed out.
    fn check_invariants(&self) {
        assert!(
            self.pending
                .iter()
                .zip(self.pending.iter().skip(1))
                .all(|(a, b)| a.round <= b.round),
            "reads out of round order"
        );
        assert!(
            self.pending
                .iter()
                .map(|read| read.round)
                .eq(self.acks.iter().map(|(round, _)| *round)),
            "the rounds of the reads and of their acknowledgements differ"
        );
        assert!(
            self.acks
                .back()
                .is_none_or(|(round, _)| *round <= self.last_round),
            "a round above the last one handed out"
        );
    }
}

/// Encodes a round number as a heartbeat's read context.
pub fn round_to_context(round: u64) -> Bytes {
    Bytes::copy_from_slice(&round.to_be_bytes())
}

/// Decodes a heartbeat response's read context; `None` for anything that is
/// not one of ours (a malformed or foreign context is ignored).
pub fn context_to_round(context: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(context.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_round_confirms_earlier_reads() {
        let mut queue = ReadOnlyQueue::default();
        let first = queue.add(Bytes::from_static(b"a"), 5, 1, 1);
        let second = queue.add(Bytes::from_static(b"b"), 6, 2, 1);
        assert!(first < second);
        let acked = queue.acknowledge(second, 2).unwrap().clone();
        assert_eq!(acked, BTreeSet::from([1, 2]));
        let confirmed = queue.confirm_through(second);
        assert_eq!(confirmed.len(), 2);
        assert_eq!(confirmed[0].index, 5);
        assert_eq!(queue.len(), 0);
        assert!(
            queue.acknowledge(first, 3).is_none(),
            "confirmed rounds are forgotten"
        );
    }

    #[test]
    fn foreign_contexts_are_ignored() {
        assert_eq!(context_to_round(&round_to_context(42)), Some(42));
        assert_eq!(context_to_round(b"short"), None);
    }
}
