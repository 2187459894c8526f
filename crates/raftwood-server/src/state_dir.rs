//! The layout of a member's data directory, all of it reached through the
//! storage seam (`raftwood_lsm::fs::FileSystem`).
//!
//! ```text
//! <data-dir>/member/identity          member and cluster id (refuses a foreign dir)
//! <data-dir>/member/incarnation       how many times the member started (16 hex digits)
//! <data-dir>/member/raft/             the raft log (raftwood-log)
//! <data-dir>/member/kv-current        name of the live state-machine directory
//! <data-dir>/member/kv…/              the state machine (raftwood-kv on raftwood-lsm)
//! <data-dir>/member/kv-<index>.raft-snapshot   meta of an installed snapshot
//! <data-dir>/member/snap/<index>/     snapshots: kv/ (a checkpoint) + raft-snapshot
//! <data-dir>/member/snap-incoming/    snapshots being received from the leader
//! ```
//!
//! Which state-machine directory is live is decided by `kv-current` alone
//! (`kv` when the file does not exist, as on a member that never installed
//! a snapshot). A `kv-current` that exists but cannot be read, or names
//! something that is not a directory here, stops the start-up with an
//! error: guessing could open an old state machine and delete the live
//! one. The steps that install a snapshot are in `snapshot/install.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftwood_kv::{KvOptions, KvStore};
use raftwood_lsm::fs::FileSystem;

use crate::durable::{FsResult, replace_file};

const KV_CURRENT: &str = "kv-current";
/// How many times the member has started, as 16 hex digits.
const INCARNATION: &str = "incarnation";
/// The live state machine's directory before any snapshot was installed.
const FIRST_KV: &str = "kv";

/// Why the live state machine cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// The filesystem refused.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The seam's error.
        source: raftwood_lsm::Error,
    },
    /// `incarnation` holds something that is not a count.
    #[error("{path} holds {found:?}, not a count of starts")]
    BadIncarnation {
        /// The `incarnation` file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
    /// `kv-current` holds something that names no state machine here.
    #[error(
        "{path} names {found:?}, which is not a state-machine directory here; refusing to guess which state machine is live"
    )]
    BadCurrent {
        /// The `kv-current` file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
}

/// A member's data directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    fs: Arc<dyn FileSystem>,
    member: PathBuf,
    /// How state machines here are opened (their filesystem is `fs`).
    kv_options: KvOptions,
}

impl StateDir {
    /// The layout under `data_dir`, on `fs`.
    pub fn new(fs: Arc<dyn FileSystem>, data_dir: &Path) -> StateDir {
        StateDir {
            fs,
            member: data_dir.join("member"),
            kv_options: KvOptions::default(),
        }
    }

    /// Opens state machines with `options` (the simulator's run their
    /// flushes inline, so that a run is a function of its seed).
    pub fn with_kv_options(mut self, options: KvOptions) -> StateDir {
        self.kv_options = options;
        self
    }

    /// The filesystem everything here lives on.
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// `member/`.
    pub fn member(&self) -> &Path {
        &self.member
    }

    /// `member/identity`.
    pub fn identity(&self) -> PathBuf {
        self.member.join("identity")
    }

    /// Counts one more start of the member, durably, and returns the
    /// count (1 on the first start). What a member numbers from it (its
    /// forwarded proposal batches) is above everything an earlier life
    /// numbered, whatever the wall clock says. A file that exists but does
    /// not hold a count is an error, never a fresh start at 1.
    pub fn next_incarnation(&self) -> Result<u64, StateDirError> {
        let path = self.member.join(INCARNATION);
        let previous = match self.read_small_file(&path)? {
            None => 0,
            Some(text) => {
                u64::from_str_radix(&text, 16).map_err(|_| StateDirError::BadIncarnation {
                    path: path.clone(),
                    found: text,
                })?
            }
        };
        let next = previous + 1;
        replace_file(self.fs.as_ref(), &path, format!("{next:016x}\n").as_bytes()).map_err(
            |source| StateDirError::Io {
                context: format!("writing {}", path.display()),
                source,
            },
        )?;
        Ok(next)
    }

