#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The drive loop driven one round at a time, without threads or a
//! runtime: the persistence work is carried out by the test through the
//! same batch functions the persistence thread uses, and the apply side
//! is whatever the test chooses to do with the apply channel.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use parking_lot::Mutex;
use raftwood_raft::{
    ConfState, Config, Index, InitialState, Message, PersistRequest, RaftNode, Role, SnapshotMeta,
};
use raftwood_server::driver::{
    ApplyWork, DriveLoop, LogStorage, LoopEvent, LoopOutputs, MAX_COMMITTED_UNAPPLIED_ENTRIES,
    PersistBatcher, PersistWork, ProposeError, ProposeResult, RaftStatus, RoundOutcome, Waiters,
};
use raftwood_server::timings::StageTimings;
use raftwood_server::transport::MessageSink;
use tokio::sync::{oneshot, watch};

/// A single member needs no peers.
struct NoPeers;

impl MessageSink for NoPeers {
    fn send(&self, messages: Vec<Message>) {
        assert!(messages.is_empty(), "a single member has no one to talk to");
    }
    fn send_snapshot(&self, _message: Message) {
        panic!("a single member sends no snapshot");
    }
}

/// Storage that accepts everything (durability is not under test here).
#[derive(Default)]
struct AcceptingStorage {
    writes: usize,
}

impl LogStorage for AcceptingStorage {
    fn write(&mut self, _request: &PersistRequest) -> Result<(), String> {
        self.writes += 1;
        Ok(())
    }
    fn sync(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn compact(&mut self, _snapshot: &SnapshotMeta) -> Result<(), String> {
        Ok(())
    }
}

/// A one-member loop whose apply side never applies anything.
struct Harness {
    drive: DriveLoop,
    persist: std_mpsc::Receiver<PersistWork>,
    apply: std_mpsc::Receiver<ApplyWork>,
    storage: AcceptingStorage,
    batcher: PersistBatcher,
    /// Entries handed to the apply side (and never applied).
    handed_to_apply: Index,
}

impl Harness {
    fn new() -> Harness {
        let node = RaftNode::new(
            Config::new(1),
            InitialState::bootstrap(ConfState::with_voters([1])),
        )
        .unwrap();
        let (persist_tx, persist) = std_mpsc::channel();
        let (apply_tx, apply) = std_mpsc::channel();
        let (status, _) = watch::channel(RaftStatus::default());
        let drive = DriveLoop::new(
            node,
            LoopOutputs {
                network: Arc::new(NoPeers),
                persist: persist_tx,
                apply: apply_tx,
                waiters: Arc::new(Mutex::new(Waiters::default())),
                status,
            },
            0,
        );
        Harness {
            drive,
            persist,
            apply,
            storage: AcceptingStorage::default(),
            batcher: PersistBatcher::default(),
            handed_to_apply: 0,
        }
    }

    /// One round, then the persistence work it queued, as the
    /// persistence thread would do it, until nothing is left to persist.
    fn round(&mut self, events: Vec<LoopEvent>) {
        assert_eq!(self.drive.round(events), RoundOutcome::Continue);
        loop {
            let works: Vec<PersistWork> = self.persist.try_iter().collect();
            for work in self.apply.try_iter() {
                if let ApplyWork::Entries(entries) = work {
                    self.handed_to_apply = entries.last().map_or(self.handed_to_apply, |e| e.index);
                }
            }
            if works.is_empty() {
                return;
            }
            let (tickets, snapshots) = self
                .batcher
                .write(&mut self.storage, works)
                .and_then(|batch| batch.sync(&mut self.storage))
                .unwrap();
            assert!(snapshots.is_empty());
            assert_eq!(
                self.drive.round(vec![LoopEvent::Persisted(tickets)]),
                RoundOutcome::Continue
            );
        }
    }

