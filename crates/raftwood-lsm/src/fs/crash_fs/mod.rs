//! [`FileSystem`] in memory, with a model of what a power cut keeps.
//!
//! Each file is an inode holding its content as the process sees it plus how
//! much of that content is durable. Each directory is an inode holding two
//! entry sets: the visible one and the one last made durable by `sync_dir`.
//! [`CrashFs::crash`] throws away whatever is not durable (according to a
//! [`CrashMode`]), invalidates every open handle and releases every lock, so
//! a test can then "reboot" by reopening the database on the same `CrashFs`.
//!
//! By concern: this file holds `CrashFs` (its fault controls and the
//! `FileSystem` operations); `node.rs` the inodes; `state.rs` the state
//! under the lock (lookup, fault checks, the crash itself); `tear.rs` how a
//! torn write damages a file; `handles.rs` open files and locks;
//! `tests.rs` the model's tests.
//!
//! The model, operation by operation:
//! - `append` changes only the visible content; `sync_data` makes the file's
//!   whole current content durable (it does not make its directory entry
//!   durable), and so does `sync_file` on its path.
//! - `zero_extend` gives a file a tail of zeros after its appended bytes;
//!   appends then overwrite the tail from its start. The tail is durable
//!   after the next sync; a crash keeps the durable tail's zeros wherever
//!   the unsynced appends that overwrote them are lost (or torn).
//! - `create_file`, `create_dir_all`, `rename`, `remove_file` and
//!   `hard_link` change only the visible entry sets; `sync_dir(parent)` makes
//!   the parent's current entry set durable. A crash reverts every directory
//!   to its last synced entry set, so a created file whose directory was
//!   never synced disappears even if its data was synced, an unsynced rename
//!   is undone, and an unsynced removal reappears with its durable content.
//! - `create_file` on an existing file truncates that inode in place (hard
//!   links see it); the truncation becomes durable with the next `sync_data`.
//! - Paths are normalised: `/db/x`, `db/x` and `/db/./x` name the same file.
//!
//! Fault injection: `fail_after_operations`, `crash_after_operations`,
//! `set_fail_writes` and `set_fail_syncs` make mutating operations return
//! `Error::Io` deterministically. Mutating operations are `append`,
//! `zero_extend`, `sync_data`, `create_file`, `create_dir_all`, `rename`, `remove_file`,
//! `hard_link`, `sync_dir` and `sync_file`; only successful ones are counted by
//! [`CrashFs::operation_count`]. `lock_file` and the raw test helpers are not
//! mutating operations: they never fail by injection and are not counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};
use crate::error::{Error, Result};

mod handles;
mod node;
mod state;
mod tear;
#[cfg(test)]
mod tests;

use handles::*;
use node::*;
use state::*;
use tear::*;

/// What a crash keeps of the data that was not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power cut: every byte appended since a file's last `sync_data` is
    /// lost, and every directory reverts to its last synced entry set.
    DropUnsynced,
    /// Power cut during writeback: for each file, a random prefix of the
    /// bytes appended since its last `sync_data` survives, and the last few
    /// surviving bytes may be garbled (random or zero-filled). Directories
    /// revert to their last synced entry sets. The same seed and the same
    /// history give the same result.
    TornTail {
        /// Seeds the choices made for every file.
        seed: u64,
    },
    /// Process crash: the page cache survives, so every visible byte and
    /// directory entry is kept. Handles and locks are still invalidated.
    KeepUnsynced,
    /// Power cut during writeback with no order among a file's blocks:
    /// each 512-byte block of the bytes written since the last sync that
    /// overwrote the durable zero tail survives or not on its own (a lost
    /// block reads as zeros), so a later block can survive an earlier one;
    /// of the bytes past the durable size, a random prefix survives (the
    /// new size is committed after the data, as ext4's ordered mode does).
    /// A file truncated since its last sync is torn as in `TornTail`.
    TornBlocks {
        /// Seeds the choices made for every file.
        seed: u64,
    },
}

/// The unit in which [`CrashMode::TornBlocks`] keeps or loses bytes.
const TORN_BLOCK_BYTES: usize = 512;

/// An in-memory [`FileSystem`] that models crashes. Clones share the same
/// state, so a test keeps one clone and hands another to the engine.
#[derive(Clone, Default)]
pub struct CrashFs {
    state: Arc<Mutex<State>>,
}

type InodeId = u64;

/// The root directory is created with the filesystem and never removed.
const ROOT_INODE: InodeId = 0;

/// At most this many trailing bytes of a torn tail are garbled.
const MAX_GARBLED_TAIL_BYTES: usize = 32;

impl CrashFs {
    /// An empty filesystem holding only the root directory.
    pub fn new() -> CrashFs {
        CrashFs::default()
    }

