//! Simulated durable storage of one node: the raft log, the hard state and
//! the snapshot (its point and the state machine's content there).
//!
//! A persist request is *submitted* when the core hands it out and becomes
//! durable only when its simulated fsync completes, in submission order;
//! then the node reports `on_persisted`. A crash loses every submitted
//! request that has not completed. With torn writes enabled, the oldest
//! write in progress may leave a prefix of its entries behind (the entries
//! are written before the hard state, as the core's contract orders them).

use std::collections::VecDeque;

use raftwood_raft::{Entry, HardState, Index, InitialState, PersistRequest, SnapshotMeta, Term};

use std::sync::Arc;

use crate::state_machine::SnapshotImage;

/// What survives a crash.
#[derive(Debug, Clone, Default)]
pub struct DurableState {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The snapshot the log starts after.
    pub snapshot: SnapshotMeta,
    /// The state machine's checkpoint at `snapshot.index`.
    pub snapshot_data: Arc<SnapshotImage>,
    /// Entries after the snapshot. Invariant: consecutive indexes from
    /// `snapshot.index + 1`.
    pub entries: Vec<Entry>,
}

impl DurableState {
    /// The last index on disk.
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }

    /// Whether the disk durably holds the entry (index, term), in its log
    /// or covered by its snapshot (a snapshot at or past `index` holds
    /// every committed entry up to it).
    pub fn holds(&self, index: Index, term: Term) -> bool {
        if index < self.snapshot.index {
            return true;
        }
        if index == self.snapshot.index {
            return self.snapshot.term == term;
        }
        let offset = (index - self.snapshot.index - 1) as usize;
        self.entries.get(offset).is_some_and(|e| e.term == term)
    }

    /// Writes the snapshot of a request (if any) and its entries, truncating
    /// a conflicting tail first; not the hard state.
    fn write_log(&mut self, request: &PersistRequest, snapshot_data: Option<&Arc<SnapshotImage>>) {
        if let Some(snapshot) = &request.snapshot {
            self.snapshot = snapshot.clone();
            self.snapshot_data = snapshot_data.cloned().unwrap_or_default();
            self.entries.clear();
        }
        self.append(&request.entries);
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        self.entries.retain(|e| e.index < first.index);
        assert_eq!(
            first.index,
            self.last_index() + 1,
            "a persist request leaves a hole in the log on disk"
        );
        self.entries.extend(entries.iter().cloned());
    }
}

/// A submitted write that has not completed.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    /// What the core asked to make durable.
    pub request: PersistRequest,
    /// The state machine image of the request's snapshot, if it has one.
    pub snapshot_data: Option<Arc<SnapshotImage>>,
    /// When the simulated fsync completes.
    pub complete_at_us: u64,
}

/// What a crash did to the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashDamage {
    /// Writes submitted but not completed, now lost.
    pub lost_writes: usize,
    /// Entries of a torn write that nevertheless reached the disk.
    pub torn_entries: usize,
}

/// One node's disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    durable: DurableState,
    pending: VecDeque<PendingWrite>,
}

impl SimDisk {
    /// A disk holding `durable` and nothing in progress.
    pub fn new(durable: DurableState) -> SimDisk {
        SimDisk {
            durable,
            pending: VecDeque::new(),
        }
    }

    /// What is durable now.
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    /// Writes in progress, oldest first.
    pub fn pending(&self) -> &VecDeque<PendingWrite> {
        &self.pending
    }

    /// Starts a write that completes `fsync_delay_us` from `now_us`, but
    /// never before an earlier write (completions are ordered). Returns its
    /// completion time.
    pub fn submit(
        &mut self,
        request: PersistRequest,
        snapshot_data: Option<Arc<SnapshotImage>>,
        now_us: u64,
        fsync_delay_us: u64,
    ) -> u64 {
        let earliest = self.pending.back().map_or(0, |w| w.complete_at_us);
        let complete_at_us = (now_us + fsync_delay_us).max(earliest);
        self.pending.push_back(PendingWrite {
            request,
            snapshot_data,
            complete_at_us,
        });
        complete_at_us
    }

    /// Completes the oldest write: it is durable from now on. Returns it.
    pub fn complete_oldest(&mut self) -> Option<PendingWrite> {
        let write = self.pending.pop_front()?;
        self.durable
            .write_log(&write.request, write.snapshot_data.as_ref());
        if let Some(hard_state) = write.request.hard_state {
            self.durable.hard_state = hard_state;
        }
        Some(write)
    }

    /// Records a snapshot the node took of its own state machine (log
    /// compaction): written and synced at once, entries up to it dropped.
    pub fn write_compaction(&mut self, snapshot: SnapshotMeta, data: Arc<SnapshotImage>) {
        let index = snapshot.index;
        self.durable.entries.retain(|e| e.index > index);
        self.durable.snapshot = snapshot;
        self.durable.snapshot_data = data;
    }

    /// Power cut. Writes in progress are lost; if `torn_entries` is given,
    /// that many leading entries of the oldest write in progress (without
    /// its snapshot) reach the disk anyway, but not its hard state.
    pub fn crash(&mut self, torn_entries: Option<usize>) -> CrashDamage {
        let mut damage = CrashDamage {
            lost_writes: self.pending.len(),
            torn_entries: 0,
        };
        if let (Some(keep), Some(oldest)) = (torn_entries, self.pending.front())
            && oldest.request.snapshot.is_none()
        {
            let keep = keep.min(oldest.request.entries.len());
            if keep > 0 {
                let prefix: Vec<Entry> = oldest.request.entries[..keep].to_vec();
                self.durable.append(&prefix);
                damage.torn_entries = keep;
            }
        }
        self.pending.clear();
        damage
    }

