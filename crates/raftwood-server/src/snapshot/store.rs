//! Local snapshots under `member/snap/<index as 16 hex digits>/`.

use std::path::{Path, PathBuf};

use raftwood_raft::SnapshotMeta;

use super::meta_file;
use crate::durable::{sync_dir, write_file_synced};

/// Snapshots this member took or received.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

fn name_of(index: u64) -> String {
    format!("{index:016x}")
}

impl SnapshotStore {
    /// The store under `dir` (created if missing).
    pub fn open(dir: PathBuf) -> std::io::Result<SnapshotStore> {
        std::fs::create_dir_all(&dir)?;
        Ok(SnapshotStore { dir })
    }

    /// Deletes snapshots a crash interrupted (`*.tmp`). Start-up only.
    pub fn remove_leftovers(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    /// Where the snapshot at `index` lives.
    pub fn path_of(&self, index: u64) -> PathBuf {
        self.dir.join(name_of(index))
    }

    /// Completes the snapshot `meta` whose state-machine checkpoint was
    /// written (durably) into `temp_dir`: writes the meta file, fsyncs, and
    /// gives the directory its final name, so a snapshot directory under
    /// its final name is always complete. Keeps the two newest.
    pub fn finish(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<PathBuf, String> {
        let io = |what: &str, e: std::io::Error| format!("snapshot {}: {what}: {e}", meta.index);
        write_file_synced(
            &temp_dir.join(meta_file::META_FILE),
            &meta_file::encode(meta),
        )
        .map_err(|e| io("writing meta", e))?;
        sync_dir(temp_dir).map_err(|e| io("syncing", e))?;
        let path = self.path_of(meta.index);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| io("replacing", e))?;
        }
        std::fs::rename(temp_dir, &path).map_err(|e| io("renaming", e))?;
        sync_dir(&self.dir).map_err(|e| io("syncing the directory", e))?;
        self.prune(2);
        Ok(path)
    }

    /// Deletes all but the `keep` newest snapshots (best effort: a leftover
    /// costs space, not correctness).
    fn prune(&self, keep: usize) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.len() == 16)
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(keep);
        for name in names.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(self.dir.join(name));
        }
    }
}
