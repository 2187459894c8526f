//! The persistence thread: writes what the core asks to make durable and
//! syncs it, many requests per fsync (group commit).

use std::sync::mpsc as std_mpsc;

use std::time::Instant;

use raftwood_raft::{PersistRequest, PersistTicket};

use crate::timings::{Stage, StageTimings};

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
    fn compact(&mut self, snapshot: &raftwood_raft::SnapshotMeta) -> Result<(), String>;
}

impl LogStorage for raftwood_log::RaftLogStore {
    fn write(&mut self, request: &PersistRequest) -> Result<(), String> {
        raftwood_log::RaftLogStore::write(self, request).map_err(|e| e.to_string())
    }

    fn sync(&mut self) -> Result<(), String> {
        raftwood_log::RaftLogStore::sync(self).map_err(|e| e.to_string())
    }

    fn compact(&mut self, snapshot: &raftwood_raft::SnapshotMeta) -> Result<(), String> {
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
        meta: raftwood_raft::SnapshotMeta,
        /// The checkpoint, to be completed and renamed.
        temp_dir: std::path::PathBuf,
    },
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
    pub meta: raftwood_raft::SnapshotMeta,
    /// The checkpoint, to be completed and renamed.
    pub temp_dir: std::path::PathBuf,
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
    /// Snapshots queued in the batch, completed after it is durable.
    snapshots: Vec<PendingSnapshot>,
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
                    batch.snapshots.push(PendingSnapshot { meta, temp_dir });
                }
            }
        }
        Ok(batch)
    }
}

impl WrittenBatch {
    /// Whether completing the batch takes an fsync.
    pub fn needs_sync(&self) -> bool {
        self.sync
    }

    /// Makes the batch durable with one sync (if any request needs it) and
    /// returns its tickets in order, for `on_persisted`, and the snapshots
    /// to complete next (see [`complete_snapshot`]).
    pub fn sync(
        self,
        storage: &mut impl LogStorage,
    ) -> Result<(Vec<PersistTicket>, Vec<PendingSnapshot>), String> {
        if self.sync {
            storage
                .sync()
                .map_err(|error| format!("raft log write failed: {error}"))?;
        }
        Ok((self.tickets, self.snapshots))
    }
}

/// Completes a snapshot with `finish_snapshot` (its files durable) and only
/// then drops the log behind it.
pub fn complete_snapshot(
    storage: &mut impl LogStorage,
    snapshot: &PendingSnapshot,
    finish_snapshot: impl FnOnce(&std::path::Path, &raftwood_raft::SnapshotMeta) -> Result<(), String>,
) -> Result<(), String> {
    finish_snapshot(&snapshot.temp_dir, &snapshot.meta)
        .and_then(|()| storage.compact(&snapshot.meta))
        .map_err(|error| format!("snapshot {} failed: {error}", snapshot.meta.index))
}

/// Runs until `work` closes. Each batch takes every request queued,
/// writes them all, syncs once if any of them needs it (see
/// [`needs_sync`]) and reports their tickets in order with `done`. A
/// storage error is fail-stop: it is reported with `fatal` and the thread
/// ends, so nothing after it is acknowledged.
pub fn run_persistence(
    mut storage: impl LogStorage,
    work: std_mpsc::Receiver<PersistWork>,
    mut finish_snapshot: impl FnMut(
        &std::path::Path,
        &raftwood_raft::SnapshotMeta,
    ) -> Result<(), String>,
    mut done: impl FnMut(Vec<PersistTicket>),
    fatal: impl FnOnce(String),
    timings: Option<std::sync::Arc<StageTimings>>,
) {
    let mut batcher = PersistBatcher::default();
    while let Ok(first) = work.recv() {
        let works: Vec<PersistWork> = std::iter::once(first).chain(work.try_iter()).collect();
        let requests = works.len() as u64;
        let started = Instant::now();
        let result = batcher.write(&mut storage, works).and_then(|batch| {
            let written = Instant::now();
            let synced = batch.sync(&mut storage);
            if let Some(timings) = &timings {
                timings.record_duration(Stage::LogWrite, written - started);
                timings.record_duration(Stage::LogSync, written.elapsed());
                timings.record(Stage::RequestsPerSync, requests);
            }
            synced
        });
        let (tickets, snapshots) = match result {
            Ok(done) => done,
            Err(reason) => {
                fatal(reason);
                return;
            }
        };
        if !tickets.is_empty() {
            done(tickets);
        }
        // The snapshot is complete and durable before the log behind it
        // goes.
        for snapshot in &snapshots {
            if let Err(reason) = complete_snapshot(&mut storage, snapshot, &mut finish_snapshot) {
                fatal(reason);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwood_raft::{Entry, EntryPayload, HardState};

    #[derive(Default)]
    struct CountingStorage {
        writes: usize,
        syncs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl LogStorage for CountingStorage {
        fn write(&mut self, _request: &PersistRequest) -> Result<(), String> {
            self.writes += 1;
            Ok(())
        }
        fn sync(&mut self) -> Result<(), String> {
            self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        fn compact(&mut self, _snapshot: &raftwood_raft::SnapshotMeta) -> Result<(), String> {
            Ok(())
        }
    }

    fn request(ticket: u64, entry: Option<u64>, hard_state: Option<HardState>) -> PersistWork {
        PersistWork::Persist(PersistRequest {
            ticket: PersistTicket(ticket),
            snapshot: None,
            entries: entry
                .map(|index| Entry {
                    term: 2,
                    index,
                    payload: EntryPayload::Empty,
                })
                .into_iter()
                .collect(),
            hard_state,
        })
    }

    /// Runs one request at a time through the thread; returns the syncs.
    fn syncs_for(requests: Vec<PersistWork>) -> Vec<usize> {
        let storage = CountingStorage::default();
        let syncs = storage.syncs.clone();
        let (sender, receiver) = std_mpsc::channel();
        let (done_sender, done_receiver) = std_mpsc::channel();
        let timings = std::sync::Arc::new(StageTimings::new());
        let thread_timings = timings.clone();
        let count = requests.len();
        let thread = std::thread::spawn(move || {
            run_persistence(
                storage,
                receiver,
                |_, _| Ok(()),
                move |tickets| {
                    let _ = done_sender.send(tickets);
                },
                |reason| panic!("{reason}"),
                Some(thread_timings),
            );
        });
        let mut after_each = Vec::new();
        for request in requests {
            sender.send(request).unwrap();
            done_receiver.recv().unwrap();
            after_each.push(syncs.load(std::sync::atomic::Ordering::SeqCst));
        }
        drop(sender);
        thread.join().unwrap();
        // One batch per request, each timed.
        let summary = timings.take_summary().unwrap();
        assert!(
            summary.contains(&format!("log sync n={count} ")),
            "{summary}"
        );
        after_each
    }

    #[test]
    fn commit_only_updates_are_not_synced_but_entries_and_votes_are() {
        let hard = |term, vote, commit| HardState { term, vote, commit };
        let syncs = syncs_for(vec![
            request(1, None, Some(hard(2, Some(1), 0))), // first hard state: sync
            request(2, Some(1), None),                   // entries: sync
            request(3, None, Some(hard(2, Some(1), 1))), // commit only: no sync
            request(4, None, Some(hard(2, Some(1), 2))), // commit only: no sync
            request(5, None, Some(hard(3, None, 2))),    // new term: sync
            request(6, None, Some(hard(3, Some(2), 2))), // new vote: sync
        ]);
        assert_eq!(syncs, vec![1, 2, 2, 2, 3, 4]);
    }
}
