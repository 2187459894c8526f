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
//! `kv-<index>`, its meta written beside it as `kv-<index>.raft-snapshot`
//! and `member/` fsynced; then `kv-current` is replaced by temp file +
//! fsync + rename + fsync. A crash before the last rename leaves the old
//! state machine live (the raft core has not heard of the snapshot yet, so
//! it asks again); after it, the new one, whose durable applied index is
//! the snapshot's — possibly ahead of the raft log, if the crash came
//! before the core persisted the snapshot point: start-up then resets the
//! log to the installed snapshot's meta (`recovery.rs`).

use std::path::{Path, PathBuf};

use raftwood_kv::{KvError, KvOptions, KvStore};
use raftwood_raft::SnapshotMeta;

use crate::durable::{replace_file, sync_dir, write_file_synced};
use crate::snapshot::{META_FILE, SnapshotStore};

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

    /// `member/snap`: where this member's snapshots live (what the
    /// transport streams to a follower).
    pub fn snapshot_root(&self) -> PathBuf {
        self.member.join("snap")
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

    /// Makes the snapshot received into `received` (a checkpoint in `kv/`
    /// and its `raft-snapshot` meta file) the live state machine (see the
    /// module comment for the durability order) and opens it. The meta is
    /// kept beside the state machine as `kv-<index>.raft-snapshot`, so a
    /// restart that finds the state machine ahead of the raft log (a crash
    /// before the core persisted the snapshot point) knows which log
    /// position and membership it stands for.
    pub fn install_kv(&self, received: &Path, index: u64) -> Result<KvStore, String> {
        let name = format!("kv-{index:016x}");
        let target = self.member.join(&name);
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let meta = std::fs::read(received.join(META_FILE))
            .map_err(|e| io("reading the snapshot's meta", e))?;
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| io("clearing old target", e))?;
        }
        std::fs::rename(received.join("kv"), &target)
            .map_err(|e| io("moving the snapshot into place", e))?;
        write_file_synced(&self.installed_meta_path(&target), &meta)
            .map_err(|e| io("writing the snapshot's meta", e))?;
        sync_dir(&self.member).map_err(|e| io("syncing member/", e))?;
        replace_file(&self.member.join(KV_CURRENT), name.as_bytes())
            .map_err(|e| io("replacing kv-current", e))?;
        KvStore::open(&target, KvOptions::default()).map_err(|e| e.to_string())
    }

    /// The snapshot the live state machine was installed from, if it came
    /// from a leader's snapshot.
    pub fn installed_snapshot(&self) -> Option<SnapshotMeta> {
        let bytes = std::fs::read(self.installed_meta_path(&self.current_kv())).ok()?;
        crate::snapshot::decode_meta(&bytes)
    }

    fn installed_meta_path(&self, kv_dir: &Path) -> PathBuf {
        let mut name = kv_dir.file_name().unwrap_or_default().to_os_string();
        name.push(".raft-snapshot");
        self.member.join(name)
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
            let is_kv = name == "kv" || name.starts_with("kv-") && name != KV_CURRENT;
            if !is_kv || path == current {
                continue;
            }
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            } else if path != self.installed_meta_path(&current) {
                let _ = std::fs::remove_file(&path);
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

impl crate::driver::SnapshotFiles for StateDir {
    fn finish(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<(), String> {
        self.finish_snapshot(temp_dir, meta).map(|_| ())
    }

    fn discard(&self, temp_dir: &Path) {
        if let Err(error) = std::fs::remove_dir_all(temp_dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, dir = %temp_dir.display(), "an unused snapshot was not deleted");
        }
    }
}
