//! The safety properties of Raft (paper Figure 3), checked incrementally
//! after every simulation step, plus the client-visible one: no
//! acknowledged write missing from the committed log.
//!
//! Every entry a member ever holds passes through a persist request, so the
//! checker sees every entry when it is handed out and records, for each
//! (index, term), its payload and the term before it: two members agreeing
//! on (index, term) must agree on both, which by induction is log matching.
//! Committed entries are recorded as commit indexes advance; they may never
//! change, a new leader must hold all of them (leader completeness), every
//! member applies exactly them (state machine safety), and every write a
//! client was told succeeded must be one of them.

use std::collections::BTreeMap;

use raftwood_raft::{Entry, EntryPayload, Index, NodeId, PersistRequest, RaftNode, Role, Term};

use crate::etcd;

/// Watermarks of one member since it last started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watermark {
    incarnation: u64,
    term: Term,
    commit: Index,
    applied: Index,
    role: Role,
}

/// What the checker remembers across steps.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// (index, term) → (payload, term of the entry before it).
    entries: BTreeMap<(Index, Term), (EntryPayload, Term)>,
    /// Index → committed entry (term, payload, and the term of the member
    /// that first saw it committed: an upper bound of the term it was
    /// committed in).
    committed: BTreeMap<Index, (Term, EntryPayload, Term)>,
    watermarks: BTreeMap<NodeId, Watermark>,
    /// Client writes acknowledged: index → term.
    acknowledged: BTreeMap<Index, Term>,
    /// Request id of every applied command → the index it was applied at.
    applied_requests: BTreeMap<u64, Index>,
    violations: Vec<String>,
}

impl SafetyChecker {
    /// A checker that has seen nothing.
    pub fn new() -> SafetyChecker {
        SafetyChecker::default()
    }

    /// Violations found so far (never expected).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The entries known committed, by index.
    pub fn committed_len(&self) -> usize {
        self.committed.len()
    }

