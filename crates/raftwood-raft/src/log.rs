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