    /// The trimmed text of the small file `path`, or `None` if it does not
    /// exist. Any other failure to read it is an error.
    fn read_small_file(&self, path: &Path) -> Result<Option<String>, StateDirError> {
        let io = |context: &str, source| StateDirError::Io {
            context: format!("{context} {}", path.display()),
            source,
        };
        if !self.fs.exists(path).map_err(|e| io("looking for", e))? {
            return Ok(None);
        }
        let bytes = self.fs.read_file(path).map_err(|e| io("reading", e))?;
        Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string()))
    }

    /// `member/raft`.
    pub fn raft(&self) -> PathBuf {
        self.member.join("raft")
    }

    /// `member/snap-incoming`.
    pub fn incoming(&self) -> PathBuf {
        self.member.join("snap-incoming")
    }

    /// `member/snap`: where this member's snapshots live (what the
    /// transport streams to a follower).
    pub fn snapshot_root(&self) -> PathBuf {
        self.member.join("snap")
    }

    /// The live state-machine directory, as `kv-current` names it.
    pub fn current_kv(&self) -> Result<PathBuf, StateDirError> {
        let path = self.member.join(KV_CURRENT);
        let Some(found) = self.read_small_file(&path)? else {
            return Ok(self.member.join(FIRST_KV));
        };
        let plausible = is_kv_dir_name(&found);
        let dir = self.member.join(&found);
        let is_dir = self.fs.is_dir(&dir).map_err(|source| StateDirError::Io {
            context: format!("checking {}", dir.display()),
            source,
        })?;
        if !plausible || !is_dir {
            return Err(StateDirError::BadCurrent { path, found });
        }
        Ok(dir)
    }

    /// Makes the state-machine directory `name` (under `member/`) the live
    /// one, durably: `kv-current` replaced by temp file, sync, rename,
    /// sync of `member/`.
    pub fn set_current_kv(&self, name: &str) -> FsResult<()> {
        assert!(
            is_kv_dir_name(name),
            "not a state-machine directory: {name}"
        );
        replace_file(
            self.fs.as_ref(),
            &self.member.join(KV_CURRENT),
            name.as_bytes(),
        )
    }

    /// Opens the state machine in `dir` on this directory's filesystem.
    pub fn open_kv_at(&self, dir: &Path) -> Result<KvStore, raftwood_kv::KvError> {
        let mut options = self.kv_options.clone();
        options.lsm.fs = Arc::clone(&self.fs);
        KvStore::open(dir, options)
    }

    /// Opens the state machine in `dir`, which must already be one (a
    /// received snapshot's checkpoint): a directory without a store is an
    /// error, not a new, empty store.
    pub fn open_existing_kv_at(&self, dir: &Path) -> Result<KvStore, raftwood_kv::KvError> {
        let mut options = self.kv_options.clone();
        options.lsm.fs = Arc::clone(&self.fs);
        options.lsm.create_if_missing = false;
        KvStore::open(dir, options)
    }

    /// Where the meta of the snapshot installed as `kv_dir` is kept:
    /// `kv-<index>.raft-snapshot` beside it.
    pub fn installed_meta_path(&self, kv_dir: &Path) -> PathBuf {
        assert_eq!(
            kv_dir.parent(),
            Some(self.member.as_path()),
            "state machines live in member/"
        );
        let mut name = kv_dir.file_name().unwrap_or_default().to_os_string();
        name.push(".raft-snapshot");
        self.member.join(name)
    }

    /// Deletes state-machine directories that are not `live` (left by
    /// snapshot installs), with their metas. Called at start-up, before
    /// anything opens them, with the directory [`StateDir::current_kv`]
    /// returned: nothing is deleted unless the live one is known.
    pub fn remove_unused_kv_dirs(&self, live: &Path) -> FsResult<()> {
        let Ok(names) = self.fs.list_dir(&self.member) else {
            return Ok(());
        };
        let live_meta = self.installed_meta_path(live);
        let mut removed = false;
        for name in names {
            let path = self.member.join(&name);
            let is_kv = is_kv_dir_name(&name) || is_installed_meta_name(&name);
            if !is_kv || path == live || path == live_meta {
                continue;
            }
            raftwood_lsm::fs::remove_dir_all(self.fs.as_ref(), &path)?;
            removed = true;
        }
        if removed {
            self.fs.sync_dir(&self.member)?;
        }
        Ok(())
    }
}

