//! Batching of linearizable reads: every read that arrives while a
//! ReadIndex round is in flight waits for the next round, so one round of
//! heartbeats confirms any number of concurrent reads (thesis §6.4), and a
//! read never rides on a round that started before it arrived.

use std::collections::HashMap;

use bytes::Bytes;
use raftwood_raft::Index;
use tokio::sync::oneshot;

/// Why a linearizable read could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No leader is known.
    #[error("no leader")]
    NoLeader,
    /// The member is shutting down.
    #[error("stopped")]
    Stopped,
    /// The read was retried until its deadline without being confirmed.
    #[error("timed out")]
    TimedOut,
}

/// A reader waiting for the index its read must wait for.
pub type ReadReply = oneshot::Sender<Result<Index, ReadError>>;

/// Reads waiting for a round, and rounds in flight.
#[derive(Debug, Default)]
pub struct ReadBatcher {
    /// Arrived since the last round started.
    waiting: Vec<ReadReply>,
    /// Rounds in flight, by context: the tick each started at, and its
    /// readers.
    in_flight: HashMap<u64, (u64, Vec<ReadReply>)>,
    next_context: u64,
    /// Ticks seen, the clock of rounds' deadlines.
    ticks: u64,
    /// Ticks the current waiting batch has failed to start a round.
    retry_ticks: u32,
}

/// Ticks a batch may retry (no leader yet, leader not ready) before its
/// readers are told to give up.
const MAX_RETRY_TICKS: u32 = 50;

impl ReadBatcher {
    /// One round in flight at a time, each with readers, numbered and
    /// started in the past; retries bounded.
    fn check_invariants(&self) {
        assert!(
            self.in_flight.len() <= 1,
            "rounds in flight: {}",
            self.in_flight.len()
        );
        assert!(
            self.in_flight.iter().all(|(&context, (started, readers))| {
                context <= self.next_context && *started <= self.ticks && !readers.is_empty()
            }),
            "a round in flight not started by this batcher"
        );
        assert!(
            self.retry_ticks <= MAX_RETRY_TICKS,
            "retried past the limit"
        );
    }

    /// A new read arrived.
    pub fn push(&mut self, reply: ReadReply) {
        self.waiting.push(reply);
    }

    /// Whether reads are waiting for a round to start.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Starts a round for every waiting read if none is in flight, with
    /// `start` asking the raft core for it. Returns whether one started.
    pub fn start_round(
        &mut self,
        start: impl FnOnce(Bytes) -> Result<(), raftwood_raft::Error>,
    ) -> bool {
        if self.waiting.is_empty() || !self.in_flight.is_empty() {
            return false;
        }
        self.waiting.retain(|reply| !reply.is_closed());
        if self.waiting.is_empty() {
            return false;
        }
        self.next_context += 1;
        let context = self.next_context;
        match start(Bytes::copy_from_slice(&context.to_be_bytes())) {
            Ok(()) => {
                let readers = std::mem::take(&mut self.waiting);
                let earlier = self.in_flight.insert(context, (self.ticks, readers));
                assert!(earlier.is_none(), "read round {context} started twice");
                self.retry_ticks = 0;
                self.check_invariants();
                true
            }
            Err(raftwood_raft::Error::NotLeader { leader: None }) => {
                self.fail_waiting_after_retries(ReadError::NoLeader);
                self.check_invariants();
                false
            }
            Err(_) => {
                self.fail_waiting_after_retries(ReadError::TimedOut);
                self.check_invariants();
                false
            }
        }
    }

    fn fail_waiting_after_retries(&mut self, error: ReadError) {
        self.retry_ticks += 1;
        if self.retry_ticks > MAX_RETRY_TICKS {
            for reply in self.waiting.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            self.retry_ticks = 0;
        }
    }