    /// Simulates a crash (see [`CrashMode`]) and the reboot after it: every
    /// open handle becomes invalid, every lock is released and every
    /// injected fault is cleared.
    pub fn crash(&self, mode: CrashMode) {
        self.state.lock().crash(mode);
    }

    /// Successful mutating operations so far (see the module documentation
    /// for which operations count).
    pub fn operation_count(&self) -> u64 {
        self.state.lock().operation_count
    }

    /// The next `operations` mutating operations succeed; the one after them
    /// fails once with `Error::Io`, and later ones succeed again. Models a
    /// transient I/O error: the engine must fail-stop by itself.
    pub fn fail_after_operations(&self, operations: u64) {
        let mut state = self.state.lock();
        state.faults.fail_once_at_count = Some(state.operation_count + operations);
    }

    /// The next `operations` mutating operations succeed; every one after
    /// them fails with `Error::Io` until [`CrashFs::crash`]: the process
    /// "died" there. A crash test runs a workload under this, then crashes,
    /// reopens and checks what survived.
    pub fn crash_after_operations(&self, operations: u64) {
        let mut state = self.state.lock();
        state.faults.dead_from_count = Some(state.operation_count + operations);
    }

    /// While set, every `append` fails with `Error::Io`.
    pub fn set_fail_writes(&self, fail: bool) {
        self.state.lock().faults.fail_writes = fail;
    }

    /// While set, every `sync_data` and `sync_dir` fails with `Error::Io`.
    pub fn set_fail_syncs(&self, fail: bool) {
        self.state.lock().faults.fail_syncs = fail;
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults = Faults::default();
    }

    /// The visible content of a file (with any zero tail), or `None` if
    /// `path` is not a file.
    pub fn read_raw(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.lookup(&components(path).ok()?)?;
        state.file(inode).map(FileNode::visible)
    }

    /// The content of a file that would survive a `DropUnsynced` crash if
    /// its directory entry were durable, or `None` if `path` is not a file.
    pub fn durable_raw(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.lookup(&components(path).ok()?)?;
        state.file(inode).map(FileNode::durable_with_zeros)
    }

    /// The names a `DropUnsynced` crash now would leave in directory
    /// `path` (found through durable entries only), or `None` if the crash
    /// would leave no such directory.
    pub fn durable_entries(&self, path: &Path) -> Option<Vec<String>> {
        let state = self.state.lock();
        let mut current = ROOT_INODE;
        for part in components(path).ok()? {
            current = *state.dir(current)?.durable.get(&part)?;
        }
        Some(state.dir(current)?.durable.keys().cloned().collect())
    }

    /// Sets a file's visible and durable content to `bytes`, creating the
    /// file (with a durable directory entry) if needed. The parent directory
    /// must exist. Not a mutating operation: never fails by injection.
    pub fn write_raw(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut state = self.state.lock();
        let (parent, name) = state.parent_and_name(path, "writing raw")?;
        let existing = state
            .dir(parent)
            .and_then(|dir| dir.visible.get(&name).copied());
        let inode = match existing {
            Some(inode) => inode,
            None => state.allocate(Node::File(FileNode::default())),
        };
        let file = state.file_mut(inode).ok_or_else(|| {
            io_error(
                format!("writing raw {}", path.display()),
                io::ErrorKind::IsADirectory,
                "is a directory",
            )
        })?;
        file.content = bytes.to_vec();
        file.zeroed_to = 0;
        file.make_durable();
        if let Some(dir) = state.dir_mut(parent) {
            dir.visible.insert(name.clone(), inode);
            dir.durable.insert(name, inode);
        }
        Ok(())
    }

    /// Flips bit `bit` (0..8) of byte `byte_offset` of a file, in both its
    /// visible content and, if the byte is durable, its durable content.
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) -> Result<()> {
        if bit >= 8 {
            return Err(Error::InvalidArgument(format!("bit {bit} is not in 0..8")));
        }
        let mut state = self.state.lock();
        let inode = state.lookup_file(path, "flipping a bit in")?;
        let file = state
            .file_mut(inode)
            .ok_or_else(|| not_found("flipping a bit in", path))?;
        let offset = usize::try_from(byte_offset).unwrap_or(usize::MAX);
        let mask = 1u8 << bit;
        if offset >= file.content.len() && offset < file.zeroed_to {
            return Err(Error::InvalidArgument(format!(
                "offset {byte_offset} of {} is in its zero-extended tail; use write_raw",
                path.display()
            )));
        }
        match file.content.get_mut(offset) {
            Some(byte) => *byte ^= mask,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "offset {byte_offset} is past the end of {} ({} bytes)",
                    path.display(),
                    file.content.len()
                )));
            }
        }
        // A byte below `durable_len` is shared with the durable content; a
        // truncated file's old durable bytes are separate.
        if let Some(byte) = file
            .truncated_durable
            .as_mut()
            .and_then(|old| old.get_mut(offset))
        {
            *byte ^= mask;
        }
        Ok(())
    }
}

