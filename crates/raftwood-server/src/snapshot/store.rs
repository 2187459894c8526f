//! Local snapshots under `member/snap/<index as 16 hex digits>/`: finished
//! ones under their final name, unfinished ones as `<index>.tmp`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftwood_lsm::fs::FileSystem;
use raftwood_raft::SnapshotMeta;

use super::meta_file;
use crate::driver::SnapshotFiles;
use crate::durable::{FsResult, remove_tree_synced, write_file_synced};

/// How many finished snapshots are kept (the newest).
const SNAPSHOTS_KEPT: usize = 2;

/// Snapshots this member took.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

fn name_of(index: u64) -> String {
    let name = format!("{index:016x}");
    // `prune` and start-up tell finished snapshots by their names.
    debug_assert!(is_finished_name(&name), "{name}");
    name
}

/// A finished snapshot's directory name: 16 hex digits.
fn is_finished_name(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SnapshotStore {
    /// The store under `dir` on `fs` (created, durably, if missing).
    pub fn open(fs: Arc<dyn FileSystem>, dir: PathBuf) -> FsResult<SnapshotStore> {
        if !fs.is_dir(&dir)? {
            fs.create_dir_all(&dir)?;
            fs.sync_dir(crate::durable::parent_of(&dir))?;
        }
        Ok(SnapshotStore { fs, dir })
    }

    /// The filesystem the snapshots live on.
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// Deletes snapshots a crash interrupted (`*.tmp`). Start-up only.
    pub fn remove_leftovers(&self) -> FsResult<()> {
        for name in self.fs.list_dir(&self.dir)? {
            if name.ends_with(".tmp") {
                remove_tree_synced(self.fs.as_ref(), &self.dir.join(name))?;
            }
        }
        Ok(())
    }

    /// Where the snapshot at `index` lives once finished.
    pub fn path_of(&self, index: u64) -> PathBuf {
        self.dir.join(name_of(index))
    }

    /// Where the snapshot at `index` is assembled before it is finished.
    pub fn temp_path_of(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{}.tmp", name_of(index)))
    }

    /// Completes the snapshot `meta` whose state-machine checkpoint was
    /// written (durably) into `temp_dir`: writes the meta file, syncs, and
    /// gives the directory its final name, so a snapshot directory under
    /// its final name is always complete. Keeps the newest two.
    pub fn finish(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<PathBuf, String> {
        assert!(
            temp_dir.parent() == Some(self.dir.as_path()),
            "a snapshot is finished from a temp directory of its store"
        );
        assert!(
            temp_dir
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".tmp")),
            "only an unfinished snapshot is finished"
        );
        let fs = self.fs.as_ref();
        let io =
            |what: &str, e: raftwood_lsm::Error| format!("snapshot {}: {what}: {e}", meta.index);
        let meta_path = temp_dir.join(meta_file::META_FILE);
        write_file_synced(fs, &meta_path, &meta_file::encode(meta))
            .map_err(|e| io("writing meta", e))?;
        fs.sync_dir(temp_dir).map_err(|e| io("syncing", e))?;
        let path = self.path_of(meta.index);
        if fs
            .exists(&path)
            .map_err(|e| io("looking for an older copy", e))?
        {
            remove_tree_synced(fs, &path).map_err(|e| io("replacing", e))?;
        }
        fs.rename(temp_dir, &path).map_err(|e| io("renaming", e))?;
        fs.sync_dir(&self.dir)
            .map_err(|e| io("syncing the directory", e))?;
        self.prune(SNAPSHOTS_KEPT);
        Ok(path)
    }

    /// Deletes all but the `keep` newest finished snapshots (best effort:
    /// a leftover costs space, not correctness).
    fn prune(&self, keep: usize) {
        let Ok(names) = self.fs.list_dir(&self.dir) else {
            return;
        };
        let mut names: Vec<String> = names.into_iter().filter(|n| is_finished_name(n)).collect();
        names.sort();
        let excess = names.len().saturating_sub(keep);
        for name in names.into_iter().take(excess) {
            if let Err(error) = remove_tree_synced(self.fs.as_ref(), &self.dir.join(&name)) {
                tracing::warn!(%error, snapshot = %name, "an old snapshot was not deleted");
            }
        }
    }
}

impl SnapshotFiles for SnapshotStore {
    fn finish(&self, temp_dir: &Path, meta: &SnapshotMeta) -> Result<(), String> {
        SnapshotStore::finish(self, temp_dir, meta).map(|_| ())
    }

    fn discard(&self, temp_dir: &Path) {
        // Deletes a whole tree: only ever an unfinished snapshot of this
        // store, never a finished one.
        assert_eq!(temp_dir.parent(), Some(self.dir.as_path()));
        assert!(
            temp_dir
                .extension()
                .is_some_and(|extension| extension == "tmp"),
            "discarding {}",
            temp_dir.display()
        );
        if let Err(error) = remove_tree_synced(self.fs.as_ref(), temp_dir) {
            tracing::warn!(%error, dir = %temp_dir.display(), "an unused snapshot was not deleted");
        }
    }
}
