//! What the leader knows about one follower's log, and how it sends to it:
//! probing for the point where the logs agree, pipelining entries once they
//! do, or waiting for a snapshot (paper §5.3, thesis §3.5 and §5.3 for the
//! pipelining and snapshots).

use std::fmt;

use super::inflights::Inflights;
use crate::ids::Index;

/// How the leader sends to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// The leader does not know where the follower's log matches its own.
    /// It sends one append at a time (a probe) and waits for the answer
    /// before sending another, walking `next` back on each rejection
    /// (paper §5.3).
    Probe,
    /// The follower's log is known to match up to `matched`; the leader
    /// streams appends without waiting, up to the in-flight window
    /// (thesis §10.2.1, pipelining).
    Replicate,
    /// The follower needs entries the leader has compacted away; a
    /// snapshot up to `pending_index` is on its way (paper §7). Nothing
    /// else is sent until the follower reports on it.
    Snapshot {
        /// The index of the snapshot being sent.
        pending_index: Index,
    },
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot { .. } => "StateSnapshot",
        })
    }
}

/// The leader's view of one follower (or learner).
///
/// The state transitions live here and only here: a caller changes state
/// through the `become_*` methods and reports what happened on the wire
/// through `sent_entries`, `maybe_update`, `maybe_decrease_to` and
/// `heartbeat_response_received`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be replicated on the follower (0: none
    /// known). Only grows while this progress exists. Invariant:
    /// `matched < next`.
    pub matched: Index,
    /// The index of the next entry to send. Invariant: `matched < next`;
    /// in Replicate, every in-flight message's last index is below `next`.
    pub next: Index,
    /// How the leader sends to this follower. Invariant: `inflights` is
    /// empty unless the state is Replicate.
    pub state: ProgressState,
    /// In Probe: a probe is outstanding, so no other append is sent until
    /// the follower answers it or answers a heartbeat (the probe may have
    /// been lost). Meaningless, and kept false, in the other states.
    pub probe_sent: bool,
    /// The follower has been heard from since the last check-quorum round
    /// (thesis §6.2): a leader that has not heard from a quorum steps down.
    pub recent_active: bool,
    /// The member is a learner: it receives the log but does not vote and
    /// does not count toward commitment (thesis §4.2.1).
    pub is_learner: bool,
    /// The appends in flight to this follower in Replicate, bounded for
    /// flow control.
    pub inflights: Inflights,
}

