//! What the drive loop asks of the persistence side, and how one batch of
//! it is made durable: every request written, then one sync for all
//! (group commit), and only then the snapshots completed and the log
//! compacted behind them. The thread that runs these batches is
//! `threads/persist.rs`; the simulator runs them on its simulated disk.

use std::path::{Path, PathBuf};

use raftwood_raft::{PersistRequest, PersistTicket, SnapshotMeta};

/// The raft log's storage as the drive loop needs it. The server's
/// implementation is `raftwood_log::RaftLogStore`; a simulator can supply
/// one that models a crash.
pub trait LogStorage: Send + 'static {
    /// Appends a request's snapshot point, entries and hard state, in that
    /// order, without syncing.
    fn write(&mut self, request: &PersistRequest) -> Result<(), String>;
    /// Makes everything written durable.
    fn sync(&mut self) -> Result<(), String>;
    /// Records that the log now starts after `snapshot` and drops the
    /// entries it covers.
    fn compact(&mut self, snapshot: &SnapshotMeta) -> Result<(), String>;
}

impl LogStorage for raftwood_log::RaftLogStore {
    fn write(&mut self, request: &PersistRequest) -> Result<(), String> {
        raftwood_log::RaftLogStore::write(self, request).map_err(|e| e.to_string())
    }

    fn sync(&mut self) -> Result<(), String> {
        raftwood_log::RaftLogStore::sync(self).map_err(|e| e.to_string())
    }

