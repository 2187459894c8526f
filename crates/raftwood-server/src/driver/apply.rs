//! The apply thread: hands committed entries to the state machine in log
//! order and answers the proposers waiting for them.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use parking_lot::Mutex;
use raftwood_kv::{CommittedEntry, KvStore};
use raftwood_raft::{Entry, EntryPayload, Index};
use tokio::sync::watch;

use super::waiters::Waiters;

/// Runs until `work` closes. After each batch the applied index is
/// published on `applied` and reported with `on_applied`. A storage error
/// is fail-stop (`fatal`).
pub fn run_apply(
    kv: Arc<KvStore>,
    work: std_mpsc::Receiver<Vec<Entry>>,
    waiters: Arc<Mutex<Waiters>>,
    applied: watch::Sender<Index>,
    mut on_applied: impl FnMut(Index),
    fatal: impl FnOnce(String),
) {
    while let Ok(mut entries) = work.recv() {
        // Take whatever else is queued: one state-machine batch for all.
        while let Ok(more) = work.try_recv() {
            entries.extend(more);
        }
        let Some(last) = entries.last().map(|e| e.index) else {
            continue;
        };
        let committed: Vec<CommittedEntry<'_>> = entries
            .iter()
            .map(|entry| CommittedEntry {
                index: entry.index,
                request: match &entry.payload {
                    EntryPayload::Command(data) => Some(data.as_ref()),
                    EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
                },
            })
            .collect();
        let outcomes = match kv.apply(&committed) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                fatal(format!("state machine apply failed: {error}"));
                return;
            }
        };
        debug_assert_eq!(outcomes.len(), entries.len());
        {
            let mut waiters = waiters.lock();
            for (entry, outcome) in entries.iter().zip(outcomes) {
                waiters.complete(entry.index, entry.term, move || outcome);
            }
        }
        applied.send_replace(last);
        on_applied(last);
    }
}