/// `kv` or `kv-<16 hex digits>`.
fn is_kv_dir_name(name: &str) -> bool {
    name == FIRST_KV
        || name
            .strip_prefix("kv-")
            .is_some_and(|index| index.len() == 16 && index.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `kv-<16 hex digits>.raft-snapshot`.
fn is_installed_meta_name(name: &str) -> bool {
    name.strip_suffix(".raft-snapshot")
        .is_some_and(|dir| dir != FIRST_KV && is_kv_dir_name(dir))
}

#[cfg(test)]
mod tests {
    use raftwood_lsm::fs::CrashFs;

    use super::*;

    fn dirs() -> StateDir {
        let fs = Arc::new(CrashFs::new());
        fs.create_dir_all(Path::new("/data/member/kv")).unwrap();
        StateDir::new(fs, Path::new("/data"))
    }

    #[test]
    fn without_kv_current_the_first_directory_is_live() {
        assert_eq!(dirs().current_kv().unwrap(), Path::new("/data/member/kv"));
    }

    #[test]
    fn kv_current_names_the_live_directory_and_a_bad_one_is_refused() {
        let dirs = dirs();
        let installed = "kv-00000000000000ff";
        dirs.fs()
            .create_dir_all(&dirs.member().join(installed))
            .unwrap();
        dirs.set_current_kv(installed).unwrap();
        assert_eq!(dirs.current_kv().unwrap(), dirs.member().join(installed));

        // Damaged: names nothing here. No guessing, and nothing deleted.
        replace_file(
            dirs.fs().as_ref(),
            &dirs.member().join(KV_CURRENT),
            b"kv-\xff",
        )
        .unwrap();
        assert!(matches!(
            dirs.current_kv(),
            Err(StateDirError::BadCurrent { .. })
        ));
        replace_file(
            dirs.fs().as_ref(),
            &dirs.member().join(KV_CURRENT),
            b"kv-0000000000000100",
        )
        .unwrap();
        assert!(matches!(
            dirs.current_kv(),
            Err(StateDirError::BadCurrent { .. })
        ));
        assert!(dirs.fs().is_dir(&dirs.member().join(installed)).unwrap());
        assert!(dirs.fs().is_dir(&dirs.member().join("kv")).unwrap());
    }

    #[test]
    fn each_start_counts_one_more_incarnation_durably() {
        let fs = Arc::new(CrashFs::new());
        fs.create_dir_all(Path::new("/data/member")).unwrap();
        fs.sync_dir(Path::new("/data")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let dirs = StateDir::new(fs.clone(), Path::new("/data"));
        assert_eq!(dirs.next_incarnation().unwrap(), 1);
        assert_eq!(dirs.next_incarnation().unwrap(), 2);
        fs.crash(raftwood_lsm::fs::CrashMode::DropUnsynced);
        assert_eq!(
            dirs.next_incarnation().unwrap(),
            3,
            "the count survives a crash"
        );
        replace_file(
            fs.as_ref(),
            Path::new("/data/member/incarnation"),
            b"garbage",
        )
        .unwrap();
        assert!(matches!(
            dirs.next_incarnation(),
            Err(StateDirError::BadIncarnation { .. })
        ));
    }

    #[test]
    fn only_state_machines_other_than_the_live_one_are_removed() {
        let dirs = dirs();
        let fs = dirs.fs().clone();
        let live = dirs.member().join("kv-0000000000000010");
        fs.create_dir_all(&live).unwrap();
        fs.create_dir_all(&dirs.member().join("kv-0000000000000008"))
            .unwrap();
        fs.create_dir_all(&dirs.raft()).unwrap();
        for meta in [
            "kv-0000000000000010.raft-snapshot",
            "kv-0000000000000008.raft-snapshot",
        ] {
            drop(fs.create_file(&dirs.member().join(meta)).unwrap());
        }
        dirs.set_current_kv("kv-0000000000000010").unwrap();
        dirs.remove_unused_kv_dirs(&live).unwrap();
        let mut left = fs.list_dir(dirs.member()).unwrap();
        left.sort();
        assert_eq!(
            left,
            vec![
                "kv-0000000000000010",
                "kv-0000000000000010.raft-snapshot",
                "kv-current",
                "raft"
            ]
        );
    }
}
