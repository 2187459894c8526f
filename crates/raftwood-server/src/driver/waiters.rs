//! Proposals waiting for their entry to be applied.
//!
//! A proposal this member appended as leader waits by log index and term.
//! A proposal this member forwarded to the leader (a
//! `MessageBody::ProposeRequest`) has no index yet, so it waits by its
//! request id (`InternalRequest.id`, see `request_id.rs`): whichever member
//! applies an entry looks its id up, and the waiter gets the outcome if the
//! entry carries exactly the bytes it proposed.
//!
//! The drive loop registers a waiter right after the core takes the
//! proposal, before it takes the effects that could send or commit it, so
//! the apply thread always finds the waiter of an entry it applies.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use raftwood_kv::ApplyOutcome;
use raftwood_raft::{Index, Term};
use tokio::sync::oneshot;

use crate::request_id::request_id_of;

/// Why a proposal has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This member does not lead; `leader` does, if known.
    #[error("not the leader")]
    NotLeader {
        /// The leader, if known.
        leader: Option<u64>,
    },
    /// The entry was overwritten by a new leader's log, or (forwarded) a
    /// later term's entry was applied first: it was never committed and
    /// never will be.
    #[error("leader changed")]
    LeaderChanged,
    /// Too many bytes are waiting to commit, or a leadership transfer is
    /// under way; retry.
    #[error("too many requests")]
    Busy,
    /// A proposal forwarded to the leader was not seen applied in time, or
    /// a snapshot replaced the entries it could be among. Its fate is
    /// unknown: it may still be applied (etcd's "request timed out,
    /// possibly due to previous leader failure").
    #[error("forwarded proposal timed out")]
    ForwardTimedOut,
    /// The member is shutting down.
    #[error("stopped")]
    Stopped,
    /// The leader refused a membership change (see `driver/membership.rs`).
    #[error("membership change refused: {0}")]
    Membership(#[from] MembershipRefusal),
}

/// Why a membership change was refused, in etcd's terms: by the Cluster
/// service on what the registry says, or by the leader's drive loop on
/// what raft says. (An unknown member and taken peer URLs are the state
/// machine's refusals too: `EtcdError::MemberNotFound`, `PeerUrlExists`.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    /// No peer URL, or one that is not `http://host:port`.
    #[error("etcdserver: given member URLs are invalid")]
    InvalidUrls,
    /// A second learner (etcd allows one).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A promotion of a member that is not a learner.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// Adding or removing a voter would leave fewer started voters (ones
    /// that published their name) than a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// The change could leave the cluster without a quorum of members the
    /// leader hears from (etcd's strict reconfiguration check).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// A learner to promote is too far behind the leader's log.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Another membership change is still being applied.
    #[error("raftwood: another membership change is in progress; retry")]
    ChangePending,
    /// The raft core refused the change as it stands (an unknown member,
    /// a change it cannot make).
    #[error("raftwood: membership change refused: {0}")]
    Invalid(String),
}

/// The result a proposer receives.
pub type ProposeResult = Result<ApplyOutcome, ProposeError>;

struct Waiter {
    term: Term,
    reply: oneshot::Sender<ProposeResult>,
}

/// A proposal forwarded to the leader of `term`.
struct ForwardedWaiter {
    /// The term it was forwarded in: a leader appends it in that term or
    /// never (the raft core's `Proposal::Forwarded`).
    term: Term,
    /// The encoded request, compared with the entry's bytes.
    request: Bytes,
    reply: oneshot::Sender<ProposeResult>,
}

/// Waiters by index, and forwarded ones by request id.
#[derive(Default)]
pub struct Waiters {
    by_index: HashMap<Index, Waiter>,
    forwarded: HashMap<u64, ForwardedWaiter>,
    /// Forwarded waiters by deadline (drive-loop ticks), oldest first.
    /// Invariant: deadlines never decrease along the queue; an id here may
    /// have been answered already (then it is skipped).
    deadlines: VecDeque<(u64, u64)>,
    /// The highest term of an entry applied so far.
    applied_term: Term,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("by_index", &self.by_index.len())
            .field("forwarded", &self.forwarded.len())
            .finish()
    }
}

