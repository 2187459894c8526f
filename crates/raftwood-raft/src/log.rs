//! The replicated log as one member holds it (paper §5.3): the point of the
//! last snapshot, the entries after it, and three cursors — committed,
//! persisted and applied.
//!
//! The core keeps every entry since the last compaction in memory (as etcd's
//! `MemoryStorage` does); the caller writes them to disk when asked and gives
//! them back at start-up. That keeps the core free of any storage seam: it
//! never reads the disk, so it can never block or fail on it.

use std::collections::VecDeque;

use crate::entry::Entry;
use crate::ids::{Index, Term};
use crate::snapshot::SnapshotMeta;

/// The log of one member.
#[derive(Debug, Clone)]
pub struct RaftLog {
    /// What the log starts after: every entry up to `snapshot.index` is
    /// compacted into it.
    snapshot: SnapshotMeta,
    /// Invariant: `entries[i].index == snapshot.index + 1 + i`, and terms
    /// never decrease along the log.
    entries: VecDeque<Entry>,
    /// Highest index known committed. Invariant:
    /// `snapshot.index <= committed <= last_index()`.
    committed: Index,
    /// Highest index whose entry (with its current term) the caller has
    /// reported durable. Invariant: `persisted <= last_index()`.
    persisted: Index,
    /// Highest index already handed to the caller to persist. Invariant:
    /// `persisted <= handed_to_persist <= last_index()`.
    handed_to_persist: Index,
    /// Highest index handed to the caller to apply. Invariant:
    /// `applied <= applying <= min(committed, persisted)`, except right after
    /// a snapshot is installed, when both equal the snapshot's index.
    applying: Index,
    /// Highest index the caller reported applied.
    applied: Index,
    /// A snapshot received from the leader that replaces the log and is not
    /// yet handed to the caller to persist.
    pending_snapshot: Option<SnapshotMeta>,
}

/// A log position the caller asked for that is no longer (or not yet) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Compacted into the snapshot.
    Compacted,
    /// Past the last entry.
    Beyond,
}

impl RaftLog {
    /// The invariants documented on the fields. The cursor order is
    /// checked always (a few comparisons); the shape of every entry only
    /// with debug assertions (a walk of the log). A broken one is a bug in
    /// this type or its caller, never something input can cause.
    pub fn check_invariants(&self) {
        let last = self.last_index();
        assert!(
            self.snapshot.index <= self.committed && self.committed <= last,
            "log: committed {} outside [snapshot {}, last {last}]",
            self.committed,
            self.snapshot.index
        );
        assert!(
            self.persisted <= self.handed_to_persist && self.handed_to_persist <= last,
            "log: persisted {} <= handed {} <= last {last} broken",
            self.persisted,
            self.handed_to_persist
        );
        assert!(
            self.applied <= self.applying,
            "log: applied {} past applying {}",
            self.applied,
            self.applying
        );
        assert!(
            self.applying <= self.committed.max(self.snapshot.index),
            "log: applying {} past committed {}",
            self.applying,
            self.committed
        );
        assert!(
            self.applying <= self.persisted.max(self.snapshot.index),
            "log: applying {} past persisted {}",
            self.applying,
            self.persisted
        );
        // Compaction needs the entries applied and durable; an installed
        // snapshot moves both cursors to its index.
        assert!(
            self.snapshot.index <= self.applied && self.snapshot.index <= self.handed_to_persist,
            "log: snapshot {} past applied {} or handed {}",
            self.snapshot.index,
            self.applied,
            self.handed_to_persist
        );
        assert!(
            self.pending_snapshot
                .as_ref()
                .is_none_or(|pending| *pending == self.snapshot),
            "log: the snapshot to persist is not the one the log starts after"
        );
        if let Some(first) = self.entries.front() {
            assert_eq!(first.index, self.snapshot.index + 1, "log: first entry");
            assert!(
                first.term >= self.snapshot.term,
                "log: a term below the snapshot's"
            );
        }
        #[cfg(debug_assertions)]
        for (offset, pair) in self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .enumerate()
        {
            let (before, after) = pair;
            debug_assert_eq!(
                after.index,
                before.index + 1,
                "log: hole after offset {offset}"
            );
            debug_assert!(
                after.term >= before.term,
                "log: term decreases at {}",
                after.index
            );
        }
    }

