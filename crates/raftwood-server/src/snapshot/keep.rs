//! Keeping the live state machine as a finished snapshot, where the
//! member's raft log starts at a snapshot point it holds no snapshot of: a
//! new cluster's bootstrap point, a snapshot just installed from the
//! leader, and a restart after an install that crashed before keeping it.
//! A leader can only send the snapshot it has, and a follower that needs
//! entries before its log's start can only be caught up by one: without
//! it, a member that came to lead caught no one up until its next
//! snapshot (found twice by the simulator, the second time by its
//! membership churn: a member added after such a crash never caught up).

use raftwood_kv::KvStore;
use raftwood_raft::SnapshotMeta;

use super::{Checkpoint, SnapshotStore, take};

/// Keeps `kv`, installed or bootstrapped at `meta`'s index and durable
/// there (its checkpoint is then only hard links), as the finished
/// snapshot `meta`. The store may hold more than `meta`'s index (a
/// leader's checkpoint may run past its snapshot's index): never less.
pub fn keep_live_store(
    snapshots: &SnapshotStore,
    kv: &KvStore,
    meta: &SnapshotMeta,
) -> Result<(), String> {
    let taken = take(snapshots, kv, kv.applied_index(), Checkpoint::Flushed)?;
    if taken.index < meta.index {
        return Err(format!(
            "snapshot {} cannot be kept: its store is durable only at {}",
            meta.index, taken.index
        ));
    }
    snapshots.finish(&taken.temp_dir, meta).map(|_| ())
}

/// [`keep_live_store`] unless `snapshots` already holds `meta`'s snapshot.
pub fn keep_live_store_if_missing(
    snapshots: &SnapshotStore,
    kv: &KvStore,
    meta: &SnapshotMeta,
) -> Result<(), String> {
    let path = snapshots.path_of(meta.index);
    let exists = snapshots
        .fs()
        .exists(&path)
        .map_err(|e| format!("looking for {}: {e}", path.display()))?;
    if exists {
        return Ok(());
    }
    keep_live_store(snapshots, kv, meta)
}
