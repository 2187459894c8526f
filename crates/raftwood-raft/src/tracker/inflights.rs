//! Flow control for one follower: the append messages sent but not yet
//! acknowledged, bounded in count and in bytes.

use std::collections::VecDeque;

use crate::ids::Index;

/// A bounded FIFO of the append messages in flight to one follower, each
/// remembered by the index of its last entry and its size.
///
/// The leader stops sending entries to a follower in the Replicate state
/// once this is full, so that a slow follower cannot make the leader queue
/// unbounded data; an acknowledgement of index `i` frees every message
/// whose last entry is at or below `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflights {
    /// The messages in flight, oldest first. Invariant: last indexes
    /// strictly increase from front to back, because the leader sends
    /// entries in log order and resets this tracker whenever it rewinds.
    messages: VecDeque<InflightMessage>,
    /// The sum of `bytes` over `messages`. Invariant: kept equal to it, so
    /// that freeing and resetting return it to zero (no leak).
    bytes: u64,
    /// The most messages in flight at once. Invariant: at least 1.
    max_messages: usize,
    /// The most bytes in flight at once, or 0 for no limit by bytes.
    max_bytes: u64,
}

/// One append message in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InflightMessage {
    /// The index of the last entry the message carried.
    last_index: Index,
    /// The size of the entries it carried.
    bytes: u64,
}

