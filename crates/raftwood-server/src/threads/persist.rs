//! The persistence thread: writes what the core asks to make durable and
//! syncs it, many requests per fsync (group commit), with the batching of
//! `driver/persist.rs`; reports to the drive loop through its events.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::driver::{
    LogStorage, LoopEvent, PersistBatcher, PersistWork, SnapshotFiles, SnapshotStep,
    complete_snapshot,
};
use crate::timings::{Stage, StageTimings};

/// Runs until `work` closes. Each batch takes every request queued,
/// writes them all, syncs once if any of them needs it (see
/// `driver::needs_sync`) and reports their tickets in order as
/// [`LoopEvent::Persisted`]. A storage error is fail-stop: it is reported
/// as [`LoopEvent::Fatal`] and the thread ends, so nothing after it is
/// acknowledged.
pub fn run_persistence(
    mut storage: impl LogStorage,
    work: std_mpsc::Receiver<PersistWork>,
    snapshot_files: impl SnapshotFiles,
    events: mpsc::UnboundedSender<LoopEvent>,
    timings: Option<Arc<StageTimings>>,
) {
    let fatal = |reason: String| {
        let _ = events.send(LoopEvent::Fatal(reason));
    };
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
            let _ = events.send(LoopEvent::Persisted(tickets));
        }
        // The snapshot is complete and durable before the log behind it
        // goes.
        for step in &snapshots {
            match step {
                SnapshotStep::Complete(snapshot) => {
                    if let Err(reason) = complete_snapshot(&mut storage, &snapshot_files, snapshot)
                    {
                        fatal(reason);
                        return;
                    }
                }
                SnapshotStep::Discard(temp_dir) => snapshot_files.discard(temp_dir),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use raftwood_raft::{
        Entry, EntryPayload, HardState, PersistRequest, PersistTicket, SnapshotMeta,
    };

    use super::*;

    struct NoSnapshots;

    impl SnapshotFiles for NoSnapshots {
        fn finish(&self, _temp_dir: &Path, meta: &SnapshotMeta) -> Result<(), String> {
            panic!("no snapshot expected, got {}", meta.index)
        }
        fn discard(&self, temp_dir: &Path) {
            panic!("no snapshot expected, got {}", temp_dir.display())
        }
    }

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
        fn compact(&mut self, _snapshot: &SnapshotMeta) -> Result<(), String> {
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
        let (events, mut reports) = mpsc::unbounded_channel();
        let timings = std::sync::Arc::new(StageTimings::new());
        let thread_timings = timings.clone();
        let count = requests.len();
        let thread = std::thread::spawn(move || {
            run_persistence(storage, receiver, NoSnapshots, events, Some(thread_timings));
        });
        let mut after_each = Vec::new();
        for request in requests {
            sender.send(request).unwrap();
            match reports.blocking_recv() {
                Some(LoopEvent::Persisted(_)) => {}
                other => panic!("expected tickets, got {other:?}"),
            }
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
