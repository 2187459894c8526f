//! Installing a snapshot received from the leader as this member's state
//! machine, and finding, at start-up, which snapshot the live state
//! machine came from.
//!
//! Durability order: the received files are synced as the transfer
//! completes (`transport/snapshot_receive.rs`); the checkpoint is renamed
//! to `kv-<index>` and the received directory synced (so the old name is
//! gone before the new one counts), its meta written beside it as
//! `kv-<index>.raft-snapshot` and `member/` synced; then `kv-current` is
//! replaced (temp file, sync, rename, sync). A crash before the last
//! rename leaves the old state machine live (the raft core has not heard
//! of the snapshot yet, so it asks again); after it, the new one, whose
//! durable applied index is the snapshot's — possibly ahead of the raft
//! log, if the crash came before the core persisted the snapshot point:
//! start-up then resets the log to the installed snapshot's meta
//! (`recovery.rs`).

use std::path::Path;

use raftwood_kv::KvStore;
use raftwood_raft::{Index, SnapshotMeta};

use super::meta_file::{self, META_FILE};
use crate::durable::{remove_tree_synced, write_file_synced};
use crate::state_dir::StateDir;

/// Makes the snapshot received into `received` (a checkpoint in `kv/`
/// and its meta file) the live state machine, and opens it. The meta is
/// kept beside the state machine, so a restart that finds the state
/// machine ahead of the raft log knows which log position and membership
/// it stands for. `received` is gone afterwards.
pub fn install(dirs: &StateDir, received: &Path, index: Index) -> Result<KvStore, String> {
    let fs = dirs.fs().as_ref();
    let io =
        |what: &str, e: raftwood_lsm::Error| format!("installing snapshot {index}: {what}: {e}");
    let meta_bytes = fs
        .read_file(&received.join(META_FILE))
        .map_err(|e| io("reading its meta", e))?;
    let meta = meta_file::decode(&meta_bytes)
        .ok_or_else(|| format!("installing snapshot {index}: its meta is damaged"))?;
    if meta.index != index {
        return Err(format!(
            "installing snapshot {index}: its meta says index {}",
            meta.index
        ));
    }
    check_received_store(dirs, &received.join("kv"), index)?;
    let name = format!("kv-{index:016x}");
    let target = dirs.member().join(&name);
    if fs
        .exists(&target)
        .map_err(|e| io("looking for an older copy", e))?
    {
        // Left by an install that crashed before switching to it: never
        // the live one, which this index would not be asked for again.
        remove_tree_synced(fs, &target).map_err(|e| io("clearing an older copy", e))?;
    }
    fs.rename(&received.join("kv"), &target)
        .map_err(|e| io("moving it into place", e))?;
    // The old name must be durably gone before the new one counts: a
    // crash could otherwise leave the directory under both names, and the
    // start-up clean-up of `snap-incoming` would delete the live state
    // machine's files through the old one (found by the simulator).
    fs.sync_dir(received)
        .map_err(|e| io("syncing the received directory", e))?;
    write_file_synced(fs, &dirs.installed_meta_path(&target), &meta_bytes)
        .map_err(|e| io("writing its meta", e))?;
    fs.sync_dir(dirs.member())
        .map_err(|e| io("syncing member/", e))?;
    dirs.set_current_kv(&name)
        .map_err(|e| io("switching kv-current", e))?;
    if let Err(error) = remove_tree_synced(fs, received) {
        tracing::warn!(%error, "the received snapshot's directory was not deleted");
    }
    dirs.open_kv_at(&target).map_err(|e| e.to_string())
}

/// Refuses a received checkpoint that is not a store applied to `index`
/// at least, before anything switches to it: a transfer that lost files
/// must not become the live state machine (an empty one, with the engine
/// creating what it misses).
fn check_received_store(dirs: &StateDir, kv: &Path, index: Index) -> Result<(), String> {
    let files = || {
        dirs.fs()
            .list_dir(kv)
            .map(|names| names.join(" "))
            .unwrap_or_else(|e| format!("(unlisted: {e})"))
    };
    let store = dirs.open_existing_kv_at(kv).map_err(|e| {
        format!(
            "installing snapshot {index}: the received state machine does not open: {e} (files: {})",
            files()
        )
    })?;
    let applied = store.applied_index();
    if applied < index {
        return Err(format!(
            "installing snapshot {index}: the received state machine is applied only to {applied} (files: {})",
            files()
        ));
    }
    Ok(())
}

/// The snapshot the live state machine `live` was installed from, if it
/// came from a leader's snapshot and its meta reads back intact.
pub fn installed_snapshot(dirs: &StateDir, live: &Path) -> Option<SnapshotMeta> {
    let bytes = dirs.fs().read_file(&dirs.installed_meta_path(live)).ok()?;
    meta_file::decode(&bytes)
}