    /// One tick passed. A round in flight for `timeout_ticks` is given up
    /// and its readers wait for the next round: the ReadIndex message or
    /// its answer may have been lost (the transport drops what it queued
    /// for a peer it reconnects to), and without this the member's reads
    /// stalled until leadership changed. A late answer to a given-up round
    /// is ignored.
    pub fn tick(&mut self, timeout_ticks: u64) {
        self.ticks += 1;
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (started, _))| self.ticks.saturating_sub(*started) >= timeout_ticks)
            .map(|(context, _)| *context)
            .collect();
        for context in expired {
            self.failed(&context.to_be_bytes());
        }
        self.check_invariants();
    }

    /// A round was confirmed: its readers may read once `index` is applied.
    pub fn confirmed(&mut self, context: &[u8], index: Index) {
        if let Some((_, replies)) = decode_context(context).and_then(|c| self.in_flight.remove(&c))
        {
            for reply in replies {
                let _ = reply.send(Ok(index));
            }
        }
        self.check_invariants();
    }

    /// A round failed (leader change): its readers wait for the next round.
    pub fn failed(&mut self, context: &[u8]) {
        if let Some((_, mut replies)) =
            decode_context(context).and_then(|c| self.in_flight.remove(&c))
        {
            replies.append(&mut self.waiting);
            self.waiting = replies;
        }
        self.check_invariants();
    }

    /// The member's leader changed: rounds in flight to the old leader will
    /// never be answered, so their readers go back to waiting.
    pub fn leader_changed(&mut self) {
        let mut contexts: Vec<u64> = self.in_flight.keys().copied().collect();
        contexts.sort_unstable();
        for context in contexts {
            self.failed(&context.to_be_bytes());
        }
        assert!(
            self.in_flight.is_empty(),
            "a round of the old leader left in flight"
        );
    }

    /// Shutting down: every reader is told.
    pub fn stop(&mut self) {
        for reply in self
            .waiting
            .drain(..)
            .chain(self.in_flight.drain().flat_map(|(_, (_, v))| v))
        {
            let _ = reply.send(Err(ReadError::Stopped));
        }
    }
}

fn decode_context(context: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(context.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arriving_during_a_round_wait_for_the_next() {
        let mut batcher = ReadBatcher::default();
        let (first, mut first_rx) = oneshot::channel();
        batcher.push(first);
        let mut started = Vec::new();
        assert!(batcher.start_round(|c| {
            started.push(c);
            Ok(())
        }));
        let (second, mut second_rx) = oneshot::channel();
        batcher.push(second);
        assert!(!batcher.start_round(|_| Ok(())), "one round at a time");
        batcher.confirmed(&started[0], 10);
        assert_eq!(first_rx.try_recv().unwrap(), Ok(10));
        assert!(
            second_rx.try_recv().is_err(),
            "the second read is not confirmed by the first round"
        );
        assert!(batcher.start_round(|c| {
            started.push(c);
            Ok(())
        }));
        batcher.confirmed(&started[1], 12);
        assert_eq!(second_rx.try_recv().unwrap(), Ok(12));
    }

    #[test]
    fn a_round_never_answered_is_given_up_and_its_readers_ride_the_next() {
        // Hardening: a lost ReadIndex message left its round in flight
        // forever, and every later read waited behind it.
        let mut batcher = ReadBatcher::default();
        let (reply, mut answer) = oneshot::channel();
        batcher.push(reply);
        let mut first = Vec::new();
        assert!(batcher.start_round(|c| {
            first = c.to_vec();
            Ok(())
        }));
        for _ in 0..9 {
            batcher.tick(10);
        }
        assert!(!batcher.start_round(|_| Ok(())), "still in flight");
        batcher.tick(10);
        let mut second = Vec::new();
        assert!(
            batcher.start_round(|c| {
                second = c.to_vec();
                Ok(())
            }),
            "given up: a new round starts"
        );
        assert_ne!(first, second);
        batcher.confirmed(&first, 5);
        assert!(
            answer.try_recv().is_err(),
            "a late answer to the old round is ignored"
        );
        batcher.confirmed(&second, 7);
        assert_eq!(answer.try_recv().unwrap(), Ok(7));
    }

    #[test]
    fn a_failed_round_is_retried_and_a_leaderless_batch_eventually_fails() {
        let mut batcher = ReadBatcher::default();
        let (reply, mut rx) = oneshot::channel();
        batcher.push(reply);
        let mut context = Bytes::new();
        batcher.start_round(|c| {
            context = c;
            Ok(())
        });
        batcher.failed(&context);
        assert!(batcher.has_waiting());
        for _ in 0..=MAX_RETRY_TICKS {
            batcher.start_round(|_| Err(raftwood_raft::Error::NotLeader { leader: None }));
        }
        assert_eq!(rx.try_recv().unwrap(), Err(ReadError::NoLeader));
    }
}
