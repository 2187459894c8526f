//! The layout of a member's data directory, and the steps that move
//! state-machine directories around durably.
//!
//! ```text
//! <data-dir>/member/identity          member and cluster id (refuses a foreign dir)
//! <data-dir>/member/raft/             the raft log (raftwood-log)
//! <data-dir>/member/kv-current        name of the live state-machine directory
//! <data-dir>/member/kv…/              the state machine (raftwood-kv on raftwood-lsm)
//! <data-dir>/member/snap/<index>/     snapshots: kv/ (a checkpoint) + raft-snapshot
//! <data-dir>/member/snap-incoming/    snapshots being received from the leader
//! ```
//!
//! Durability order when a received snapshot replaces the state machine:
//! its files are fsynced as they arrive; the directory is renamed to
//! `kv-<index>` and `member/` fsynced; then `kv-current` is replaced by
//! temp file + fsync + rename + fsync. A crash before the last rename
//! leaves the old state machine live (the raft core has not heard of the
//! snapshot yet, so it asks again); after it, the new one, whose durable
//! applied index is the snapshot's.

use std::path::{Path, PathBuf};

use raftwood_kv::{KvError, KvOptions, KvStore};
use raftwood_raft::SnapshotMeta;

use crate::snapshot::{SnapshotStore, sync_dir, write_file_synced};

const KV_CURRENT: &str = "kv-current";

/// A member's data directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    member: PathBuf,
}

impl StateDir {
    /// The layout under `data_dir`.
    pub fn new(data_dir: &Path) -> StateDir {
        StateDir {
            member: data_dir.join("member"),
        }
    }

    /// `member/identity`.
    pub fn identity(&self) -> PathBuf {
        self.member.join("identity")
    }

    /// `member/raft`.
    pub fn raft(&self) -> PathBuf {
        self.member.join("raft")
    }

    /// `member/snap-incoming`.
    pub fn incoming(&self) -> PathBuf {
        self.member.join("snap-incoming")
    }

    /// The local snapshots.
    pub fn snapshots(&self) -> std::io::Result<SnapshotStore> {
        SnapshotStore::open(self.member.join("snap"))
    }

    /// Where a snapshot at `index` is assembled before it is complete.
    pub fn snapshot_temp_dir(&self, index: u64) -> PathBuf {
        self.member.join("snap").join(format!("{index:016x}.tmp"))
    }

    /// The live state-machine directory.
    pub fn current_kv(&self) -> PathBuf {
        let name = std::fs::read_to_string(self.member.join(KV_CURRENT))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .unwrap_or_else(|| "kv".to_string());
        self.member.join(name)
    }

    /// Opens the live state machine.
    pub fn open_kv(&self) -> Result<KvStore, KvError> {
        KvStore::open(&self.current_kv(), KvOptions::default())
    }

    /// Makes the checkpoint at `source` the live state machine (see the
    /// module comment for the durability order) and opens it.
    pub fn install_kv(&self, source: &Path, index: u64) -> Result<KvStore, String> {
        let name = format!("kv-{index:016x}");
        let target = self.member.join(&name);
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| io("clearing old target", e))?;
        }
        std::fs::rename(source, &target).map_err(|e| io("moving the snapshot into place", e))?;
        sync_dir(&self.member).map_err(|e| io("syncing member/", e))?;
        let temp = self.member.join(format!("{KV_CURRENT}.tmp"));
        write_file_synced(&temp, name.as_bytes()).map_err(|e| io("writing kv-current", e))?;
        std::fs::rename(&temp, self.member.join(KV_CURRENT))
            .map_err(|e| io("replacing kv-current", e))?;
        sync_dir(&self.member).map_err(|e| io("syncing member/", e))?;
        KvStore::open(&target, KvOptions::default()).map_err(|e| e.to_string())
    }

    /// Deletes state-machine directories that are no longer live (left by
    /// snapshot installs). Called at start-up, before anything opens them.
    pub fn remove_unused_kv_dirs(&self) {
        let current = self.current_kv();
        let Ok(entries) = std::fs::read_dir(&self.member) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_kv_dir = name == "kv" || name.starts_with("kv-") && name != KV_CURRENT;
            if is_kv_dir && path != current && path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    /// Completes a snapshot whose state-machine checkpoint is in
    /// `temp_dir`: writes its meta file, makes everything durable and gives
    /// the directory its final name. Returns the final path.
    pub fn finish_snapshot(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<PathBuf, String> {
        let store = self.snapshots().map_err(|e| e.to_string())?;
        store.finish(temp_dir, meta)
    }
}