impl Waiters {
    /// The invariants of the forwarded waiters, checked with debug
    /// assertions when a tick or a new applied term changes them (a walk
    /// of them: not per entry).
    fn check_invariants(&self) {
        assert!(
            !self.forwarded.contains_key(&0),
            "id 0 is \"no id\" and never waits"
        );
        // A forwarded waiter of a term below an applied entry's was failed
        // when that entry was applied (`fail_forwarded_before`); one
        // registered later was forwarded in a term at least as high.
        assert!(
            self.forwarded.values().all(|w| w.term >= self.applied_term),
            "a forwarded waiter of a term before the applied term {}",
            self.applied_term
        );
        assert!(
            self.deadlines
                .iter()
                .zip(self.deadlines.iter().skip(1))
                .all(|(before, after)| before.0 <= after.0),
            "deadlines out of order"
        );
        // Every forwarded waiter can time out.
        let queued: std::collections::HashSet<u64> =
            self.deadlines.iter().map(|&(_, id)| id).collect();
        assert!(
            self.forwarded.keys().all(|id| queued.contains(id)),
            "a forwarded waiter without a deadline"
        );
    }

    /// Registers the proposer of the entry at `index` proposed in `term`.
    pub fn register(&mut self, index: Index, term: Term, reply: oneshot::Sender<ProposeResult>) {
        assert!(
            index > 0 && term > 0,
            "no entry at index {index}, term {term}"
        );
        self.by_index.insert(index, Waiter { term, reply });
    }

    /// Registers the proposer of `request` (whose id is `id`), forwarded to
    /// the leader of `term`; unanswered at tick `deadline_tick`, it fails
    /// with [`ProposeError::ForwardTimedOut`]. An id already waiting is
    /// refused (the reply gets `Busy`): ids are unique per member, so only
    /// a caller's mistake can repeat one.
    pub fn register_forwarded(
        &mut self,
        id: u64,
        term: Term,
        request: Bytes,
        reply: oneshot::Sender<ProposeResult>,
        deadline_tick: u64,
    ) {
        if id == 0 || self.forwarded.contains_key(&id) {
            let _ = reply.send(Err(ProposeError::Busy));
            return;
        }
        // Forwarded to a known leader, whose term is at least 1.
        assert!(term > 0, "proposal {id} forwarded in term 0");
        debug_assert!(
            self.deadlines
                .back()
                .is_none_or(|&(last, _)| last <= deadline_tick),
            "deadlines are registered in order"
        );
        self.forwarded.insert(
            id,
            ForwardedWaiter {
                term,
                request,
                reply,
            },
        );
        self.deadlines.push_back((deadline_tick, id));
    }

    /// Number of forwarded proposals waiting.
    pub fn forwarded_count(&self) -> usize {
        self.forwarded.len()
    }

    /// The entry at `index` was applied with `term` and carried `command`
    /// (`None` for an entry without one): its proposer (if any) gets the
    /// outcome if the entry is the one it proposed, or learns that its
    /// proposal was lost.
    pub fn complete(
        &mut self,
        index: Index,
        term: Term,
        command: Option<&[u8]>,
        outcome: impl FnOnce() -> ApplyOutcome,
    ) {
        // Entries are applied in log order, and terms never decrease along
        // the log (a snapshot installed in between covers a prefix of the
        // same history).
        debug_assert!(
            term >= self.applied_term,
            "entry {index} of term {term} applied after one of term {}",
            self.applied_term
        );
        if term > self.applied_term {
            self.applied_term = term;
            self.fail_forwarded_before(term);
            if cfg!(debug_assertions) {
                self.check_invariants();
            }
        }
        if let Some(waiter) = self.by_index.remove(&index) {
            if waiter.term == term {
                let _ = waiter.reply.send(Ok(outcome()));
                return;
            }
            let _ = waiter.reply.send(Err(ProposeError::LeaderChanged));
        }
        if self.forwarded.is_empty() {
            return;
        }
        let Some(command) = command else {
            return;
        };
        let Some(id) = request_id_of(command) else {
            return;
        };
        let is_ours = self
            .forwarded
            .get(&id)
            .is_some_and(|w| w.term == term && w.request.as_ref() == command);
        if is_ours && let Some(waiter) = self.forwarded.remove(&id) {
            let _ = waiter.reply.send(Ok(outcome()));
        }
    }