impl Progress {
    /// A follower about which nothing is known yet: matched 0, in Probe,
    /// starting at `next`.
    ///
    /// `recent_active` starts false; the membership changer sets it for
    /// members it adds, so that check-quorum does not count a member that
    /// has had no chance to answer yet as a failure.
    pub fn new(
        next: Index,
        max_inflight_messages: usize,
        max_inflight_bytes: u64,
        is_learner: bool,
    ) -> Progress {
        assert!(next > 0, "next must be above matched (0)");
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            is_learner,
            inflights: Inflights::new(max_inflight_messages, max_inflight_bytes),
        }
    }

    /// Moves to `state`, forgetting the per-state bookkeeping of the old
    /// one: nothing is in flight (the old messages are lost or will be
    /// answered without needing tracking) and no probe is outstanding.
    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Starts probing: after a rejection, after a snapshot was applied or
    /// failed, or when a leader starts.
    ///
    /// Probing restarts just past `matched`, except after a snapshot: once
    /// the follower has it, everything up to its index is there, so
    /// probing starts after it (if the snapshot failed, the first probe is
    /// rejected and walks `next` back).
    pub fn become_probe(&mut self) {
        let next = match self.state {
            ProgressState::Snapshot { pending_index } => {
                (self.matched + 1).max(pending_index.saturating_add(1))
            }
            ProgressState::Probe | ProgressState::Replicate => self.matched + 1,
        };
        self.reset_state(ProgressState::Probe);
        self.next = next;
        self.check_invariants();
    }

    /// The caller finished (or failed) sending the snapshot. Ignored unless
    /// in Snapshot. The follower is probed after the snapshot if it arrived,
    /// else from its match (it never received the snapshot); either way the
    /// probe waits for the follower's answer or a heartbeat response, so a
    /// failing stream is not retried in a tight loop.
    pub fn snapshot_reported(&mut self, success: bool) {
        if !matches!(self.state, ProgressState::Snapshot { .. }) {
            return;
        }
        if !success {
            self.state = ProgressState::Snapshot { pending_index: 0 };
        }
        self.become_probe();
        self.probe_sent = true;
    }

    /// Starts pipelining: the follower's log is known to match up to
    /// `matched`, so sending resumes right after it.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
        self.check_invariants();
    }

    /// Starts sending the snapshot up to `snapshot_index`.
    ///
    /// `next` moves past the snapshot, since that is where sending resumes
    /// if it is installed. A snapshot below `matched` is never sent by a
    /// correct leader (it sends one only when `next - 1` is compacted away,
    /// and `next - 1 >= matched`), but `next` is kept above `matched`
    /// regardless.
    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.reset_state(ProgressState::Snapshot {
            pending_index: snapshot_index,
        });
        self.next = self.matched.max(snapshot_index).saturating_add(1);
        self.check_invariants();
    }

    /// Records that an append of `count` entries, the last at `last_index`
    /// and `bytes` bytes in total, was sent (`count` may be 0: an append
    /// carrying only the commit index, or an empty probe).
    ///
    /// In Replicate the entries are optimistically assumed to arrive:
    /// `next` moves past them and they are tracked in flight. In Probe the
    /// append is a probe, and no other is sent until it is answered.
    ///
    /// Panics in Snapshot: nothing is sent while a snapshot is pending
    /// (the caller checks [`Progress::is_paused`]).
    pub fn sent_entries(&mut self, count: usize, last_index: Index, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if count > 0 {
                    // Appends start at `next`; anything else would leave a
                    // hole or resend acknowledged entries out of order.
                    assert!(
                        last_index >= self.next,
                        "sent entries up to {last_index} but next is {}",
                        self.next
                    );
                    debug_assert_eq!(last_index + 1, self.next + count as u64);
                    self.next = last_index + 1;
                    self.inflights.add(last_index, bytes);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => {
                panic!("append sent to a follower waiting for a snapshot ({self})")
            }
        }
        self.check_invariants();
    }

    /// Records a successful append response acknowledging `index`: the
    /// follower's log matches the leader's up to there.
    ///
    /// Returns whether `matched` advanced; a stale acknowledgement (at or
    /// below `matched`, e.g. reordered on the wire) changes nothing but
    /// may still free in-flight messages already acknowledged.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let advanced = index > self.matched;
        if advanced {
            self.matched = index;
            // The probe (if any) has been answered.
            self.probe_sent = false;
        }
        self.next = self.next.max(index.saturating_add(1));
        self.inflights.free_up_to(index);
        self.check_invariants();
        advanced
    }

    /// Records that the follower rejected the append whose previous entry
    /// was at `rejected`, hinting that its log may match up to
    /// `hint_index` (paper §5.3's fast backup).
    ///
    /// - In Replicate, a rejection at or below `matched` is stale (it
    ///   answers an append sent before a later one succeeded) and is
    ///   ignored. Otherwise the follower's log is not what pipelining
    ///   assumed: sending restarts after `matched`, in Probe. (The caller
    ///   may call `become_probe` again; it is idempotent.)
    /// - In Probe only one probe is outstanding, at `next - 1`, so a
    ///   rejection of any other index is stale. Otherwise `next` moves back
    ///   to the hint (never past `matched`, never forward), and the next
    ///   probe may go out.
    /// - In Snapshot nothing is sent, so every rejection is stale.
    ///
    /// Returns whether anything changed, i.e. whether the caller should
    /// send again.
    pub fn maybe_decrease_to(&mut self, rejected: Index, hint_index: Index) -> bool {
        let changed = match self.state {
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    false
                } else {
                    self.become_probe();
                    true
                }
            }
            ProgressState::Probe => {
                if self.next - 1 != rejected {
                    false
                } else {
                    self.next = rejected
                        .min(hint_index.saturating_add(1))
                        .max(self.matched + 1);
                    self.probe_sent = false;
                    true
                }
            }
            ProgressState::Snapshot { .. } => false,
        };
        self.check_invariants();
        changed
    }

    /// Whether the leader must hold back appends to this follower: a probe
    /// is outstanding, the in-flight window is full, or a snapshot is
    /// pending.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// Records a heartbeat response: the follower is reachable, so an
    /// outstanding probe was probably lost and may be sent again. (The
    /// caller sets `recent_active` itself, as for any message.)
    ///
    /// In Replicate with a full window, one slot is freed: if appends were
    /// lost on the way (a dropped connection), no acknowledgement will ever
    /// free the window, and replication would stall for good. The extra
    /// append either fills the gap's place harmlessly or is rejected, and
    /// the rejection sends the follower back to Probe.
    pub fn heartbeat_response_received(&mut self) {
        self.probe_sent = false;
        if self.state == ProgressState::Replicate && self.inflights.is_full() {
            self.inflights.free_first();
        }
    }

    /// The invariants documented on the fields; none can be broken by what
    /// arrives on the wire, only by a bug in this type or its caller.
    fn check_invariants(&self) {
        assert!(
            self.matched < self.next,
            "progress invariant broken: matched {} >= next {}",
            self.matched,
            self.next
        );
        debug_assert!(
            self.state == ProgressState::Replicate || self.inflights.count() == 0,
            "messages in flight outside Replicate: {self}"
        );
        debug_assert!(
            self.state == ProgressState::Probe || !self.probe_sent,
            "probe_sent outside Probe: {self}"
        );
        debug_assert!(
            self.inflights
                .newest_last_index()
                .is_none_or(|newest| newest < self.next),
            "message in flight at or past next: {self}"
        );
    }
}