    fn propose(&mut self, count: usize) -> Vec<oneshot::Receiver<ProposeResult>> {
        let mut receivers = Vec::new();
        let mut events = Vec::new();
        for _ in 0..count {
            let (reply, receiver) = oneshot::channel();
            events.push(LoopEvent::Propose {
                request: Bytes::from_static(b"request"),
                reply,
            });
            receivers.push(receiver);
        }
        self.round(events);
        receivers
    }

    fn elect(&mut self) {
        for _ in 0..40 {
            if self.drive.node().role() == Role::Leader {
                return;
            }
            self.round(vec![LoopEvent::Tick]);
        }
        assert_eq!(self.drive.node().role(), Role::Leader);
    }

    fn committed_unapplied(&self) -> u64 {
        let log = self.drive.node().log();
        log.committed() - log.applied()
    }
}

fn is_busy(receiver: &mut oneshot::Receiver<ProposeResult>) -> bool {
    matches!(receiver.try_recv(), Ok(Err(ProposeError::Busy)))
}

#[test]
fn proposals_are_refused_as_busy_while_too_many_committed_entries_wait_for_apply() {
    let mut harness = Harness::new();
    harness.elect();

    // Fill the gap up to exactly the limit: every batch is accepted.
    while harness.committed_unapplied() < MAX_COMMITTED_UNAPPLIED_ENTRIES {
        let room = MAX_COMMITTED_UNAPPLIED_ENTRIES - harness.committed_unapplied();
        let mut receivers = harness.propose(room.min(1_000) as usize);
        assert!(
            receivers.iter_mut().all(|r| r.try_recv().is_err()),
            "proposals within the limit wait for their apply, none is refused"
        );
    }
    assert_eq!(
        harness.committed_unapplied(),
        MAX_COMMITTED_UNAPPLIED_ENTRIES
    );
    // At the limit one more batch is still accepted (the rule is "more
    // than"), which takes the gap past it...
    let mut at_limit = harness.propose(1);
    assert!(at_limit[0].try_recv().is_err());
    assert!(harness.committed_unapplied() > MAX_COMMITTED_UNAPPLIED_ENTRIES);
    let last_before = harness.drive.node().log().last_index();

    // ...and from then on every proposal is refused, none reaches the log.
    let mut refused = harness.propose(3);
    assert!(refused.iter_mut().all(is_busy));
    assert_eq!(harness.drive.node().log().last_index(), last_before);

    // Once the apply side catches up, proposals are accepted again.
    let applied = harness.handed_to_apply;
    assert_eq!(applied, harness.drive.node().log().committed());
    harness.round(vec![LoopEvent::Applied(applied)]);
    assert_eq!(harness.committed_unapplied(), 0);
    let mut accepted = harness.propose(1);
    assert!(accepted[0].try_recv().is_err(), "waiting for its apply");
    assert_eq!(harness.drive.node().log().last_index(), last_before + 1);
    assert!(harness.storage.writes > 0);
}

/// With timings on, the leader times each proposal round from propose to
/// commit, once the round's last entry is committed, and never before.
#[test]
fn the_leader_times_each_proposal_round_from_propose_to_commit() {
    let timings = Arc::new(StageTimings::new());
    let mut harness = Harness::new();
    harness.drive = harness.drive.with_timings(timings.clone());
    harness.elect();
    let _ = timings.take_summary();

    // One round of three proposals, committed once persisted (one member).
    harness.propose(3);
    let summary = timings.take_summary().unwrap();
    assert!(summary.contains("propose->commit n=1 "), "{summary}");

    // A round the loop could not commit yet is not timed: a proposal
    // whose persistence has not been reported stays uncommitted.
    let (reply, _receiver) = oneshot::channel();
    let outcome = harness.drive.round(vec![LoopEvent::Propose {
        request: Bytes::from_static(b"request"),
        reply,
    }]);
    assert_eq!(outcome, RoundOutcome::Continue);
    assert_eq!(timings.take_summary(), None);
}