    /// An entry of `term` was applied: every proposal forwarded in an
    /// earlier term and not applied yet never will be. It could only be
    /// appended in its own term, terms never decrease along the log, and
    /// entries are applied in log order — so it would have come first.
    /// Failing it is therefore never a false "failed".
    fn fail_forwarded_before(&mut self, term: Term) {
        for (_, waiter) in self.forwarded.extract_if(|_, waiter| waiter.term < term) {
            let _ = waiter.reply.send(Err(ProposeError::LeaderChanged));
        }
    }

    /// Drive-loop time reached `now_tick`: forwarded proposals past their
    /// deadline fail with [`ProposeError::ForwardTimedOut`] (their entry
    /// was dropped by a deposed leader or a busy one, or is merely slow:
    /// the client cannot tell, nor can we).
    pub fn expire_forwarded(&mut self, now_tick: u64) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now_tick {
                break;
            }
            self.deadlines.pop_front();
            if let Some(waiter) = self.forwarded.remove(&id) {
                let _ = waiter.reply.send(Err(ProposeError::ForwardTimedOut));
            }
        }
        if self.forwarded.is_empty() {
            self.deadlines.clear();
        }
        debug_assert!(
            self.deadlines
                .front()
                .is_none_or(|&(deadline, _)| deadline > now_tick),
            "a deadline at or before tick {now_tick} left waiting"
        );
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// A snapshot replaced the state machine: forwarded proposals among
    /// the entries it covers will never be seen applied one by one, and
    /// which ones those are is unknown, so every forwarded waiter fails
    /// with the indeterminate [`ProposeError::ForwardTimedOut`] (never
    /// `LeaderChanged`, which would be false for one the snapshot holds).
    pub fn snapshot_installed(&mut self) {
        for (_, waiter) in self.forwarded.drain() {
            let _ = waiter.reply.send(Err(ProposeError::ForwardTimedOut));
        }
        self.deadlines.clear();
    }

    /// Every waiter learns the member stopped.
    pub fn stop(&mut self) {
        for (_, waiter) in self.by_index.drain() {
            let _ = waiter.reply.send(Err(ProposeError::Stopped));
        }
        for (_, waiter) in self.forwarded.drain() {
            let _ = waiter.reply.send(Err(ProposeError::Stopped));
        }
        self.deadlines.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use prost::Message as _;
    use raftwood_kv::ApplyResponse;

    use super::*;
    use crate::proto::etcdserverpb::{PutRequest, PutResponse};
    use crate::proto::raftwoodpb::{InternalRequest, internal_request};

    fn request(id: u64, key: &str) -> Bytes {
        Bytes::from(
            InternalRequest {
                id,
                request: Some(internal_request::Request::Put(PutRequest {
                    key: key.as_bytes().to_vec(),
                    ..PutRequest::default()
                })),
            }
            .encode_to_vec(),
        )
    }

    fn put_outcome(revision: i64) -> ApplyOutcome {
        Ok(ApplyResponse::Put(PutResponse {
            header: Some(crate::proto::etcdserverpb::ResponseHeader {
                revision,
                ..Default::default()
            }),
            prev_kv: None,
        }))
    }

    fn forwarded(
        waiters: &mut Waiters,
        id: u64,
        term: Term,
        key: &str,
        deadline: u64,
    ) -> oneshot::Receiver<ProposeResult> {
        let (reply, receiver) = oneshot::channel();
        waiters.register_forwarded(id, term, request(id, key), reply, deadline);
        receiver
    }

    fn revision_of(result: ProposeResult) -> i64 {
        match result {
            Ok(Ok(ApplyResponse::Put(put))) => put.header.unwrap().revision,
            other => panic!("expected a put's outcome, got {other:?}"),
        }
    }

    #[test]
    fn a_forwarded_proposal_is_answered_by_the_entry_carrying_its_bytes() {
        let mut waiters = Waiters::default();
        let mut mine = forwarded(&mut waiters, 7, 3, "k", 100);
        // Another request with the same id (a collision) does not answer.
        let other = request(7, "other");
        waiters.complete(10, 3, Some(&other), || put_outcome(1));
        assert!(mine.try_recv().is_err(), "not answered by another request");
        let bytes = request(7, "k");
        waiters.complete(11, 3, Some(&bytes), || put_outcome(5));
        assert_eq!(revision_of(mine.try_recv().unwrap()), 5);
        assert_eq!(waiters.forwarded_count(), 0);
    }

    #[test]
    fn an_entry_of_a_later_term_fails_earlier_forwarded_proposals_only() {
        let mut waiters = Waiters::default();
        let mut old = forwarded(&mut waiters, 1, 3, "a", 100);
        let mut current = forwarded(&mut waiters, 2, 4, "b", 100);
        // An entry of term 3 that is not theirs fails nobody.
        waiters.complete(5, 3, None, || put_outcome(0));
        assert!(old.try_recv().is_err());
        assert!(current.try_recv().is_err());
        // Term 4's first entry: term 3's proposal could only have been
        // appended in term 3, before it, so it never will be.
        waiters.complete(6, 4, None, || put_outcome(0));
        assert_eq!(old.try_recv().unwrap(), Err(ProposeError::LeaderChanged));
        assert!(current.try_recv().is_err(), "term 4's may still come");
        waiters.complete(7, 5, None, || put_outcome(0));
        assert_eq!(
            current.try_recv().unwrap(),
            Err(ProposeError::LeaderChanged)
        );
    }

    #[test]
    fn an_entry_of_the_forwarded_term_applied_first_keeps_the_waiter() {
        let mut waiters = Waiters::default();
        let mut mine = forwarded(&mut waiters, 1, 4, "a", 100);
        waiters.complete(6, 4, Some(&request(9, "x")), || put_outcome(0));
        assert!(mine.try_recv().is_err());
        waiters.complete(7, 4, Some(&request(1, "a")), || put_outcome(3));
        assert_eq!(revision_of(mine.try_recv().unwrap()), 3);
    }

    #[test]
    fn forwarded_proposals_time_out_at_their_deadline() {
        let mut waiters = Waiters::default();
        let mut first = forwarded(&mut waiters, 1, 2, "a", 10);
        let mut second = forwarded(&mut waiters, 2, 2, "b", 12);
        waiters.expire_forwarded(9);
        assert!(first.try_recv().is_err());
        waiters.expire_forwarded(10);
        assert_eq!(
            first.try_recv().unwrap(),
            Err(ProposeError::ForwardTimedOut)
        );
        assert!(second.try_recv().is_err());
        waiters.complete(3, 2, Some(&request(2, "b")), || put_outcome(8));
        assert_eq!(revision_of(second.try_recv().unwrap()), 8);
        waiters.expire_forwarded(100);
        assert_eq!(waiters.forwarded_count(), 0);
    }

    #[test]
    fn a_snapshot_fails_forwarded_proposals_as_unknown_not_as_lost() {
        let mut waiters = Waiters::default();
        let mut mine = forwarded(&mut waiters, 1, 2, "a", 10);
        waiters.snapshot_installed();
        assert_eq!(mine.try_recv().unwrap(), Err(ProposeError::ForwardTimedOut));
    }

    #[test]
    fn an_index_waiter_and_a_forwarded_waiter_are_told_apart() {
        let mut waiters = Waiters::default();
        // This member proposed at index 4 in term 5 as leader, and before
        // that forwarded request 1 in term 4; the entry at 4 turns out to
        // be the forwarded one (term 4), appended by the previous leader.
        let (reply, mut local) = oneshot::channel();
        waiters.register(4, 5, reply);
        let mut mine = forwarded(&mut waiters, 1, 4, "a", 10);
        waiters.complete(4, 4, Some(&request(1, "a")), || put_outcome(2));
        assert_eq!(local.try_recv().unwrap(), Err(ProposeError::LeaderChanged));
        assert_eq!(revision_of(mine.try_recv().unwrap()), 2);
    }
}