impl fmt::Display for Progress {
    /// `StateReplicate match=5 next=6`, followed by what is unusual:
    /// ` learner`, ` paused`, ` pending_snapshot=N`, ` inactive`,
    /// ` inflight=N` (with `[full]` when the window is closed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} match={} next={}",
            self.state, self.matched, self.next
        )?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if let ProgressState::Snapshot { pending_index } = self.state {
            write!(f, " pending_snapshot={pending_index}")?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        let in_flight = self.inflights.count();
        if in_flight > 0 {
            write!(f, " inflight={in_flight}")?;
            if self.inflights.is_full() {
                f.write_str("[full]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A progress in `state` with the given matched and next, active, with
    /// a window of 4 messages and no byte limit.
    fn progress(state: ProgressState, matched: Index, next: Index) -> Progress {
        let mut progress = Progress::new(next, 4, 0, false);
        progress.matched = matched;
        progress.state = state;
        progress.recent_active = true;
        progress
    }

    #[test]
    fn new_progress_probes_from_next_with_nothing_matched() {
        let progress = Progress::new(11, 4, 0, true);
        assert_eq!(progress.matched, 0);
        assert_eq!(progress.next, 11);
        assert_eq!(progress.state, ProgressState::Probe);
        assert!(!progress.probe_sent);
        assert!(!progress.recent_active);
        assert!(progress.is_learner);
        assert!(!progress.is_paused());
        assert_eq!(
            progress.to_string(),
            "StateProbe match=0 next=11 learner inactive"
        );
    }

    #[test]
    fn become_probe_restarts_after_matched_or_after_the_snapshot() {
        // (state before, matched, next, expected next)
        let rows = [
            (ProgressState::Replicate, 1, 5, 2),
            (ProgressState::Probe, 3, 9, 4),
            // The snapshot was installed: probing starts right after it.
            (ProgressState::Snapshot { pending_index: 10 }, 1, 11, 11),
            // The follower reported more than the snapshot: after matched.
            (ProgressState::Snapshot { pending_index: 10 }, 12, 13, 13),
        ];
        for (state, matched, next, expected) in rows {
            let mut progress = progress(state, matched, next);
            progress.become_probe();
            assert_eq!(progress.state, ProgressState::Probe, "{state}");
            assert_eq!(progress.matched, matched);
            assert_eq!(progress.next, expected, "{state} matched {matched}");
            assert!(!progress.probe_sent);
        }
    }

    #[test]
    fn become_replicate_resumes_after_matched() {
        let mut progress = progress(ProgressState::Probe, 1, 5);
        progress.probe_sent = true;
        progress.become_replicate();
        assert_eq!(progress.state, ProgressState::Replicate);
        assert_eq!((progress.matched, progress.next), (1, 2));
        assert!(!progress.probe_sent);
        assert!(!progress.is_paused());
    }

    #[test]
    fn become_snapshot_moves_next_past_the_snapshot_and_pauses() {
        let mut progress = progress(ProgressState::Replicate, 3, 4);
        progress.sent_entries(2, 5, 10);
        progress.become_snapshot(20);
        assert_eq!(
            progress.state,
            ProgressState::Snapshot { pending_index: 20 }
        );
        assert_eq!((progress.matched, progress.next), (3, 21));
        assert_eq!(progress.inflights.count(), 0, "in-flight appends dropped");
        assert!(progress.is_paused());
        assert_eq!(
            progress.to_string(),
            "StateSnapshot match=3 next=21 paused pending_snapshot=20"
        );
    }

    #[test]
    fn sent_entries_in_replicate_pipelines_and_fills_the_window() {
        let mut progress = progress(ProgressState::Replicate, 5, 6);
        assert_eq!(progress.to_string(), "StateReplicate match=5 next=6");
        // An empty append (commit index only) changes nothing.
        progress.sent_entries(0, 5, 0);
        assert_eq!((progress.next, progress.inflights.count()), (6, 0));
        progress.sent_entries(3, 8, 300);
        assert_eq!(progress.next, 9);
        assert_eq!(progress.inflights.count(), 1);
        assert_eq!(progress.inflights.bytes(), 300);
        for last in [9, 10, 11] {
            assert!(!progress.is_paused());
            progress.sent_entries(1, last, 100);
        }
        assert!(progress.is_paused(), "window of 4 is full");
        assert_eq!(
            progress.to_string(),
            "StateReplicate match=5 next=12 paused inflight=4[full]"
        );
        // An ack of the first two messages opens the window again.
        assert!(progress.maybe_update(9));
        assert!(!progress.is_paused());
        assert_eq!(progress.inflights.count(), 2);
        assert_eq!(progress.inflights.bytes(), 200);
    }

    #[test]
    fn sent_entries_in_probe_pauses_until_an_answer() {
        let mut progress = progress(ProgressState::Probe, 0, 6);
        progress.sent_entries(2, 7, 10);
        assert!(progress.probe_sent);
        assert!(progress.is_paused());
        assert_eq!(progress.next, 6, "a probe does not move next");
        assert_eq!(
            progress.inflights.count(),
            0,
            "probes are not tracked in flight"
        );

        // A heartbeat response lets the (maybe lost) probe be sent again.
        progress.heartbeat_response_received();
        assert!(!progress.is_paused());

        // So does a rejection of the probe...
        progress.sent_entries(0, 5, 0);
        assert!(progress.is_paused());
        assert!(progress.maybe_decrease_to(5, 5));
        assert!(!progress.is_paused());

        // ...and an acknowledgement.
        progress.sent_entries(1, 5, 1);
        assert!(progress.maybe_update(5));
        assert!(!progress.is_paused());
    }

    #[test]
    #[should_panic(expected = "waiting for a snapshot")]
    fn sending_while_a_snapshot_is_pending_is_a_bug() {
        let mut progress = progress(ProgressState::Snapshot { pending_index: 9 }, 0, 10);
        progress.sent_entries(1, 10, 1);
    }

    #[test]
    fn maybe_update_raises_matched_and_next() {
        // Starting from matched 3, next 5 (an append of 4 in flight).
        // (ack, advanced, matched after, next after)
        let rows = [
            (2, false, 3, 5), // stale
            (3, false, 3, 5), // duplicate
            (4, true, 4, 5),  // the in-flight entry
            (5, true, 5, 6),  // beyond next: next follows
            (10, true, 10, 11),
        ];
        for (ack, advanced, matched, next) in rows {
            let mut progress = progress(ProgressState::Probe, 3, 5);
            progress.probe_sent = true;
            assert_eq!(progress.maybe_update(ack), advanced, "ack {ack}");
            assert_eq!(
                (progress.matched, progress.next),
                (matched, next),
                "ack {ack}"
            );
            // Only an ack that advanced answers the probe.
            assert_eq!(progress.probe_sent, !advanced, "ack {ack}");
        }
    }

    #[test]
    fn maybe_decrease_to_in_replicate() {
        // A stale rejection, at or below matched, is ignored.
        let mut progress = progress(ProgressState::Replicate, 5, 10);
        assert!(!progress.maybe_decrease_to(5, 5));
        assert!(!progress.maybe_decrease_to(4, 4));
        assert_eq!(
            (progress.state, progress.next),
            (ProgressState::Replicate, 10)
        );

        // A real one rewinds to just after matched, in Probe.
        progress.sent_entries(2, 11, 20);
        assert!(progress.maybe_decrease_to(9, 9));
        assert_eq!(progress.state, ProgressState::Probe);
        assert_eq!((progress.matched, progress.next), (5, 6));
        assert_eq!(progress.inflights.count(), 0);
        assert_eq!(progress.inflights.bytes(), 0);
        // The caller's own become_probe is harmless.
        progress.become_probe();
        assert_eq!((progress.state, progress.next), (ProgressState::Probe, 6));
    }

    #[test]
    fn maybe_decrease_to_in_probe() {
        // (matched, next, rejected, hint, changed, next after)
        let rows = [
            // Not the outstanding probe (next - 1): stale.
            (0, 10, 5, 5, false, 10),
            (0, 10, 10, 5, false, 10),
            // The probe, hint at the rejected index: back by one.
            (0, 10, 9, 9, true, 9),
            // The hint jumps back further (fast backup).
            (0, 10, 9, 2, true, 3),
            (0, 10, 9, 0, true, 1),
            // A hint above the rejected index never moves next forward.
            (0, 10, 9, 20, true, 9),
            // Never back past matched.
            (5, 10, 9, 1, true, 6),
            // An absurd hint from the wire does not overflow.
            (0, 10, 9, Index::MAX, true, 9),
        ];
        for (matched, next, rejected, hint, changed, next_after) in rows {
            let mut progress = progress(ProgressState::Probe, matched, next);
            progress.probe_sent = true;
            let row = format!("matched {matched} next {next} rejected {rejected} hint {hint}");
            assert_eq!(progress.maybe_decrease_to(rejected, hint), changed, "{row}");
            assert_eq!(progress.next, next_after, "{row}");
            assert_eq!(progress.probe_sent, !changed, "{row}");
            assert_eq!(progress.matched, matched);
        }
    }

    #[test]
    fn rejections_while_a_snapshot_is_pending_are_ignored() {
        let mut progress = progress(ProgressState::Snapshot { pending_index: 20 }, 3, 21);
        assert!(!progress.maybe_decrease_to(20, 0));
        assert_eq!(progress.next, 21);
        assert_eq!(
            progress.state,
            ProgressState::Snapshot { pending_index: 20 }
        );
    }

    #[test]
    fn is_paused_by_state() {
        let mut probe = progress(ProgressState::Probe, 0, 1);
        assert!(!probe.is_paused());
        probe.probe_sent = true;
        assert!(probe.is_paused());

        let mut replicate = progress(ProgressState::Replicate, 0, 1);
        assert!(!replicate.is_paused());
        for last in 1..=4 {
            replicate.sent_entries(1, last, 1);
        }
        assert!(replicate.is_paused());

        let snapshot = progress(ProgressState::Snapshot { pending_index: 7 }, 0, 8);
        assert!(snapshot.is_paused());
    }

    #[test]
    fn in_flight_window_does_not_leak_across_state_changes() {
        // The flow-control in-flight leak: a window that is not emptied
        // when the leader stops pipelining stays (partly) closed forever
        // after it resumes, and the follower stalls.
        let mut progress = Progress::new(1, 3, 1_000, false);
        progress.become_replicate();
        progress.sent_entries(2, 2, 400);
        progress.sent_entries(2, 4, 400);
        progress.sent_entries(1, 5, 400);
        assert!(progress.is_paused());

        // Rejection → Probe: the window is emptied.
        assert!(progress.maybe_decrease_to(3, 1));
        assert_eq!(
            (progress.inflights.count(), progress.inflights.bytes()),
            (0, 0)
        );

        // Probe → ack → Replicate, fill again, then Snapshot: emptied.
        progress.sent_entries(0, 0, 0);
        assert!(progress.maybe_update(2));
        progress.become_replicate();
        progress.sent_entries(2, 4, 900);
        progress.sent_entries(1, 5, 900);
        assert!(progress.is_paused());
        progress.become_snapshot(50);
        assert_eq!(
            (progress.inflights.count(), progress.inflights.bytes()),
            (0, 0)
        );

        // Snapshot applied → Probe → Replicate: the whole window is usable.
        assert!(progress.maybe_update(50));
        progress.become_probe();
        progress.become_replicate();
        for last in 51..=53 {
            assert!(!progress.is_paused(), "window closed early at {last}");
            progress.sent_entries(1, last, 1);
        }
        // Acks of everything empty it too.
        assert!(progress.maybe_update(53));
        assert_eq!(
            (progress.inflights.count(), progress.inflights.bytes()),
            (0, 0)
        );
    }

    /// What can happen to one follower, for the random walk below.
    #[derive(Debug, Clone)]
    enum Event {
        Send { count: u64, bytes: u64 },
        Ack { back: u64 },
        Reject { back: u64, hint_back: u64 },
        HeartbeatResponse,
        BecomeProbe,
        BecomeReplicate,
        BecomeSnapshot { ahead: u64 },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (0u64..4, 0u64..300).prop_map(|(count, bytes)| Event::Send { count, bytes }),
            3 => (0u64..6).prop_map(|back| Event::Ack { back }),
            2 => (0u64..4, 0u64..6).prop_map(|(back, hint_back)| Event::Reject { back, hint_back }),
            1 => Just(Event::HeartbeatResponse),
            1 => Just(Event::BecomeProbe),
            1 => Just(Event::BecomeReplicate),
            1 => (0u64..5).prop_map(|ahead| Event::BecomeSnapshot { ahead }),
        ]
    }

    proptest! {
        /// A random walk through every transition keeps the documented
        /// invariants (checked inside each method), never lowers matched,
        /// and never leaves messages in flight outside Replicate.
        #[test]
        fn random_transitions_keep_the_invariants(events in proptest::collection::vec(event(), 0..80)) {
            let mut progress = Progress::new(1, 4, 1_000, false);
            for event in events {
                let matched_before = progress.matched;
                match event {
                    Event::Send { count, bytes } => {
                        if !progress.is_paused() {
                            progress.sent_entries(count as usize, progress.next + count - 1, bytes);
                        }
                    }
                    Event::Ack { back } => {
                        progress.maybe_update(progress.next.saturating_sub(1 + back));
                    }
                    Event::Reject { back, hint_back } => {
                        let rejected = progress.next.saturating_sub(1 + back);
                        progress.maybe_decrease_to(rejected, rejected.saturating_sub(hint_back));
                    }
                    Event::HeartbeatResponse => progress.heartbeat_response_received(),
                    Event::BecomeProbe => progress.become_probe(),
                    Event::BecomeReplicate => progress.become_replicate(),
                    Event::BecomeSnapshot { ahead } => progress.become_snapshot(progress.next + ahead),
                }
                prop_assert!(progress.matched >= matched_before);
                prop_assert!(progress.matched < progress.next);
                if progress.state != ProgressState::Replicate {
                    prop_assert_eq!(progress.inflights.count(), 0);
                    prop_assert_eq!(progress.inflights.bytes(), 0);
                }
            }
            progress.become_probe();
            prop_assert_eq!((progress.inflights.count(), progress.inflights.bytes()), (0, 0));
        }
    }
}
