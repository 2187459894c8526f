//! The persistence thread: writes what the core asks to make durable and
//! syncs it, many requests per fsync (group commit).

use std::sync::mpsc as std_mpsc;

use raftwood_raft::{PersistRequest, PersistTicket};

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

/// Runs until `work` closes. Each round takes every request queued, writes
/// them all, syncs once and reports their tickets in order with
/// `done`. A storage error is fail-stop: it is reported with `fatal` and
/// the thread ends, so nothing after it is acknowledged.
pub fn run_persistence(
    mut storage: impl LogStorage,
    work: std_mpsc::Receiver<PersistWork>,
    mut finish_snapshot: impl FnMut(
        &std::path::Path,
        &raftwood_raft::SnapshotMeta,
    ) -> Result<(), String>,
    mut done: impl FnMut(Vec<PersistTicket>),
    fatal: impl FnOnce(String),
) {
    let mut tickets = Vec::new();
    let mut snapshots = Vec::new();
    while let Ok(first) = work.recv() {
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some(item) = next.take() {
            match item {
                PersistWork::Persist(request) => {
                    if result.is_ok() {
                        result = storage.write(&request);
                    }
                    tickets.push(request.ticket);
                }
                PersistWork::Snapshot { meta, temp_dir } => snapshots.push((meta, temp_dir)),
            }
            next = work.try_recv().ok();
        }
        if !tickets.is_empty() && result.is_ok() {
            result = storage.sync();
        }
        if let Err(error) = result {
            fatal(format!("raft log write failed: {error}"));
            return;
        }
        if !tickets.is_empty() {
            done(std::mem::take(&mut tickets));
        }
        // The snapshot is complete and durable before the log behind it
        // goes.
        for (meta, temp_dir) in snapshots.drain(..) {
            let result = finish_snapshot(&temp_dir, &meta).and_then(|()| storage.compact(&meta));
            if let Err(error) = result {
                fatal(format!("snapshot {} failed: {error}", meta.index));
                return;
            }
        }
    }
}