    /// The highest index known committed.
    pub fn max_committed(&self) -> Index {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// Number of acknowledged client writes.
    pub fn acknowledged_len(&self) -> usize {
        self.acknowledged.len()
    }

    fn violation(&mut self, text: String) {
        if self.violations.len() < 32 && !self.violations.contains(&text) {
            self.violations.push(text);
        }
    }

    /// A member handed out a persist request: check its entries against
    /// every other copy of the same (index, term).
    pub fn observe_persist(&mut self, id: NodeId, raft: &RaftNode, request: &PersistRequest) {
        let mut previous_term = None;
        for entry in &request.entries {
            let before = match previous_term {
                Some(term) => term,
                None => {
                    let log = raft.log();
                    match log.term(entry.index - 1) {
                        Ok(term) => term,
                        Err(_) => match &request.snapshot {
                            Some(s) if s.index == entry.index - 1 => s.term,
                            _ => log.snapshot().term,
                        },
                    }
                }
            };
            previous_term = Some(entry.term);
            let key = (entry.index, entry.term);
            match self.entries.get(&key) {
                Some((payload, prior)) => {
                    if *payload != entry.payload || *prior != before {
                        self.violation(format!(
                            "log matching: member {id} holds entry {}/{} with a different payload or predecessor term ({before} vs {prior})",
                            entry.term, entry.index
                        ));
                    }
                }
                None => {
                    self.entries.insert(key, (entry.payload.clone(), before));
                }
            }
        }
    }

    /// Checks a member after a step: one leader per term, monotonic term,
    /// commit and applied indexes, newly committed entries never differing
    /// from what was committed before, and, for a new leader, leader
    /// completeness.
    pub fn observe_member(&mut self, id: NodeId, incarnation: u64, raft: &RaftNode) {
        let log = raft.log();
        let now = Watermark {
            incarnation,
            term: raft.term(),
            commit: log.committed(),
            applied: log.applied(),
            role: raft.role(),
        };
        let before = self.watermarks.insert(id, now);
        let mut newly_leader = now.role == Role::Leader;
        let mut commit_from = log.snapshot().index;
        if let Some(before) = before
            && before.incarnation == incarnation
        {
            if now.term < before.term || now.commit < before.commit || now.applied < before.applied
            {
                self.violation(format!(
                    "member {id}: (term, commit, applied) went back from ({}, {}, {}) to ({}, {}, {})",
                    before.term,
                    before.commit,
                    before.applied,
                    now.term,
                    now.commit,
                    now.applied
                ));
            }
            newly_leader = now.role == Role::Leader
                && (before.role != Role::Leader || before.term != now.term);
            commit_from = before.commit.max(log.snapshot().index);
        }
        if now.role == Role::Leader {
            let leader = *self.leaders_by_term.entry(now.term).or_insert(id);
            if leader != id {
                self.violation(format!(
                    "election safety: two leaders in term {}: {leader} and {id}",
                    now.term
                ));
            }
        }
        for index in commit_from + 1..=now.commit {
            if let Some(entry) = log.entry(index) {
                self.observe_committed(id, now.term, entry);
            }
        }
        if newly_leader {
            self.check_leader_completeness(id, raft);
        }
    }

    fn observe_committed(&mut self, id: NodeId, observer_term: Term, entry: &Entry) {
        match self.committed.get(&entry.index) {
            Some((term, payload, _)) => {
                if *term != entry.term || *payload != entry.payload {
                    self.violation(format!(
                        "committed entry changed: index {} was committed with term {term}, member {id} committed term {}",
                        entry.index, entry.term
                    ));
                }
            }
            None => {
                if let Some(&acked) = self.acknowledged.get(&entry.index)
                    && acked != entry.term
                {
                    self.violation(format!(
                        "acknowledged write lost: index {} was acknowledged at term {acked}, member {id} committed term {}",
                        entry.index, entry.term
                    ));
                }
                self.committed.insert(
                    entry.index,
                    (entry.term, entry.payload.clone(), observer_term),
                );
            }
        }
    }

    fn check_leader_completeness(&mut self, id: NodeId, raft: &RaftNode) {
        let log = raft.log();
        let snapshot = log.snapshot().clone();
        let mut missing = None;
        let leader_term = raft.term();
        for (&index, (term, _, seen_in)) in self.committed.range(snapshot.index..) {
            // Leader completeness covers entries committed in earlier
            // terms; one first seen committed in this term or later may
            // have been committed after this leader was elected.
            if *seen_in >= leader_term {
                continue;
            }
            let held = if index == snapshot.index {
                snapshot.term
            } else {
                log.term(index).unwrap_or_default()
            };
            if held != *term {
                missing = Some((index, *term, held));
                break;
            }
        }
        if let Some((index, term, held)) = missing {
            self.violation(format!(
                "leader completeness: member {id} leads term {} without committed entry {term}/{index} (holds term {held} there)",
                raft.term()
            ));
        }
    }

    /// A member applied `entry` to its state machine.
    pub fn observe_apply(&mut self, id: NodeId, member_term: Term, entry: &Entry) {
        match self.committed.get(&entry.index) {
            Some((term, payload, _)) => {
                if *term != entry.term || *payload != entry.payload {
                    self.violation(format!(
                        "state machine safety: member {id} applied {}/{} but {term}/{} was committed",
                        entry.term, entry.index, entry.index
                    ));
                }
            }
            None => self.observe_committed(id, member_term, entry),
        }
        if let EntryPayload::Command(bytes) = &entry.payload
            && let Some(request_id) = etcd::request_id(bytes)
        {
            let at = *self
                .applied_requests
                .entry(request_id)
                .or_insert(entry.index);
            if at != entry.index {
                self.violation(format!(
                    "duplicated command: request {} applied at index {at} and at index {}",
                    request_id, entry.index
                ));
            }
        }
    }

    /// A client was told its write succeeded at (index, term).
    pub fn observe_acknowledged(&mut self, index: Index, term: Term) {
        self.acknowledged.insert(index, term);
        match self.committed.get(&index) {
            Some((committed, _, _)) if *committed != term => self.violation(format!(
                "acknowledged write lost: index {index} acknowledged at term {term}, committed at term {committed}"
            )),
            Some(_) => {}
            None => self.violation(format!(
                "write acknowledged at {term}/{index} before any member committed it"
            )),
        }
    }

    /// At the end: every acknowledged write is in the committed log, and
    /// every member that still holds the index holds that entry.
    pub fn check_acknowledged_in(&mut self, id: NodeId, raft: &RaftNode) {
        let log = raft.log();
        let mut wrong = None;
        for (&index, &term) in &self.acknowledged {
            if index > log.committed() {
                wrong = Some(format!(
                    "acknowledged write {term}/{index} is past member {id}'s commit index {} after convergence",
                    log.committed()
                ));
                break;
            }
            if let Ok(held) = log.term(index)
                && held != term
            {
                wrong = Some(format!(
                    "acknowledged write lost: member {id} holds term {held} at index {index}, acknowledged at term {term}"
                ));
                break;
            }
        }
        if let Some(text) = wrong {
            self.violation(text);
        }
    }
}
