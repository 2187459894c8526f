//! Taking a snapshot: a checkpoint of the state machine into a fresh
//! `<index>.tmp` directory, on the apply thread (the state machine's only
//! writer, so the checkpoint is consistent). Finishing it is the
//! persistence side's (`SnapshotStore::finish`), once the raft core has
//! compacted its log to it.

use std::path::PathBuf;

use raftwood_kv::KvStore;
use raftwood_raft::Index;

use super::SnapshotStore;
use crate::durable::remove_tree_synced;

/// Which checkpoint a snapshot is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The tables as flushed: hard links only.
    Flushed,
    /// Everything applied: the memtable is flushed first.
    FlushFirst,
}

/// Whether to take a snapshot after applying up to `last`, with the engine
/// durable up to `durable`, the last snapshot at `last_snapshot_index` and
/// `--snapshot-count` `count` (0: never).
///
/// Prefer a checkpoint of what the engine already flushed: it is only hard
/// links. A checkpoint of everything applied flushes the memtable first, on
/// the apply thread, holding up every apply behind it (about 185 ms for a
/// 64 MiB memtable under load, on every member at the same index). Only
/// when too little has been flushed for twice the count (a light load may
/// never fill a memtable) is the memtable flushed, so that the raft log
/// still gets compacted.
pub fn checkpoint_due(
    last: Index,
    durable: Index,
    last_snapshot_index: Index,
    count: u64,
) -> Option<Checkpoint> {
    if count == 0 || last < last_snapshot_index + count {
        None
    } else if durable >= last_snapshot_index + count / 2 {
        Some(Checkpoint::Flushed)
    } else if last >= last_snapshot_index + 2 * count {
        Some(Checkpoint::FlushFirst)
    } else {
        None
    }
}

/// A checkpoint taken, not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenSnapshot {
    /// The applied index the checkpoint holds.
    pub index: Index,
    /// The unfinished snapshot directory (`<index>.tmp`, named after the
    /// applied index when taking began).
    pub temp_dir: PathBuf,
}

/// Checkpoints `kv`, applied up to `applied`, into a fresh temp directory
/// of `snapshots`. With [`Checkpoint::FlushFirst`] the checkpoint holds
/// exactly `applied`; with [`Checkpoint::Flushed`], what was last flushed.
pub fn take(
    snapshots: &SnapshotStore,
    kv: &KvStore,
    applied: Index,
    checkpoint: Checkpoint,
) -> Result<TakenSnapshot, String> {
    let fs = snapshots.fs().as_ref();
    let temp_dir = snapshots.temp_path_of(applied);
    let io = |what: &str, e: raftwood_lsm::Error| format!("{what} {}: {e}", temp_dir.display());
    if fs.exists(&temp_dir).map_err(|e| io("looking for", e))? {
        remove_tree_synced(fs, &temp_dir).map_err(|e| io("clearing", e))?;
    }
    fs.create_dir_all(&temp_dir)
        .map_err(|e| io("creating", e))?;
    let durable_before = kv.durable_applied_index();
    let index = match checkpoint {
        Checkpoint::FlushFirst => kv.checkpoint(&temp_dir.join("kv")),
        Checkpoint::Flushed => kv.checkpoint_durable(&temp_dir.join("kv")),
    }
    .map_err(|e| format!("state machine checkpoint failed: {e}"))?;
    assert!(index <= applied, "a checkpoint holds nothing not applied");
    assert!(
        checkpoint == Checkpoint::FlushFirst || index >= durable_before,
        "a checkpoint of the flushed state holds at least what was durable"
    );
    Ok(TakenSnapshot { index, temp_dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_prefers_the_flushed_state_and_flushes_only_when_it_lags_too_far() {
        // Not yet due.
        assert_eq!(checkpoint_due(1_099, 1_099, 1_000, 100), None);
        assert_eq!(checkpoint_due(5_000, 5_000, 0, 0), None);
        // Due, and the engine flushed at least half a count since: links.
        assert_eq!(
            checkpoint_due(1_100, 1_050, 1_000, 100),
            Some(Checkpoint::Flushed)
        );
        // Due, but too little flushed: wait...
        assert_eq!(checkpoint_due(1_150, 1_049, 1_000, 100), None);
        // ...until twice the count, then flush.
        assert_eq!(
            checkpoint_due(1_200, 1_049, 1_000, 100),
            Some(Checkpoint::FlushFirst)
        );
    }
}