impl Inflights {
    /// An empty tracker allowing at most `max_messages` messages and
    /// `max_bytes` bytes in flight (`max_bytes` 0: no limit by bytes).
    ///
    /// Panics if `max_messages` is 0: nothing could ever be sent. The
    /// node's configuration refuses that value before it gets here.
    pub fn new(max_messages: usize, max_bytes: u64) -> Inflights {
        assert!(max_messages > 0, "max_inflight_messages must be at least 1");
        Inflights {
            // Not preallocated: most followers are idle or probing most of
            // the time, and a large cluster would otherwise pay for the
            // full window of every follower up front.
            messages: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Records a message carrying entries up to `last_index`, of `bytes`
    /// bytes in total.
    ///
    /// The caller checks [`Inflights::is_full`] first; a message that makes
    /// the byte total pass the limit is still accepted (the limit is
    /// checked before sending, like a soft budget), and the tracker is then
    /// full until acknowledgements free enough.
    pub fn add(&mut self, last_index: Index, bytes: u64) {
        if let Some(newest) = self.messages.back() {
            assert!(
                last_index > newest.last_index,
                "in-flight appends must have increasing last indexes: {last_index} after {}",
                newest.last_index
            );
        }
        debug_assert!(
            self.messages.len() < self.max_messages,
            "append sent to a follower whose in-flight window is full"
        );
        self.messages
            .push_back(InflightMessage { last_index, bytes });
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Forgets every message whose last index is at or below `index`: the
    /// follower has acknowledged them (an acknowledgement covers every
    /// earlier entry too).
    pub fn free_up_to(&mut self, index: Index) {
        while let Some(oldest) = self.messages.front() {
            if oldest.last_index > index {
                break;
            }
            // `bytes` is the sum over the messages, this one included;
            // saturation (here and in `add`) only matters for absurd sizes
            // near `u64::MAX`, and still ends at zero once all are freed.
            self.bytes = self.bytes.saturating_sub(oldest.bytes);
            self.messages.pop_front();
        }
        if self.messages.is_empty() {
            // The byte total is a running sum; with no message left it must
            // be back at zero or it has leaked.
            debug_assert_eq!(self.bytes, 0);
            self.bytes = 0;
        }
    }

    /// Forgets the oldest message in flight, presumed lost.
    pub fn free_first(&mut self) {
        if let Some(oldest) = self.messages.pop_front() {
            self.bytes = self.bytes.saturating_sub(oldest.bytes);
        }
        if self.messages.is_empty() {
            self.bytes = 0;
        }
    }

    /// Whether no more messages may be sent: the count or the byte budget
    /// is exhausted.
    pub fn is_full(&self) -> bool {
        self.messages.len() >= self.max_messages
            || (self.max_bytes > 0 && self.bytes >= self.max_bytes)
    }

    /// The number of messages in flight.
    pub fn count(&self) -> usize {
        self.messages.len()
    }

    /// The bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most messages allowed in flight.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The most bytes allowed in flight (0: no limit).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The last index of the newest message in flight, if any.
    pub fn newest_last_index(&self) -> Option<Index> {
        self.messages.back().map(|message| message.last_index)
    }

    /// Forgets everything in flight: the leader stopped pipelining to this
    /// follower (it probes, sends a snapshot, or lost leadership), so the
    /// messages are either lost or will be answered in a way that no
    /// longer needs them tracked.
    pub fn reset(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn add_and_free_keep_count_and_bytes() {
        let mut inflights = Inflights::new(10, 0);
        for last_index in 1..=5 {
            inflights.add(last_index * 10, 100);
        }
        assert_eq!(inflights.count(), 5);
        assert_eq!(inflights.bytes(), 500);
        assert_eq!(inflights.newest_last_index(), Some(50));

        // An ack below the oldest message frees nothing.
        inflights.free_up_to(9);
        assert_eq!((inflights.count(), inflights.bytes()), (5, 500));

        // An ack in the middle of a message frees only the ones before it.
        inflights.free_up_to(25);
        assert_eq!((inflights.count(), inflights.bytes()), (3, 300));

        // An ack exactly at a message's last index frees that message.
        inflights.free_up_to(40);
        assert_eq!((inflights.count(), inflights.bytes()), (1, 100));

        // A stale ack (lower than one already processed) changes nothing.
        inflights.free_up_to(20);
        assert_eq!((inflights.count(), inflights.bytes()), (1, 100));

        // An ack beyond everything frees everything.
        inflights.free_up_to(1_000);
        assert_eq!((inflights.count(), inflights.bytes()), (0, 0));
        assert_eq!(inflights.newest_last_index(), None);
    }

    #[test]
    fn full_by_count() {
        let mut inflights = Inflights::new(3, 0);
        inflights.add(1, 1);
        inflights.add(2, 1);
        assert!(!inflights.is_full());
        inflights.add(3, 1);
        assert!(inflights.is_full());
        inflights.free_up_to(1);
        assert!(!inflights.is_full());
    }

    #[test]
    fn full_by_bytes_including_an_overshooting_message() {
        let mut inflights = Inflights::new(100, 1_000);
        inflights.add(1, 400);
        inflights.add(2, 400);
        assert!(!inflights.is_full());
        // This one passes the budget; it is accepted, then the window is
        // closed until acks free enough.
        inflights.add(3, 400);
        assert!(inflights.is_full());
        assert_eq!(inflights.bytes(), 1_200);
        // Freeing one brings the total back under the budget.
        inflights.free_up_to(1);
        assert_eq!(inflights.bytes(), 800);
        assert!(!inflights.is_full());
    }

    #[test]
    fn zero_max_bytes_means_no_byte_limit() {
        let mut inflights = Inflights::new(2, 0);
        inflights.add(1, u64::MAX / 2);
        assert!(!inflights.is_full());
        inflights.add(2, u64::MAX / 2);
        assert!(inflights.is_full(), "full by count");
        inflights.free_up_to(1);
        assert!(!inflights.is_full());
    }

    #[test]
    fn reset_empties_everything() {
        let mut inflights = Inflights::new(4, 100);
        inflights.add(5, 60);
        inflights.add(6, 60);
        assert!(inflights.is_full());
        inflights.reset();
        assert_eq!((inflights.count(), inflights.bytes()), (0, 0));
        assert!(!inflights.is_full());
        // After a reset, indexes may start lower again (the leader rewound).
        inflights.add(2, 10);
        assert_eq!(inflights.count(), 1);
    }

    #[test]
    #[should_panic(expected = "increasing last indexes")]
    fn add_refuses_a_non_increasing_index() {
        let mut inflights = Inflights::new(4, 0);
        inflights.add(5, 1);
        inflights.add(5, 1);
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn zero_max_messages_is_refused() {
        let _ = Inflights::new(0, 0);
    }

    /// An operation of the in-flight leak model test.
    #[derive(Debug, Clone)]
    enum Op {
        /// Send a message `gap` entries past the newest, of `bytes` bytes.
        Add {
            gap: u64,
            bytes: u64,
        },
        /// Ack up to `back` entries before the newest in flight.
        Free {
            back: u64,
        },
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..5, 0u64..200).prop_map(|(gap, bytes)| Op::Add { gap, bytes }),
            3 => (0u64..10).prop_map(|back| Op::Free { back }),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        /// The flow-control in-flight leak bug class (a count or byte total
        /// that never returns to zero, so the window slowly closes for
        /// good): driven against a plain list as the model, the tracker
        /// agrees after every step, and an ack of everything or a reset
        /// always brings it back to empty.
        #[test]
        fn no_leak_against_a_model(ops in proptest::collection::vec(op(), 0..60)) {
            let mut inflights = Inflights::new(8, 500);
            let mut model: Vec<(Index, u64)> = Vec::new();
            let mut next_index: Index = 1;
            for op in ops {
                match op {
                    Op::Add { gap, bytes } => {
                        if inflights.is_full() {
                            continue;
                        }
                        next_index += gap;
                        inflights.add(next_index, bytes);
                        model.push((next_index, bytes));
                    }
                    Op::Free { back } => {
                        let index = next_index.saturating_sub(back);
                        inflights.free_up_to(index);
                        model.retain(|&(last, _)| last > index);
                    }
                    Op::Reset => {
                        inflights.reset();
                        model.clear();
                    }
                }
                prop_assert_eq!(inflights.count(), model.len());
                prop_assert_eq!(inflights.bytes(), model.iter().map(|&(_, bytes)| bytes).sum::<u64>());
                prop_assert!(inflights.count() <= 8);
            }
            let mut acked = inflights.clone();
            acked.free_up_to(next_index);
            prop_assert_eq!((acked.count(), acked.bytes()), (0, 0));
            inflights.reset();
            prop_assert_eq!((inflights.count(), inflights.bytes()), (0, 0));
        }
    }
}
