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
    ConfState, Config, Index, InitialState, Message, MessageBody, PersistRequest, RaftNode, Role,
    SnapshotMeta,
};
use raftwood_server::driver::{
    ApplyWork, DriveLoop, ForwardSettings, LogStorage, LoopEvent, LoopOutputs,
    MAX_COMMITTED_UNAPPLIED_ENTRIES, MessageSink, PersistBatcher, PersistWork, ProposeError,
    ProposeResult, RaftStatus, RoundOutcome, Waiters,
};
use raftwood_server::timings::StageTimings;
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
    /// The status the loop publishes.
    status: watch::Receiver<RaftStatus>,
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
        let (status, status_rx) = watch::channel(RaftStatus::default());
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
            status: status_rx,
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
                id: 0,
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
        id: 0,
        request: Bytes::from_static(b"request"),
        reply,
    }]);
    assert_eq!(outcome, RoundOutcome::Continue);
    assert_eq!(timings.take_summary(), None);
}

/// A network that keeps what it is given.
#[derive(Default)]
struct RecordingSink {
    sent: Mutex<Vec<Message>>,
}

impl MessageSink for RecordingSink {
    fn send(&self, messages: Vec<Message>) {
        self.sent.lock().extend(messages);
    }
    fn send_snapshot(&self, _message: Message) {
        panic!("no snapshot expected");
    }
}

/// Member 1 of three, whose loop forwards with batch ids from 500 and
/// times forwarded proposals out after 5 ticks.
fn follower_loop() -> (DriveLoop, Arc<RecordingSink>, Arc<Mutex<Waiters>>) {
    follower_loop_with(Config::new(1))
}

fn follower_loop_with(config: Config) -> (DriveLoop, Arc<RecordingSink>, Arc<Mutex<Waiters>>) {
    let node = RaftNode::new(
        config,
        InitialState::bootstrap(ConfState::with_voters([1, 2, 3])),
    )
    .unwrap();
    let (persist, _) = std_mpsc::channel();
    let (apply, _) = std_mpsc::channel();
    let (status, _) = watch::channel(RaftStatus::default());
    let network = Arc::new(RecordingSink::default());
    let waiters = Arc::new(Mutex::new(Waiters::default()));
    let drive = DriveLoop::new(
        node,
        LoopOutputs {
            network: network.clone(),
            persist,
            apply,
            waiters: waiters.clone(),
            status,
        },
        0,
    )
    .with_forwarding(ForwardSettings {
        first_batch_id: 500,
        timeout_ticks: 5,
    });
    (drive, network, waiters)
}

/// `InternalRequest { id }` with an empty request: all the loop and the
/// waiters look at.
fn request_with_id(id: u8) -> Bytes {
    Bytes::from(vec![0x08, id])
}

fn propose(id: u8) -> (LoopEvent, oneshot::Receiver<ProposeResult>) {
    let (reply, receiver) = oneshot::channel();
    let event = LoopEvent::Propose {
        id: u64::from(id),
        request: request_with_id(id),
        reply,
    };
    (event, receiver)
}

#[test]
fn a_follower_that_knows_no_leader_refuses_a_write_at_once() {
    let (mut drive, network, waiters) = follower_loop();
    let (event, mut receiver) = propose(7);
    drive.round(vec![event]);
    assert_eq!(
        receiver.try_recv().unwrap(),
        Err(ProposeError::NotLeader { leader: None })
    );
    assert!(network.sent.lock().is_empty());
    assert_eq!(waiters.lock().forwarded_count(), 0);
}

/// Member 2 leads term 2 (a heartbeat tells member 1).
fn learn_that_member_2_leads(drive: &mut DriveLoop, network: &RecordingSink) {
    drive.round(vec![LoopEvent::Messages(vec![Message {
        from: 2,
        to: 1,
        term: 2,
        body: MessageBody::Heartbeat {
            commit: 1,
            read_context: None,
        },
    }])]);
    assert_eq!(drive.node().leader(), Some(2));
    network.sent.lock().clear();
}

#[test]
fn a_follower_splits_a_large_round_into_messages_under_the_size_limit() {
    let (mut drive, network, waiters) = follower_loop_with(Config {
        max_message_bytes: 4,
        ..Config::new(1)
    });
    learn_that_member_2_leads(&mut drive, &network);
    let (events, _replies): (Vec<_>, Vec<_>) = [1, 2, 3].map(propose).into_iter().unzip();
    drive.round(events);
    let batches: Vec<(u64, usize)> = network
        .sent
        .lock()
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::ProposeRequest { batch_id, commands } => Some((*batch_id, commands.len())),
            _ => None,
        })
        .collect();
    // Two-byte requests, four bytes per message: 2 + 1, each its own id.
    assert_eq!(batches, vec![(500, 2), (501, 1)]);
    assert_eq!(waiters.lock().forwarded_count(), 3);
}

#[test]
fn a_follower_forwards_writes_to_the_leader_in_raft_and_times_them_out() {
    let (mut drive, network, waiters) = follower_loop();
    learn_that_member_2_leads(&mut drive, &network);

    let (first, mut first_reply) = propose(7);
    let (second, mut second_reply) = propose(8);
    drive.round(vec![first, second]);
    let sent = std::mem::take(&mut *network.sent.lock());
    let forwarded: Vec<&Message> = sent
        .iter()
        .filter(|m| matches!(m.body, MessageBody::ProposeRequest { .. }))
        .collect();
    assert_eq!(forwarded.len(), 1, "one message for the round: {sent:?}");
    assert_eq!((forwarded[0].to, forwarded[0].term), (2, 2));
    match &forwarded[0].body {
        MessageBody::ProposeRequest { batch_id, commands } => {
            assert_eq!(*batch_id, 500);
            assert_eq!(commands, &vec![request_with_id(7), request_with_id(8)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(waiters.lock().forwarded_count(), 2);
    assert!(first_reply.try_recv().is_err(), "waiting for its apply");

    // The next round's batch takes the next id.
    let (third, mut third_reply) = propose(9);
    drive.round(vec![LoopEvent::Tick, third]);
    let sent = std::mem::take(&mut *network.sent.lock());
    assert!(
        sent.iter()
            .any(|m| matches!(m.body, MessageBody::ProposeRequest { batch_id: 501, .. }))
    );

    // Never applied: after 5 ticks the first two fail, the third (sent a
    // tick later) one tick after them.
    for _ in 0..4 {
        drive.round(vec![LoopEvent::Tick]);
    }
    assert_eq!(
        first_reply.try_recv().unwrap(),
        Err(ProposeError::ForwardTimedOut)
    );
    assert_eq!(
        second_reply.try_recv().unwrap(),
        Err(ProposeError::ForwardTimedOut)
    );
    assert!(third_reply.try_recv().is_err());
    drive.round(vec![LoopEvent::Tick]);
    assert_eq!(
        third_reply.try_recv().unwrap(),
        Err(ProposeError::ForwardTimedOut)
    );
    assert_eq!(waiters.lock().forwarded_count(), 0);
}

#[test]
fn the_status_wakes_receivers_for_a_new_leader_but_not_for_each_commit() {
    let mut harness = Harness::new();
    harness.elect();
    assert!(harness.status.has_changed().unwrap(), "a new leader wakes");
    let elected = *harness.status.borrow_and_update();
    assert!(elected.is_leader);

    let _replies = harness.propose(3);
    // The commit index moved and can be read, but nobody was woken for it.
    assert!(!harness.status.has_changed().unwrap());
    let now = *harness.status.borrow();
    assert!(now.commit > elected.commit, "{now:?} vs {elected:?}");
    assert_eq!(now.term, elected.term);
}