    fn compact(&mut self, snapshot: &SnapshotMeta) -> Result<(), String> {
        raftwood_log::RaftLogStore::compact(self, snapshot)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Work for the persistence thread.
#[derive(Debug)]
pub enum PersistWork {
    /// Make this durable.
    Persist(PersistRequest),
    /// Complete the snapshot whose checkpoint is in `temp_dir`, then drop
    /// the log up to it.
    Snapshot {
        /// What the snapshot stands for.
        meta: SnapshotMeta,
        /// The checkpoint, to be completed and renamed.
        temp_dir: PathBuf,
    },
    /// Delete an unfinished snapshot the log will not be compacted to.
    Discard {
        /// The checkpoint to delete.
        temp_dir: PathBuf,
    },
}

/// A member's snapshot directories as the persistence side handles them.
/// The server's implementation is `StateDir`.
pub trait SnapshotFiles {
    /// Completes the snapshot whose state-machine checkpoint is in
    /// `temp_dir`: writes its meta, makes it durable, gives it its name.
    fn finish(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<(), String>;
    /// Deletes an unfinished snapshot (best effort: a leftover is removed
    /// at the next start-up).
    fn discard(&self, temp_dir: &Path);
}

/// Whether making `request` durable needs an fsync, given the term and
/// vote last synced. Entries, a snapshot point and a new term or vote must
/// survive a crash (Raft's persistent state); a hard state that changes
/// only the commit index need not — the commit index is volatile state in
/// Raft, re-learned from the leader, and a member that restarts with an
/// older one starts from the state machine's applied index anyway. This is
/// etcd's rule too, and it halves the fsyncs of a follower, whose every
/// round otherwise carries a commit-only update.
pub fn needs_sync(request: &PersistRequest, synced_term_vote: (u64, Option<u64>)) -> bool {
    !request.entries.is_empty()
        || request.snapshot.is_some()
        || request
            .hard_state
            .is_some_and(|h| (h.term, h.vote) != synced_term_vote)
}

/// A snapshot whose log compaction waits for the batch that queued it to
/// be durable.
#[derive(Debug)]
pub struct PendingSnapshot {
    /// What the snapshot stands for.
    pub meta: SnapshotMeta,
    /// The checkpoint, to be completed and renamed.
    pub temp_dir: PathBuf,
}

/// What happens to a snapshot once its batch is durable.
#[derive(Debug)]
pub enum SnapshotStep {
    /// Complete it, then compact the log to it ([`complete_snapshot`]).
    Complete(PendingSnapshot),
    /// Delete it.
    Discard(PathBuf),
}

/// What the persistence side remembers from one batch to the next.
#[derive(Debug, Default)]
pub struct PersistBatcher {
    /// The term and vote last written; `None` before the first, so the
    /// first hard state is always synced. Every write that changes them is
    /// synced in its batch, so what was written is also what is durable.
    written_term_vote: Option<(u64, Option<u64>)>,
}

/// A batch whose requests are written but not yet synced: a crash now
/// may lose any of them.
#[derive(Debug)]
#[must_use = "a written batch is acknowledged only after WrittenBatch::sync"]
pub struct WrittenBatch {
    /// Tickets of the written requests, in order.
    tickets: Vec<PersistTicket>,
    /// Whether any request needs an fsync (see [`needs_sync`]).
    sync: bool,
    /// Snapshots queued in the batch, completed or discarded after it is
    /// durable, in order.
    snapshots: Vec<SnapshotStep>,
}

impl PersistBatcher {
    /// Writes every request of one batch, in order, without syncing. A
    /// storage error is returned (fail-stop: nothing of the batch may be
    /// acknowledged).
    pub fn write(
        &mut self,
        storage: &mut impl LogStorage,
        works: impl IntoIterator<Item = PersistWork>,
    ) -> Result<WrittenBatch, String> {
        let mut batch = WrittenBatch {
            tickets: Vec::new(),
            sync: false,
            snapshots: Vec::new(),
        };
        for work in works {
            match work {
                PersistWork::Persist(request) => {
                    // Requests arrive in the order the core issued them,
                    // and must be written (and acknowledged) in it.
                    assert!(
                        batch
                            .tickets
                            .last()
                            .is_none_or(|last| *last < request.ticket),
                        "persist ticket {:?} after {:?}",
                        request.ticket,
                        batch.tickets.last()
                    );
                    batch.sync |= match self.written_term_vote {
                        Some(term_vote) => needs_sync(&request, term_vote),
                        None => true,
                    };
                    if let Some(hard_state) = request.hard_state {
                        self.written_term_vote = Some((hard_state.term, hard_state.vote));
                    }
                    storage
                        .write(&request)
                        .map_err(|error| format!("raft log write failed: {error}"))?;
                    batch.tickets.push(request.ticket);
                }
                PersistWork::Snapshot { meta, temp_dir } => {
                    // The loop compacts forward only.
                    debug_assert!(
                        batch.snapshots.iter().all(|step| match step {
                            SnapshotStep::Complete(earlier) => earlier.meta.index < meta.index,
                            SnapshotStep::Discard(_) => true,
                        }),
                        "snapshot {} after a later one",
                        meta.index
                    );
                    batch
                        .snapshots
                        .push(SnapshotStep::Complete(PendingSnapshot { meta, temp_dir }));
                }
                PersistWork::Discard { temp_dir } => {
                    batch.snapshots.push(SnapshotStep::Discard(temp_dir));
                }
            }
        }
        // Only a request can need a sync, and every request has a ticket.
        debug_assert!(!batch.sync || !batch.tickets.is_empty());
        Ok(batch)
    }
}

impl WrittenBatch {
    /// Whether completing the batch takes an fsync.
    pub fn needs_sync(&self) -> bool {
        self.sync
    }

    /// Makes the batch durable with one sync (if any request needs it) and
    /// returns its tickets in order, for `on_persisted`, and the snapshot
    /// steps to take next (see [`complete_snapshot`]).
    pub fn sync(
        self,
        storage: &mut impl LogStorage,
    ) -> Result<(Vec<PersistTicket>, Vec<SnapshotStep>), String> {
        if self.sync {
            storage
                .sync()
                .map_err(|error| format!("raft log write failed: {error}"))?;
        }
        Ok((self.tickets, self.snapshots))
    }
}

/// Completes a snapshot (its files durable) and only then drops the log
/// behind it.
pub fn complete_snapshot(
    storage: &mut impl LogStorage,
    files: &impl SnapshotFiles,
    snapshot: &PendingSnapshot,
) -> Result<(), String> {
    // The loop compacts only past its log's snapshot, which starts at 0.
    assert!(snapshot.meta.index > 0, "a snapshot of nothing");
    files
        .finish(&snapshot.temp_dir, &snapshot.meta)
        .and_then(|()| storage.compact(&snapshot.meta))
        .map_err(|error| format!("snapshot {} failed: {error}", snapshot.meta.index))
}
