//! The log as a value: hard state, snapshot point and the entries after it.
//! The writer keeps one up to date as it writes; recovery rebuilds one by
//! replaying records. Both change it only through the operations here, one
//! per record type, so the two cannot disagree about what a record means.

use std::collections::VecDeque;

use raftwood_raft::{Entry, HardState, Index, PersistRequest, SnapshotMeta, Term};

/// The logical content of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogState {
    pub(crate) hard_state: HardState,
    /// The point the log starts after (installed from a leader, or a local
    /// compaction). `None` until the first one.
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// Invariant (outside replay, see `finish_replay`): consecutive indexes
    /// starting at `snapshot_index() + 1`, terms non-decreasing and not
    /// below the snapshot's. During replay of a log whose first segments
    /// were deleted, the entries are a consecutive run that may start later.
    pub(crate) entries: VecDeque<Entry>,
}

impl LogState {
    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn snapshot_term(&self) -> Term {
        self.snapshot.as_ref().map_or(0, |s| s.term)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.entries
            .back()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// The term of the entry at `index`, if the log knows it (the snapshot
    /// point counts).
    pub(crate) fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        let first = self.entries.front()?.index;
        let offset = index.checked_sub(first)?;
        self.entries
            .get(usize::try_from(offset).ok()?)
            .map(|e| e.term)
    }

    /// Record `InstallSnapshot`: the whole log is replaced.
    pub(crate) fn install_snapshot(&mut self, meta: &SnapshotMeta) {
        self.snapshot = Some(meta.clone());
        self.entries.clear();
    }

    /// Record `Compact`: the log starts after `meta`; later entries stay.
    pub(crate) fn compact(&mut self, meta: &SnapshotMeta) {
        while self.entries.front().is_some_and(|e| e.index <= meta.index) {
            self.entries.pop_front();
        }
        self.snapshot = Some(meta.clone());
    }

    /// Record `Truncate`: entries at `from_index` and above are removed.
    pub(crate) fn truncate_from(&mut self, from_index: Index) {
        while self.entries.back().is_some_and(|e| e.index >= from_index) {
            self.entries.pop_back();
        }
    }

    /// Record `Entries`: consecutive entries follow the last one. During
    /// replay an empty run may restart anywhere (the entries before it were
    /// in deleted segments); `finish_replay` checks the result.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), String> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if let Some(last) = self.entries.back()
            && last.index.checked_add(1) != Some(first.index)
        {
            return Err(format!(
                "entries from {} do not follow the last entry {}",
                first.index, last.index
            ));
        }
        self.entries.extend(entries.iter().cloned());
        Ok(())
    }

    /// Ends replay: drops entries the snapshot point covers and checks the
    /// invariants of a log.
    pub(crate) fn finish_replay(&mut self) -> Result<(), String> {
        let snapshot_index = self.snapshot_index();
        while self
            .entries
            .front()
            .is_some_and(|e| e.index <= snapshot_index)
        {
            self.entries.pop_front();
        }
        if let Some(first) = self.entries.front()
            && first.index != snapshot_index + 1
        {
            return Err(format!(
                "entries start at {} but the snapshot point is {snapshot_index}: entries are missing",
                first.index
            ));
        }
        self.check_terms()
    }

    fn check_terms(&self) -> Result<(), String> {
        let mut previous = self.snapshot_term();
        for entry in &self.entries {
            if entry.term < previous {
                return Err(format!(
                    "entry {} has term {}, below the {previous} before it",
                    entry.index, entry.term
                ));
            }
            previous = entry.term;
        }
        Ok(())
    }

    /// Checks that `request` can be applied: its entries are consecutive,
    /// follow the snapshot point, leave no gap, and their terms do not go
    /// down. Nothing is written for a request that fails.
    pub(crate) fn check_request(&self, request: &PersistRequest) -> Result<(), String> {
        let Some(first) = request.entries.first() else {
            return Ok(());
        };
        let (snapshot_index, last_index) = match &request.snapshot {
            Some(meta) => (meta.index, meta.index),
            None => (self.snapshot_index(), self.last_index()),
        };
        if first.index <= snapshot_index {
            return Err(format!(
                "entry {} is at or below the snapshot point {snapshot_index}",
                first.index
            ));
        }
        if first.index > last_index.saturating_add(1) {
            return Err(format!(
                "entry {} would leave a gap after the last entry {last_index}",
                first.index
            ));
        }
        let mut previous_term = match &request.snapshot {
            Some(meta) => meta.term,
            None => self.term_at(first.index - 1).unwrap_or(0),
        };
        let mut expected_index = first.index;
        for entry in &request.entries {
            if entry.index != expected_index {
                return Err(format!(
                    "entry {} where {expected_index} was expected",
                    entry.index
                ));
            }
            if entry.term < previous_term {
                return Err(format!(
                    "entry {} has term {}, below the {previous_term} before it",
                    entry.index, entry.term
                ));
            }
            previous_term = entry.term;
            expected_index = expected_index.wrapping_add(1);
        }
        Ok(())
    }
}