    /// A log that starts after `snapshot` and holds `entries` (all durable:
    /// this is how a member restarts). `entries` must follow the snapshot
    /// without gaps; the caller checks that with [`RaftLog::check_entries`].
    pub fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        committed: Index,
        applied: Index,
    ) -> RaftLog {
        let mut log = RaftLog {
            committed: snapshot.index,
            persisted: snapshot.index,
            handed_to_persist: snapshot.index,
            applying: snapshot.index,
            applied: snapshot.index,
            snapshot,
            entries: entries.into(),
            pending_snapshot: None,
        };
        log.persisted = log.last_index();
        log.handed_to_persist = log.last_index();
        log.committed = committed.clamp(log.snapshot.index, log.last_index());
        log.applied = applied.clamp(log.snapshot.index, log.committed);
        log.applying = log.applied;
        log
    }

    /// Checks that `entries` can follow `snapshot`: consecutive indexes from
    /// `snapshot.index + 1`, terms not decreasing and not below the
    /// snapshot's term.
    pub fn check_entries(snapshot: &SnapshotMeta, entries: &[Entry]) -> Result<(), String> {
        let mut previous_term = snapshot.term;
        for (expected_index, entry) in (snapshot.index + 1..).zip(entries) {
            if entry.index != expected_index {
                return Err(format!(
                    "entry index {} where {expected_index} was expected",
                    entry.index
                ));
            }
            if entry.term < previous_term {
                return Err(format!(
                    "entry {} has term {} below the previous term {previous_term}",
                    entry.index, entry.term
                ));
            }
            previous_term = entry.term;
        }
        Ok(())
    }

    /// The snapshot the log starts after.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Index of the first entry still held (may be `last_index() + 1` when
    /// the log is empty after its snapshot).
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// Index of the last entry (or of the snapshot, if no entry follows it).
    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as u64
    }

    /// Term of the last entry (or of the snapshot).
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    /// Highest committed index.
    pub fn committed(&self) -> Index {
        self.committed
    }

    /// Highest index reported durable.
    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// Highest index reported applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Highest index handed out to apply.
    pub fn applying(&self) -> Index {
        self.applying
    }

    /// The term of the entry at `index`.
    pub fn term(&self, index: Index) -> Result<Term, Unavailable> {
        if index == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if index < self.snapshot.index {
            return Err(Unavailable::Compacted);
        }
        self.entry(index).map(|e| e.term).ok_or(Unavailable::Beyond)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether the entry at `index` has term `term` (the consistency check of
    /// AppendEntries, paper §5.3).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Ok(term)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (paper §5.4.1, the election restriction).
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[low, high)`, at most `max_count` of them and at most
    /// `max_bytes` of payload (but always at least one if any is asked for).
    pub fn slice(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
        max_count: usize,
    ) -> Result<Vec<Entry>, Unavailable> {
        if low < self.first_index() {
            return Err(Unavailable::Compacted);
        }
        if high > self.last_index() + 1 {
            return Err(Unavailable::Beyond);
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for index in low..high {
            let Some(entry) = self.entry(index) else {
                break;
            };
            bytes += entry.payload_size_bytes();
            if !out.is_empty() && (bytes > max_bytes || out.len() >= max_count) {
                break;
            }
            out.push(entry.clone());
        }
        debug_assert!(
            low >= high || out.first().is_some_and(|e| e.index == low),
            "slice {low}..{high} starts elsewhere"
        );
        Ok(out)
    }

    /// Appends entries created by this member as leader.
    pub fn append_as_leader(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            assert_eq!(
                entry.index,
                self.last_index() + 1,
                "leader entries are consecutive"
            );
            assert!(
                entry.term >= self.last_term(),
                "terms never decrease along the log"
            );
            self.entries.push_back(entry);
        }
    }

    /// The first of `entries` that is not already in the log with the same
    /// term, or `None` when all of them are (paper §5.3: "if an existing
    /// entry conflicts with a new one ... delete the existing entry and all
    /// that follow it"; entries that match are kept — truncating them would
    /// lose entries another message already appended).
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<usize> {
        entries.iter().position(|e| !self.matches(e.index, e.term))
    }

    /// Appends `entries`, which follow (`prev_index`, `prev_term`), as a
    /// follower. Returns the index of the last entry now known to match the
    /// leader's log, or `None` if the consistency check failed.
    ///
    /// A conflict at or below the commit index means the sender contradicts
    /// the committed log; that is refused with `Err`, never applied.
    pub fn append_as_follower(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<Option<Index>, Index> {
        if !self.matches(prev_index, prev_term) {
            return Ok(None);
        }
        let last_new = prev_index + entries.len() as u64;
        if let Some(position) = self.find_conflict(entries) {
            let first_conflict = entries[position].index;
            if first_conflict <= self.committed {
                return Err(first_conflict);
            }
            self.truncate_after(first_conflict - 1);
            for entry in &entries[position..] {
                debug_assert_eq!(entry.index, self.last_index() + 1);
                self.entries.push_back(entry.clone());
            }
        }
        Ok(Some(last_new))
    }

    /// Drops every entry after `index` (a conflict was found).
    fn truncate_after(&mut self, index: Index) {
        assert!(
            index >= self.committed,
            "committed entries are never truncated"
        );
        let keep = usize::try_from(index - self.snapshot.index).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(index);
        self.handed_to_persist = self.handed_to_persist.min(index);
    }

    /// Raises the commit index (it never goes down).
    pub fn commit_to(&mut self, index: Index) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit index {index} past the last entry {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// The leader's commit rule (paper §5.4.2): raise the commit index to
    /// `index` only if that entry is of the leader's current `term`. Entries
    /// of earlier terms are committed indirectly, by the first entry of the
    /// current term (Figure 8).
    pub fn maybe_commit(&mut self, index: Index, term: Term) -> bool {
        if index > self.committed && self.term(index) == Ok(term) {
            self.commit_to(index);
            return true;
        }
        false
    }

    /// The snapshot to hand to the caller for persisting, if one arrived.
    pub fn take_pending_snapshot(&mut self) -> Option<SnapshotMeta> {
        self.pending_snapshot.take()
    }

    /// Entries not yet handed to the caller for persisting; marks them
    /// handed.
    pub fn take_entries_to_persist(&mut self) -> Vec<Entry> {
        let from = self.handed_to_persist + 1;
        let to_persist: Vec<Entry> = (from..=self.last_index())
            .filter_map(|i| self.entry(i).cloned())
            .collect();
        // Nothing between the snapshot and the last entry is missing.
        debug_assert_eq!(to_persist.len() as u64, self.last_index() + 1 - from);
        self.handed_to_persist = self.last_index();
        to_persist
    }

    /// Whether there are entries not yet handed out for persisting.
    pub fn has_entries_to_persist(&self) -> bool {
        self.handed_to_persist < self.last_index() || self.pending_snapshot.is_some()
    }

    /// The caller made entries up to `index` durable, the last of them with
    /// term `term`. Ignored if that entry has since been replaced (a later
    /// request truncated it; that request's completion will count).
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if index > self.persisted && index <= self.handed_to_persist && self.matches(index, term) {
            self.persisted = index;
        }
    }

    /// The caller made an installed snapshot durable.
    pub fn snapshot_persisted(&mut self, snapshot: &SnapshotMeta) {
        if snapshot.index == self.snapshot.index && snapshot.term == self.snapshot.term {
            self.persisted = self.persisted.max(snapshot.index);
        }
    }

    /// Committed, durable entries not yet handed out to apply, at most
    /// `max_bytes` of payload (at least one); marks them handed out.
    pub fn take_entries_to_apply(&mut self, max_bytes: u64) -> Vec<Entry> {
        let high = self.committed.min(self.persisted);
        if self.applying >= high {
            return Vec::new();
        }
        let entries = self
            .slice(self.applying + 1, high + 1, max_bytes, usize::MAX)
            .unwrap_or_default();
        // `applying` is at or above the snapshot index, so the slice is
        // never compacted, and it goes on exactly where the last one ended.
        debug_assert!(
            entries
                .first()
                .is_some_and(|e| e.index == self.applying + 1),
            "entries to apply after {} do not follow it",
            self.applying
        );
        if let Some(last) = entries.last() {
            self.applying = last.index;
        }
        entries
    }

    /// The caller applied everything up to `index`.
    pub fn applied_to(&mut self, index: Index) -> Result<(), String> {
        if index > self.applying {
            return Err(format!(
                "applied {index} but only entries up to {} were handed out",
                self.applying
            ));
        }
        // A report below `applied` is stale (a snapshot installed since
        // moved `applied` past it) and changes nothing.
        self.applied = self.applied.max(index);
        Ok(())
    }

    /// Replaces the log with a snapshot received from the leader (paper §7:
    /// "discard the entire log"). Returns false, changing nothing, if the
    /// snapshot is not ahead of the commit index.
    pub fn install_snapshot(&mut self, snapshot: SnapshotMeta) -> bool {
        if snapshot.index <= self.committed {
            return false;
        }
        // Paper §7: if the log already holds the snapshot's last entry, the
        // entries after it are kept; fast-forwarding the commit index is
        // enough and nothing needs to be installed.
        if self.matches(snapshot.index, snapshot.term) {
            self.commit_to(snapshot.index);
            return false;
        }
        self.entries.clear();
        self.committed = snapshot.index;
        self.persisted = self.persisted.min(self.snapshot.index);
        self.handed_to_persist = snapshot.index;
        self.applying = snapshot.index;
        self.applied = snapshot.index;
        self.snapshot = snapshot.clone();
        self.pending_snapshot = Some(snapshot);
        true
    }

    /// Forgets entries up to `snapshot.index`, which the caller has captured
    /// in a snapshot of its state machine.
    pub fn compact_to(&mut self, snapshot: SnapshotMeta) -> Result<(), String> {
        if snapshot.index <= self.snapshot.index {
            return Err(format!("already compacted to {}", self.snapshot.index));
        }
        if snapshot.index > self.applied {
            return Err(format!("only entries up to {} are applied", self.applied));
        }
        if snapshot.index > self.persisted {
            // Right after a snapshot from the leader is installed, `applied`
            // already names it but the state machine may not hold it yet.
            return Err(format!("only entries up to {} are durable", self.persisted));
        }
        if self.term(snapshot.index) != Ok(snapshot.term) {
            return Err(format!(
                "the entry at {} does not have term {}",
                snapshot.index, snapshot.term
            ));
        }
        let drop = usize::try_from(snapshot.index - self.snapshot.index).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        Ok(())
    }

    /// The hint a follower sends with a rejection: the last index at or
    /// below `index` whose term is at most `term`, with its term. The leader
    /// can skip every entry above it in one step.
    pub fn conflict_hint(&self, index: Index, term: Term) -> (Index, Term) {
        let mut candidate = index.min(self.last_index());
        loop {
            match self.term(candidate) {
                Ok(t) if t <= term => return (candidate, t),
                Ok(_) => candidate -= 1,
                Err(_) => return (self.snapshot.index, self.snapshot.term),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryPayload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Empty,
        }
    }

    fn entries(terms: &[Term], first_index: Index) -> Vec<Entry> {
        terms
            .iter()
            .zip(first_index..)
            .map(|(&t, i)| entry(i, t))
            .collect()
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        RaftLog::restore(SnapshotMeta::default(), entries(terms, 1), 0, 0)
    }

    #[test]
    fn terms_of_snapshot_entries_and_beyond() {
        let snapshot = SnapshotMeta {
            index: 3,
            term: 2,
            ..SnapshotMeta::default()
        };
        let log = RaftLog::restore(snapshot, entries(&[2, 3], 4), 3, 3);
        assert_eq!(log.term(2), Err(Unavailable::Compacted));
        assert_eq!(log.term(3), Ok(2));
        assert_eq!(log.term(5), Ok(3));
        assert_eq!(log.term(6), Err(Unavailable::Beyond));
        assert_eq!(
            (log.first_index(), log.last_index(), log.last_term()),
            (4, 5, 3)
        );
    }

    #[test]
    fn check_entries_refuses_gaps_and_falling_terms() {
        let snapshot = SnapshotMeta {
            index: 3,
            term: 2,
            ..SnapshotMeta::default()
        };
        assert!(RaftLog::check_entries(&snapshot, &entries(&[2, 3], 4)).is_ok());
        assert!(
            RaftLog::check_entries(&snapshot, &entries(&[2, 3], 5)).is_err(),
            "gap"
        );
        assert!(
            RaftLog::check_entries(&snapshot, &entries(&[3, 2], 4)).is_err(),
            "falling term"
        );
        assert!(
            RaftLog::check_entries(&snapshot, &entries(&[1], 4)).is_err(),
            "below snapshot term"
        );
    }

    #[test]
    fn election_restriction_compares_last_term_then_length() {
        // Paper §5.4.1.
        let log = log_with_terms(&[1, 1, 2]);
        assert!(log.is_up_to_date(3, 2));
        assert!(
            log.is_up_to_date(1, 3),
            "a higher last term wins even if shorter"
        );
        assert!(!log.is_up_to_date(2, 2), "same term, shorter log");
        assert!(
            !log.is_up_to_date(9, 1),
            "lower last term loses even if longer"
        );
    }

    #[test]
    fn follower_append_truncates_only_at_a_real_conflict() {
        let mut log = log_with_terms(&[1, 1, 1, 1]);
        log.persisted_to(4, 1);
        // A stale duplicate of entries 2..3: all match, nothing truncated.
        assert_eq!(
            log.append_as_follower(1, 1, &entries(&[1, 1], 2)),
            Ok(Some(3))
        );
        assert_eq!(log.last_index(), 4, "matching entries are never truncated");
        assert_eq!(log.persisted(), 4);
        // A real conflict at 3: entries 3.. replaced, persisted rolls back.
        assert_eq!(log.append_as_follower(2, 1, &entries(&[2], 3)), Ok(Some(3)));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Ok(2));
        assert_eq!(log.persisted(), 2);
        // The consistency check fails on a missing previous entry.
        assert_eq!(log.append_as_follower(7, 2, &[]), Ok(None));
    }

    #[test]
    fn a_conflict_inside_the_committed_prefix_is_refused() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(2);
        assert_eq!(log.append_as_follower(1, 1, &entries(&[2], 2)), Err(2));
        assert_eq!(log.term(2), Ok(1), "the committed entry is untouched");
    }

    #[test]
    fn only_current_term_entries_commit_by_counting() {
        // Paper §5.4.2 / Figure 8.
        let mut log = log_with_terms(&[1, 2, 4]);
        assert!(
            !log.maybe_commit(2, 4),
            "entry 2 has term 2: not by counting in term 4"
        );
        assert_eq!(log.committed(), 0);
        assert!(log.maybe_commit(3, 4));
        assert_eq!(
            log.committed(),
            3,
            "entry 3 of term 4 commits 1 and 2 with it"
        );
    }

    #[test]
    fn apply_waits_for_commit_and_persistence() {
        let mut log = log_with_terms(&[]);
        log.append_as_leader(entries(&[1, 1, 1], 1));
        log.commit_to(3);
        assert!(
            log.take_entries_to_apply(u64::MAX).is_empty(),
            "nothing durable yet"
        );
        assert_eq!(log.take_entries_to_persist().len(), 3);
        log.persisted_to(2, 1);
        let applying: Vec<Index> = log
            .take_entries_to_apply(u64::MAX)
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(applying, vec![1, 2]);
        assert!(log.applied_to(3).is_err(), "3 was not handed out");
        assert!(log.applied_to(2).is_ok());
        assert_eq!(log.applied(), 2);
    }

    #[test]
    fn a_persist_report_for_replaced_entries_counts_for_nothing() {
        let mut log = log_with_terms(&[]);
        log.append_as_leader(entries(&[1, 1, 1], 1));
        assert_eq!(log.take_entries_to_persist().len(), 3);
        // A new leader replaces entries 2..3 before the write completes.
        assert_eq!(log.append_as_follower(1, 1, &entries(&[2], 2)), Ok(Some(2)));
        log.persisted_to(3, 1);
        assert_eq!(log.persisted(), 0, "entry 3 of term 1 no longer exists");
        let again: Vec<Index> = log
            .take_entries_to_persist()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(
            again,
            vec![2],
            "only the replaced suffix is handed out again"
        );
        log.persisted_to(2, 2);
        assert_eq!(log.persisted(), 2);
    }

    #[test]
    fn snapshot_install_replaces_the_log_unless_it_is_behind() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(2);
        let behind = SnapshotMeta {
            index: 2,
            term: 1,
            ..SnapshotMeta::default()
        };
        assert!(
            !log.install_snapshot(behind),
            "not ahead of the commit index"
        );
        let held = SnapshotMeta {
            index: 3,
            term: 1,
            ..SnapshotMeta::default()
        };
        assert!(
            !log.install_snapshot(held),
            "we hold its last entry: only commit moves"
        );
        assert_eq!(log.committed(), 3);
        let ahead = SnapshotMeta {
            index: 10,
            term: 3,
            ..SnapshotMeta::default()
        };
        assert!(log.install_snapshot(ahead.clone()));
        assert_eq!(
            (log.last_index(), log.last_term(), log.committed()),
            (10, 3, 10)
        );
        assert!(log.take_entries_to_apply(u64::MAX).is_empty());
        assert_eq!(log.take_pending_snapshot(), Some(ahead.clone()));
        log.snapshot_persisted(&ahead);
        assert_eq!(log.persisted(), 10);
    }

    #[test]
    fn compaction_requires_applied_entries_with_the_right_term() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.commit_to(4);
        log.take_entries_to_apply(u64::MAX);
        log.applied_to(3).unwrap();
        let meta = |index, term| SnapshotMeta {
            index,
            term,
            ..SnapshotMeta::default()
        };
        assert!(log.compact_to(meta(4, 2)).is_err(), "4 is not applied");
        assert!(log.compact_to(meta(3, 1)).is_err(), "wrong term");
        log.compact_to(meta(3, 2)).unwrap();
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.term(3), Ok(2));
        assert_eq!(log.slice(3, 5, u64::MAX, 10), Err(Unavailable::Compacted));
        assert_eq!(log.slice(4, 5, u64::MAX, 10).unwrap().len(), 1);
    }

    #[test]
    fn conflict_hint_skips_whole_terms() {
        // Leader's log: terms 1 1 1 4 4 5 5 6 6 6; a follower rejected
        // index 9 reporting term 3 at its index 6 (thesis §5.3 example).
        let log = log_with_terms(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
        assert_eq!(
            log.conflict_hint(6, 3),
            (3, 1),
            "skip back over terms 4 and 5"
        );
        assert_eq!(log.conflict_hint(10, 6), (10, 6));
        assert_eq!(
            log.conflict_hint(20, 5),
            (7, 5),
            "clamped to the last index"
        );
    }

    #[test]
    fn slices_respect_byte_and_count_limits_but_return_at_least_one() {
        let mut log = log_with_terms(&[]);
        let big = |index| Entry {
            term: 1,
            index,
            payload: EntryPayload::Command(bytes::Bytes::from(vec![0u8; 100])),
        };
        log.append_as_leader((1..=5).map(big).collect());
        assert_eq!(log.slice(1, 6, 250, 10).unwrap().len(), 2);
        assert_eq!(
            log.slice(1, 6, 10, 10).unwrap().len(),
            1,
            "one entry even if over the limit"
        );
        assert_eq!(log.slice(1, 6, u64::MAX, 3).unwrap().len(), 3);
        assert_eq!(log.slice(1, 7, u64::MAX, 3), Err(Unavailable::Beyond));
    }
}