impl fmt::Debug for CrashFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("CrashFs")
            .field("inodes", &state.nodes.len())
            .field("epoch", &state.epoch)
            .field("operation_count", &state.operation_count)
            .field("locks", &state.locks.len())
            .finish()
    }
}

impl FileSystem for CrashFs {
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let parts = components(path)?;
        let mut state = self.state.lock();
        state.mutate(
            OpKind::Namespace,
            || format!("creating directory {}", path.display()),
            |state| {
                let mut current = ROOT_INODE;
                for part in parts {
                    let existing = state
                        .dir(current)
                        .and_then(|dir| dir.visible.get(&part).copied());
                    current = match existing {
                        Some(inode) if state.dir(inode).is_some() => inode,
                        Some(_) => {
                            return Err(io_error(
                                format!("creating directory {}", path.display()),
                                io::ErrorKind::AlreadyExists,
                                "a file is in the way",
                            ));
                        }
                        None => {
                            let inode = state.allocate(Node::Dir(DirNode::default()));
                            state.link(current, part, inode);
                            inode
                        }
                    };
                }
                Ok(())
            },
        )
    }

    fn create_file(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let mut guard = self.state.lock();
        let (inode, epoch) = guard.mutate(
            OpKind::Namespace,
            || format!("creating {}", path.display()),
            |state| {
                let (parent, name) = state.parent_and_name(path, "creating")?;
                let existing = state
                    .dir(parent)
                    .and_then(|dir| dir.visible.get(&name).copied());
                let inode = match existing {
                    Some(inode) => {
                        let file = state.file_mut(inode).ok_or_else(|| {
                            io_error(
                                format!("creating {}", path.display()),
                                io::ErrorKind::IsADirectory,
                                "is a directory",
                            )
                        })?;
                        if file.truncated_durable.is_none()
                            && (file.durable_len > 0 || file.durable_zeroed_to > 0)
                        {
                            file.truncated_durable = Some(file.durable_with_zeros());
                        }
                        file.content.clear();
                        file.durable_len = 0;
                        file.zeroed_to = 0;
                        file.durable_zeroed_to = 0;
                        file.check_invariants();
                        inode
                    }
                    None => {
                        let inode = state.allocate(Node::File(FileNode::default()));
                        state.link(parent, name, inode);
                        inode
                    }
                };
                Ok((inode, state.epoch))
            },
        )?;
        drop(guard);
        Ok(Box::new(CrashWritableFile {
            state: Arc::clone(&self.state),
            inode,
            path: path.to_path_buf(),
            epoch,
            len: 0,
        }))
    }

    fn open_random_access(&self, path: &Path) -> Result<Arc<dyn RandomAccessFile>> {
        let state = self.state.lock();
        let inode = state.lookup_file(path, "opening")?;
        let size = state
            .file(inode)
            .map_or(0, |file| file.visible_len() as u64);
        Ok(Arc::new(CrashRandomAccessFile {
            state: Arc::clone(&self.state),
            inode,
            path: path.to_path_buf(),
            epoch: state.epoch,
            size,
        }))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.lookup_file(path, "reading")?;
        Ok(state.file(inode).map(FileNode::visible).unwrap_or_default())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let context = || format!("renaming {} to {}", from.display(), to.display());
        let mut state = self.state.lock();
        state.mutate(OpKind::Namespace, context, |state| {
            let from_parts = components(from)?;
            let inode = state
                .lookup(&from_parts)
                .ok_or_else(|| not_found("renaming", from))?;
            let moving_dir = state.dir(inode).is_some();
            if moving_dir && components(to)?.starts_with(&from_parts) {
                return Err(io_error(
                    context(),
                    io::ErrorKind::InvalidInput,
                    "a directory cannot move into itself",
                ));
            }
            let (from_parent, from_name) = state.parent_and_name(from, "renaming")?;
            let (to_parent, to_name) = state.parent_and_name(to, "renaming to")?;
            let target = state
                .dir(to_parent)
                .and_then(|dir| dir.visible.get(&to_name).copied());
            if let Some(target) = target {
                if target == inode {
                    // POSIX: renaming onto a link of itself does nothing.
                    return Ok(());
                }
                // Only a file replaces a file; a directory replaces nothing
                // here (POSIX allows an empty one; nothing needs it).
                if moving_dir || state.dir(target).is_some() {
                    return Err(io_error(
                        context(),
                        io::ErrorKind::AlreadyExists,
                        "the target exists and one of the two is a directory",
                    ));
                }
            }
            if let Some(dir) = state.dir_mut(from_parent) {
                let removed = dir.visible.remove(&from_name);
                debug_assert_eq!(removed, Some(inode));
            }
            state.link(to_parent, to_name, inode);
            Ok(())
        })
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let mut state = self.state.lock();
        state.mutate(
            OpKind::Namespace,
            || format!("removing directory {}", path.display()),
            |state| {
                let inode = state.lookup_dir(path, "removing directory")?;
                if state.dir(inode).is_some_and(|dir| !dir.visible.is_empty()) {
                    return Err(io_error(
                        format!("removing directory {}", path.display()),
                        io::ErrorKind::DirectoryNotEmpty,
                        "directory not empty",
                    ));
                }
                let (parent, name) = state.parent_and_name(path, "removing directory")?;
                if let Some(dir) = state.dir_mut(parent) {
                    let removed = dir.visible.remove(&name);
                    debug_assert_eq!(removed, Some(inode));
                }
                // As for a file: a durable entry may still name it until
                // the parent is synced.
                Ok(())
            },
        )
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut state = self.state.lock();
        state.mutate(
            OpKind::Namespace,
            || format!("removing {}", path.display()),
            |state| {
                let inode = state.lookup_file(path, "removing")?;
                let (parent, name) = state.parent_and_name(path, "removing")?;
                if let Some(dir) = state.dir_mut(parent) {
                    let removed = dir.visible.remove(&name);
                    debug_assert_eq!(removed, Some(inode));
                }
                // The inode stays: a durable entry or an open handle may
                // still refer to it. Crashes collect unreachable inodes.
                Ok(())
            },
        )
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let state = self.state.lock();
        let inode = state.lookup_dir(path, "listing")?;
        Ok(state
            .dir(inode)
            .map(|dir| dir.visible.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let parts = components(path)?;
        Ok(self.state.lock().lookup(&parts).is_some())
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let parts = components(path)?;
        let state = self.state.lock();
        Ok(state
            .lookup(&parts)
            .is_some_and(|inode| state.dir(inode).is_some()))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let mut state = self.state.lock();
        state.mutate(
            OpKind::Sync,
            || format!("syncing directory {}", path.display()),
            |state| {
                let inode = state.lookup_dir(path, "syncing directory")?;
                if let Some(dir) = state.dir_mut(inode) {
                    dir.durable = dir.visible.clone();
                }
                Ok(())
            },
        )
    }

    fn sync_file(&self, path: &Path) -> Result<()> {
        let mut state = self.state.lock();
        state.mutate(
            OpKind::Sync,
            || format!("syncing {}", path.display()),
            |state| {
                let inode = state.lookup_file(path, "syncing")?;
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("syncing", path))?;
                file.make_durable();
                Ok(())
            },
        )
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let context = || format!("linking {} to {}", from.display(), to.display());
        let mut state = self.state.lock();
        state.mutate(OpKind::Namespace, context, |state| {
            let inode = state.lookup_file(from, "linking")?;
            let (to_parent, to_name) = state.parent_and_name(to, "linking to")?;
            if state
                .dir(to_parent)
                .is_some_and(|dir| dir.visible.contains_key(&to_name))
            {
                return Err(io_error(
                    context(),
                    io::ErrorKind::AlreadyExists,
                    "target exists",
                ));
            }
            state.link(to_parent, to_name, inode);
            Ok(())
        })
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        let state = self.state.lock();
        let inode = state.lookup_file(path, "reading metadata of")?;
        Ok(state
            .file(inode)
            .map_or(0, |file| file.visible_len() as u64))
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let key = lock_key(path)?;
        let mut state = self.state.lock();
        if state.locks.contains_key(&key) {
            return Err(Error::Locked(path.parent().unwrap_or(path).to_path_buf()));
        }
        // Like `StdFs`, locking creates the lock file if needed.
        let (parent, name) = state.parent_and_name(path, "opening lock file")?;
        let existing = state
            .dir(parent)
            .and_then(|dir| dir.visible.get(&name).copied());
        match existing {
            Some(inode) if state.file(inode).is_none() => {
                return Err(io_error(
                    format!("opening lock file {}", path.display()),
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                ));
            }
            Some(_) => {}
            None => {
                let inode = state.allocate(Node::File(FileNode::default()));
                state.link(parent, name, inode);
            }
        }
        let lock_id = state.next_lock_id;
        state.next_lock_id += 1;
        state.locks.insert(key.clone(), lock_id);
        Ok(Box::new(CrashFileLock {
            state: Arc::clone(&self.state),
            key,
            lock_id,
        }))
    }
}