    /// What a new node starts from: the state machine is at the snapshot
    /// (see [`SimDisk::recover`]).
    ///
    /// A torn write can leave entries of a term the durable hard state has
    /// not reached (the entries precede the hard state in a request). The
    /// node has then seen that term, and never voted in it durably (a vote
    /// would have been in that request or a later one), so recovery raises
    /// the term to the last entry's, with no vote — as a server's recovery
    /// must.
    pub fn initial_state(&self) -> InitialState {
        self.recover(0).0
    }

    /// What a node restarts from when its state machine reopened at
    /// `state_machine_applied` (its durable applied index), and whether
    /// recovery had to raise the term past the durable hard state's (a torn
    /// write). As the server does, the core starts at the state machine's
    /// applied index (or the snapshot's, if later) and hands out the
    /// committed entries after it for replay; entries the state machine
    /// applied were committed, so the commit index is raised to it.
    pub fn recover(&self, state_machine_applied: Index) -> (InitialState, bool) {
        let durable = &self.durable;
        let mut hard_state = durable.hard_state;
        let last_term = durable
            .entries
            .last()
            .map_or(durable.snapshot.term, |e| e.term);
        let raised = hard_state.term < last_term;
        if raised {
            hard_state.term = last_term;
            hard_state.vote = None;
        }
        let applied = state_machine_applied.max(durable.snapshot.index);
        hard_state.commit = hard_state.commit.max(applied);
        let initial = InitialState {
            hard_state,
            snapshot: durable.snapshot.clone(),
            entries: durable.entries.clone(),
            applied,
        };
        (initial, raised)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftwood_raft::{EntryPayload, PersistTicket};

    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Command(Bytes::from(vec![index as u8])),
        }
    }

    fn request(ticket: u64, entries: Vec<Entry>, term: Term) -> PersistRequest {
        PersistRequest {
            ticket: PersistTicket(ticket),
            snapshot: None,
            entries,
            hard_state: Some(HardState {
                term,
                vote: None,
                commit: 0,
            }),
        }
    }

    #[test]
    fn writes_complete_in_order_and_only_completed_ones_survive_a_crash() {
        let mut disk = SimDisk::default();
        let first = disk.submit(request(1, vec![entry(1, 1)], 1), None, 0, 500);
        let second = disk.submit(request(2, vec![entry(2, 1)], 1), None, 10, 100);
        assert_eq!(first, 500);
        assert_eq!(second, 500, "a later write never completes first");
        assert!(disk.complete_oldest().is_some());
        let damage = disk.crash(None);
        assert_eq!(damage.lost_writes, 1);
        assert_eq!(disk.durable().last_index(), 1);
        assert_eq!(disk.initial_state().entries.len(), 1);
    }

    #[test]
    fn a_conflicting_write_truncates_the_tail_on_disk() {
        let mut disk = SimDisk::default();
        disk.submit(
            request(1, vec![entry(1, 1), entry(2, 1), entry(3, 1)], 1),
            None,
            0,
            1,
        );
        disk.submit(request(2, vec![entry(2, 2)], 2), None, 0, 1);
        disk.complete_oldest();
        disk.complete_oldest();
        let terms: Vec<Term> = disk.durable().entries.iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![1, 2]);
        assert!(disk.durable().holds(2, 2));
        assert!(!disk.durable().holds(2, 1));
        assert!(!disk.durable().holds(3, 1));
    }

    #[test]
    fn a_torn_write_keeps_entries_without_their_hard_state_and_recovery_raises_the_term() {
        let mut disk = SimDisk::default();
        disk.submit(request(1, vec![entry(1, 1)], 1), None, 0, 1);
        disk.complete_oldest();
        // A follower moved to term 3 and appended two entries of term 3 in
        // one request; the power fails mid-write.
        disk.submit(request(2, vec![entry(2, 3), entry(3, 3)], 3), None, 0, 1);
        let damage = disk.crash(Some(1));
        assert_eq!(damage.torn_entries, 1);
        assert_eq!(disk.durable().hard_state.term, 1);
        let (initial, raised) = disk.recover(0);
        assert!(raised);
        assert_eq!(initial.hard_state.term, 3);
        assert_eq!(initial.hard_state.vote, None);
        assert_eq!(initial.entries.len(), 2);
    }

    #[test]
    fn compaction_keeps_the_tail_and_the_snapshot_covers_the_rest() {
        let mut disk = SimDisk::default();
        disk.submit(
            request(1, vec![entry(1, 1), entry(2, 1), entry(3, 2)], 2),
            None,
            0,
            1,
        );
        disk.complete_oldest();
        let meta = SnapshotMeta {
            index: 2,
            term: 1,
            conf_state: raftwood_raft::ConfState::with_voters([1]),
        };
        disk.write_compaction(meta, Arc::default());
        assert_eq!(disk.durable().entries.len(), 1);
        assert!(disk.durable().holds(1, 1));
        assert!(disk.durable().holds(2, 1));
        assert!(disk.durable().holds(3, 2));
        assert_eq!(disk.initial_state().applied, 2);
    }
}
