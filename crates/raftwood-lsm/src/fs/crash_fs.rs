//! [`FileSystem`] in memory, with a model of what a power cut keeps.
//!
//! Each file is an inode holding its content as the process sees it plus how
//! much of that content is durable. Each directory is an inode holding two
//! entry sets: the visible one and the one last made durable by `sync_dir`.
//! [`CrashFs::crash`] throws away whatever is not durable (according to a
//! [`CrashMode`]), invalidates every open handle and releases every lock, so
//! a test can then "reboot" by reopening the database on the same `CrashFs`.
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

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Default)]
struct FileNode {
    /// What a process reads: everything appended since the file was created
    /// or last truncated.
    content: Vec<u8>,
    /// Length of the durable prefix of `content`.
    /// Invariant: `durable_len <= content.len()`, and `durable_len == 0`
    /// whenever `truncated_durable` is set.
    durable_len: usize,
    /// The durable content of a file truncated (by `create_file`) since its
    /// last sync: the disk still holds the old bytes, not a prefix of
    /// `content`. `None` when the durable content is `content[..durable_len]`.
    truncated_durable: Option<Vec<u8>>,
    /// The file's size as `zero_extend` left it: a process reads zeros from
    /// `content.len()` up to here. Appends overwrite them (the append
    /// position is `content.len()`).
    zeroed_to: usize,
    /// The same for the durable file: after a crash it reads zeros from the
    /// end of the surviving content up to here.
    /// Invariant: 0 whenever `truncated_durable` is set (the old zeros are
    /// part of its bytes).
    durable_zeroed_to: usize,
}

impl FileNode {
    fn durable(&self) -> &[u8] {
        match &self.truncated_durable {
            Some(old) => old,
            None => &self.content[..self.durable_len],
        }
    }

    /// What a crash would keep if the durable content is kept whole: the
    /// durable bytes, then the durable zero tail.
    fn durable_with_zeros(&self) -> Vec<u8> {
        let mut bytes = self.durable().to_vec();
        if self.durable_zeroed_to > bytes.len() {
            bytes.resize(self.durable_zeroed_to, 0);
        }
        bytes
    }

    /// The file's size as a process sees it.
    fn visible_len(&self) -> usize {
        self.content.len().max(self.zeroed_to)
    }

    /// The file as a process reads it: the content, then the zero tail.
    fn visible(&self) -> Vec<u8> {
        self.visible_range(0, self.visible_len())
    }

    /// Bytes `start..end` of the file as a process reads it.
    /// Precondition: `start <= end <= visible_len()`.
    fn visible_range(&self, start: usize, end: usize) -> Vec<u8> {
        debug_assert!(start <= end && end <= self.visible_len());
        let mut bytes = Vec::with_capacity(end - start);
        let from = start.min(self.content.len());
        let to = end.min(self.content.len());
        bytes.extend_from_slice(&self.content[from..to]);
        bytes.resize(end - start, 0);
        bytes
    }

    /// Makes everything a process reads durable: content and zero tail.
    fn make_durable(&mut self) {
        self.truncated_durable = None;
        self.durable_len = self.content.len();
        self.durable_zeroed_to = self.zeroed_to;
        self.check_invariants();
    }

    fn check_invariants(&self) {
        debug_assert!(self.durable_len <= self.content.len());
        debug_assert!(self.truncated_durable.is_none() || self.durable_len == 0);
        debug_assert!(self.truncated_durable.is_none() || self.durable_zeroed_to == 0);
    }
}

#[derive(Debug, Default)]
struct DirNode {
    /// Entries a process sees.
    visible: BTreeMap<String, InodeId>,
    /// Entries as of the last `sync_dir`: what a crash reverts to.
    durable: BTreeMap<String, InodeId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    /// `append`, `zero_extend`.
    Write,
    /// `sync_data`, `sync_dir`.
    Sync,
    /// Directory-entry changes.
    Namespace,
}

#[derive(Debug, Default)]
struct Faults {
    /// Every append fails while set.
    fail_writes: bool,
    /// Every `sync_data` and `sync_dir` fails while set.
    fail_syncs: bool,
    /// The mutating operation attempted when `operation_count` equals this
    /// value fails, once.
    fail_once_at_count: Option<u64>,
    /// Every mutating operation attempted once `operation_count` reaches this
    /// value fails, until the next crash: the process "died" there.
    dead_from_count: Option<u64>,
}

#[derive(Debug)]
struct State {
    /// Invariant: `ROOT_INODE` is present and is a directory.
    nodes: BTreeMap<InodeId, Node>,
    next_inode: InodeId,
    /// Incremented by every crash. Handles remember the epoch they were
    /// opened in and refuse to work in a later one.
    epoch: u64,
    /// Held locks: normalised path to the id of the guard holding it.
    locks: HashMap<String, u64>,
    next_lock_id: u64,
    /// Successful mutating operations since the filesystem was created.
    operation_count: u64,
    faults: Faults,
}

impl Default for State {
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT_INODE, Node::Dir(DirNode::default()));
        State {
            nodes,
            next_inode: ROOT_INODE + 1,
            epoch: 0,
            locks: HashMap::new(),
            next_lock_id: 0,
            operation_count: 0,
            faults: Faults::default(),
        }
    }
}

fn io_error(context: String, kind: io::ErrorKind, message: &str) -> Error {
    Error::io(
        context,
        io::Error::new(kind, format!("{message} (CrashFs)")),
    )
}

fn not_found(what: &str, path: &Path) -> Error {
    io_error(
        format!("{what} {}", path.display()),
        io::ErrorKind::NotFound,
        "no such file or directory",
    )
}

fn stale_handle(path: &Path) -> Error {
    io_error(
        format!("using a handle to {}", path.display()),
        io::ErrorKind::Other,
        "handle was opened before a crash",
    )
}

/// Splits a path into its normal components, resolving `.` and `..`. The
/// root is implicit, so relative and absolute paths name the same entries.
fn components(path: &Path) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(name) => match name.to_str() {
                Some(name) => parts.push(name.to_string()),
                None => {
                    return Err(io_error(
                        format!("resolving {}", path.display()),
                        io::ErrorKind::InvalidInput,
                        "path is not UTF-8",
                    ));
                }
            },
        }
    }
    Ok(parts)
}

/// The key under which a path's lock is held.
fn lock_key(path: &Path) -> Result<String> {
    Ok(components(path)?.join("/"))
}

impl State {
    fn dir(&self, inode: InodeId) -> Option<&DirNode> {
        match self.nodes.get(&inode) {
            Some(Node::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    fn dir_mut(&mut self, inode: InodeId) -> Option<&mut DirNode> {
        match self.nodes.get_mut(&inode) {
            Some(Node::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    fn file(&self, inode: InodeId) -> Option<&FileNode> {
        match self.nodes.get(&inode) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    fn file_mut(&mut self, inode: InodeId) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&inode) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    /// Follows visible entries from the root.
    fn lookup(&self, parts: &[String]) -> Option<InodeId> {
        let mut current = ROOT_INODE;
        for part in parts {
            current = *self.dir(current)?.visible.get(part)?;
        }
        Some(current)
    }

    fn lookup_file(&self, path: &Path, what: &str) -> Result<InodeId> {
        let inode = self
            .lookup(&components(path)?)
            .ok_or_else(|| not_found(what, path))?;
        match self.nodes.get(&inode) {
            Some(Node::File(_)) => Ok(inode),
            _ => Err(io_error(
                format!("{what} {}", path.display()),
                io::ErrorKind::IsADirectory,
                "is a directory",
            )),
        }
    }

    fn lookup_dir(&self, path: &Path, what: &str) -> Result<InodeId> {
        let inode = self
            .lookup(&components(path)?)
            .ok_or_else(|| not_found(what, path))?;
        match self.nodes.get(&inode) {
            Some(Node::Dir(_)) => Ok(inode),
            _ => Err(io_error(
                format!("{what} {}", path.display()),
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
        }
    }

    /// The parent directory's inode and the final name of `path`.
    fn parent_and_name(&self, path: &Path, what: &str) -> Result<(InodeId, String)> {
        let mut parts = components(path)?;
        let Some(name) = parts.pop() else {
            return Err(io_error(
                format!("{what} {}", path.display()),
                io::ErrorKind::InvalidInput,
                "the root has no parent",
            ));
        };
        let parent = self.lookup(&parts).ok_or_else(|| not_found(what, path))?;
        if self.dir(parent).is_none() {
            return Err(io_error(
                format!("{what} {}", path.display()),
                io::ErrorKind::NotADirectory,
                "parent is not a directory",
            ));
        }
        Ok((parent, name))
    }

    fn allocate(&mut self, node: Node) -> InodeId {
        let inode = self.next_inode;
        self.next_inode += 1;
        let previous = self.nodes.insert(inode, node);
        debug_assert!(previous.is_none(), "inode ids are never reused");
        inode
    }

    /// Inserts a visible entry. The caller checked that `parent` is a
    /// directory.
    fn link(&mut self, parent: InodeId, name: String, inode: InodeId) {
        debug_assert!(self.nodes.contains_key(&inode));
        if let Some(dir) = self.dir_mut(parent) {
            dir.visible.insert(name, inode);
        }
    }

    fn check_faults(&mut self, kind: OpKind, context: &str) -> Result<()> {
        let count = self.operation_count;
        let injected = |message: &str| {
            Err(io_error(
                context.to_string(),
                io::ErrorKind::Other,
                &format!("injected fault: {message} (operation {count})"),
            ))
        };
        if self
            .faults
            .dead_from_count
            .is_some_and(|dead| count >= dead)
        {
            return injected("the process died");
        }
        if self.faults.fail_once_at_count == Some(count) {
            self.faults.fail_once_at_count = None;
            return injected("one-shot failure");
        }
        if kind == OpKind::Write && self.faults.fail_writes {
            return injected("writes fail");
        }
        if kind == OpKind::Sync && self.faults.fail_syncs {
            return injected("syncs fail");
        }
        Ok(())
    }

    /// Runs a mutating operation: checks injected faults first and counts
    /// the operation only if it succeeds.
    fn mutate<T>(
        &mut self,
        kind: OpKind,
        context: impl FnOnce() -> String,
        op: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        self.check_faults(kind, &context())?;
        let out = op(self)?;
        self.operation_count += 1;
        Ok(out)
    }

    fn crash(&mut self, mode: CrashMode) {
        let mut rng = match mode {
            CrashMode::TornTail { seed } | CrashMode::TornBlocks { seed } => {
                Some(SplitMix64::new(seed))
            }
            CrashMode::DropUnsynced | CrashMode::KeepUnsynced => None,
        };
        // BTreeMap iteration order makes the random choices deterministic.
        for node in self.nodes.values_mut() {
            match node {
                Node::Dir(dir) => {
                    if mode == CrashMode::KeepUnsynced {
                        dir.durable = dir.visible.clone();
                    } else {
                        dir.visible = dir.durable.clone();
                    }
                }
                Node::File(file) => {
                    match (mode, rng.as_mut()) {
                        (CrashMode::KeepUnsynced, _) => {}
                        (CrashMode::TornTail { .. }, Some(rng)) => tear_file(file, rng),
                        (CrashMode::TornBlocks { .. }, Some(rng)) => {
                            if file.truncated_durable.is_some() {
                                tear_file(file, rng);
                            } else {
                                tear_blocks(file, rng);
                            }
                        }
                        _ => {
                            let durable = file.durable().to_vec();
                            file.content = durable;
                        }
                    }
                    // Only the durable zero tail is on disk (a process
                    // crash keeps every byte).
                    if mode != CrashMode::KeepUnsynced {
                        file.zeroed_to = file.durable_zeroed_to;
                    }
                    // Whatever survived is on disk now.
                    file.make_durable();
                }
            }
        }
        self.collect_unreachable();
        self.epoch += 1;
        self.locks.clear();
        // The machine rebooted: the faults belonged to the process that died.
        self.faults = Faults::default();
    }

    /// Drops inodes no directory entry reaches (files created in unsynced
    /// directories, files whose removal was synced, ...).
    fn collect_unreachable(&mut self) {
        let mut reachable = BTreeSet::new();
        let mut pending = vec![ROOT_INODE];
        while let Some(inode) = pending.pop() {
            if !reachable.insert(inode) {
                continue;
            }
            if let Some(dir) = self.dir(inode) {
                debug_assert_eq!(dir.visible, dir.durable, "called right after a crash");
                pending.extend(dir.visible.values().copied());
            }
        }
        self.nodes.retain(|inode, _| reachable.contains(inode));
        assert!(
            self.dir(ROOT_INODE).is_some(),
            "the root survives every crash"
        );
    }
}

/// Applies [`CrashMode::TornTail`] to one file.
fn tear_file(file: &mut FileNode, rng: &mut SplitMix64) {
    let durable_prefix_len = match file.truncated_durable.take() {
        // A truncation not yet synced either reached the disk (then a torn
        // prefix of the new content survives) or did not (the old bytes do).
        Some(old) => {
            if rng.next_below(2) == 0 {
                file.content = old;
                return;
            }
            0
        }
        None => file.durable_len,
    };
    let unsynced_len = file.content.len() - durable_prefix_len;
    let surviving_unsynced_len = rng.next_below(unsynced_len as u64 + 1) as usize;
    file.content
        .truncate(durable_prefix_len + surviving_unsynced_len);
    if surviving_unsynced_len > 0 && rng.next_below(2) == 0 {
        // Only unsynced bytes may be garbled: synced ones are on disk.
        let garbled_len =
            1 + rng.next_below(surviving_unsynced_len.min(MAX_GARBLED_TAIL_BYTES) as u64) as usize;
        let start = file.content.len() - garbled_len;
        assert!(start >= durable_prefix_len);
        let zero_fill = rng.next_below(2) == 0;
        for byte in &mut file.content[start..] {
            *byte = if zero_fill { 0 } else { rng.next_u64() as u8 };
        }
    }
}

/// Applies [`CrashMode::TornBlocks`] to a file that was not truncated
/// since its last sync.
fn tear_blocks(file: &mut FileNode, rng: &mut SplitMix64) {
    debug_assert!(file.truncated_durable.is_none());
    let durable_len = file.durable_len;
    let written = file.content.len();
    // Bytes past the durable zero tail grew the file: only a prefix of
    // them can survive. Bytes over the tail survive block by block.
    let overwrite_end = written.min(file.durable_zeroed_to.max(durable_len));
    let grown = written - overwrite_end;
    let surviving_grown = rng.next_below(grown as u64 + 1) as usize;
    let mut start = durable_len;
    while start < overwrite_end {
        let end = ((start / TORN_BLOCK_BYTES + 1) * TORN_BLOCK_BYTES).min(overwrite_end);
        if rng.next_below(2) == 0 {
            file.content[start..end].fill(0);
        }
        start = end;
    }
    file.content.truncate(overwrite_end + surviving_grown);
}

/// A tiny deterministic generator (SplitMix64): the library must not depend
/// on `rand`, and crash choices only need to be reproducible, not strong.
#[derive(Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; `bound` must be positive. The modulo bias is
    /// irrelevant for crash modelling.
    fn next_below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        self.next_u64() % bound.max(1)
    }
}

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

struct CrashWritableFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    path: PathBuf,
    /// The epoch the file was opened in.
    epoch: u64,
    /// Bytes appended through this handle.
    len: u64,
}

impl fmt::Debug for CrashWritableFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashWritableFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("epoch", &self.epoch)
            .field("len", &self.len)
            .finish()
    }
}

impl WritableFile for CrashWritableFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        state.mutate(
            OpKind::Write,
            || format!("appending to {}", path.display()),
            |state| {
                // The inode outlives a removal of its entry (POSIX unlink
                // semantics); only a crash collects it, and that changes the
                // epoch.
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("appending to", path))?;
                file.content.extend_from_slice(data);
                Ok(())
            },
        )?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        state.mutate(
            OpKind::Sync,
            || format!("syncing {}", path.display()),
            |state| {
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("syncing", path))?;
                file.make_durable();
                Ok(())
            },
        )
    }

    fn zero_extend(&mut self, len: u64) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        let len = usize::try_from(len).map_err(|_| {
            Error::InvalidArgument(format!(
                "cannot zero-extend {} to {len} bytes",
                path.display()
            ))
        })?;
        state.mutate(
            OpKind::Write,
            || format!("zero-extending {}", path.display()),
            |state| {
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("zero-extending", path))?;
                file.zeroed_to = file.zeroed_to.max(len);
                Ok(())
            },
        )
    }

    fn len(&self) -> u64 {
        self.len
    }
}

struct CrashRandomAccessFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    path: PathBuf,
    epoch: u64,
    /// Size when opened, like `StdFs`.
    size: u64,
}

impl fmt::Debug for CrashRandomAccessFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashRandomAccessFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("epoch", &self.epoch)
            .field("size", &self.size)
            .finish()
    }
}

impl RandomAccessFile for CrashRandomAccessFile {
    fn read_exact_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let file = state
            .file(self.inode)
            .ok_or_else(|| not_found("reading", &self.path))?;
        let end = offset.checked_add(len as u64);
        let limit = self.size.min(file.visible_len() as u64);
        match end {
            Some(end) if end <= limit => {
                // Both bounds fit in usize: they are at most the file's size.
                Ok(file.visible_range(offset as usize, end as usize))
            }
            _ => Err(Error::corruption(
                self.path.display().to_string(),
                format!("read of {len} bytes at offset {offset} is past the end ({limit} bytes)"),
            )),
        }
    }

    fn size(&self) -> u64 {
        self.size
    }
}

struct CrashFileLock {
    state: Arc<Mutex<State>>,
    key: String,
    /// Distinguishes this guard from a later lock of the same path taken
    /// after a crash released this one.
    lock_id: u64,
}

impl fmt::Debug for CrashFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashFileLock")
            .field("key", &self.key)
            .field("lock_id", &self.lock_id)
            .finish()
    }
}

impl FileLock for CrashFileLock {}

impl Drop for CrashFileLock {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        if state.locks.get(&self.key) == Some(&self.lock_id) {
            state.locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> &Path {
        Path::new(path)
    }

    /// A filesystem with a durable `/db` directory.
    fn fs_with_db() -> CrashFs {
        let fs = CrashFs::new();
        fs.create_dir_all(p("/db")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        fs
    }

    fn write_file(fs: &CrashFs, path: &str, data: &[u8], sync: bool) -> Box<dyn WritableFile> {
        let mut file = fs.create_file(p(path)).unwrap();
        file.append(data).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
        file
    }

    #[test]
    fn synced_data_survives_and_unsynced_data_does_not() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"synced", true);
        file.append(b"-unsynced").unwrap();
        fs.sync_dir(p("/db")).unwrap();
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced-unsynced");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced");
        assert_eq!(fs.file_size(p("/db/a")).unwrap(), 6);
    }

    #[test]
    fn appends_overwrite_a_zero_tail_and_a_crash_keeps_its_durable_zeros() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"head", false);
        file.zero_extend(12).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(p("/db")).unwrap();
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");
        assert_eq!(fs.file_size(p("/db/a")).unwrap(), 12);
        assert_eq!(file.len(), 4, "zeros do not move the append position");

        // An append overwrites the tail from its start; extending past the
        // tail grows the file.
        file.append(b"-body-").unwrap();
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head-body-\0\0");
        let reader = fs.open_random_access(p("/db/a")).unwrap();
        assert_eq!(reader.size(), 12);
        assert_eq!(reader.read_exact_at(8, 4).unwrap(), b"y-\0\0");
        assert_eq!(
            reader.read_exact_at(11, 1).unwrap(),
            b"\0",
            "a read inside the tail"
        );
        assert!(reader.read_exact_at(9, 4).is_err());

        // Unsynced appends over durable zeros are lost, the zeros stay; an
        // unsynced extension of the tail is lost too.
        file.zero_extend(40).unwrap();
        assert_eq!(fs.file_size(p("/db/a")).unwrap(), 40);
        assert_eq!(fs.durable_raw(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");

        // After a sync the appended bytes are durable and so is the tail.
        let mut file = fs.create_file(p("/db/b")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        file.zero_extend(8).unwrap();
        file.append(b"abc").unwrap();
        file.sync_data().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");

        // Re-creating a file truncates its tail; until the next sync the
        // old bytes, zeros included, are what the disk holds.
        let file = fs.create_file(p("/db/b")).unwrap();
        assert_eq!(fs.file_size(p("/db/b")).unwrap(), 0);
        assert_eq!(fs.durable_raw(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");
        drop(file);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");
    }

    #[test]
    fn a_torn_tail_over_durable_zeros_is_a_prefix_then_zeros() {
        for seed in 0..64 {
            let fs = fs_with_db();
            let mut file = write_file(&fs, "/db/a", b"head", false);
            file.zero_extend(64).unwrap();
            file.sync_data().unwrap();
            fs.sync_dir(p("/db")).unwrap();
            file.append(&[0xaa; 20]).unwrap();
            fs.crash(CrashMode::TornTail { seed });
            let after = fs.read_file(p("/db/a")).unwrap();
            assert_eq!(
                after.len(),
                64,
                "seed {seed}: the durable tail keeps the size"
            );
            assert_eq!(&after[..4], b"head", "seed {seed}");
            // Past the garbled bytes (at most 20 here), zeros up to the end.
            assert!(
                after[24..].iter().all(|&b| b == 0),
                "seed {seed}: {after:?}"
            );
        }
    }

    #[test]
    fn torn_blocks_keep_or_lose_each_block_over_the_zero_tail_and_a_prefix_past_it() {
        let mut holes_before_kept = 0;
        for seed in 0..64 {
            let fs = fs_with_db();
            let mut file = write_file(&fs, "/db/a", b"synced", false);
            file.zero_extend(2048).unwrap();
            file.sync_data().unwrap();
            fs.sync_dir(p("/db")).unwrap();
            // Three and a half blocks over the zero tail, then 600 bytes
            // past it (the file grows).
            file.append(&[0xaa; 2042 + 600]).unwrap();
            fs.crash(CrashMode::TornBlocks { seed });
            let after = fs.read_file(p("/db/a")).unwrap();
            assert_eq!(&after[..6], b"synced", "seed {seed}: synced bytes stay");
            assert!(after.len() >= 2048, "seed {seed}: the durable size stays");
            let mut lost_one = false;
            for (i, block) in after[..2048].chunks(512).enumerate() {
                let new = if i == 0 { &block[6..] } else { block };
                let kept = new.iter().all(|&b| b == 0xaa);
                let lost = new.iter().all(|&b| b == 0);
                assert!(kept || lost, "seed {seed}: block {i} is whole or gone");
                holes_before_kept += usize::from(lost_one && kept);
                lost_one |= lost;
            }
            // Past the durable size only a prefix, all new bytes.
            assert!(after[2048..].iter().all(|&b| b == 0xaa), "seed {seed}");
        }
        assert!(holes_before_kept > 5, "{holes_before_kept}");
    }

    #[test]
    fn zero_extend_is_a_write_for_fault_injection() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"x", true);
        fs.set_fail_writes(true);
        assert!(file.zero_extend(100).is_err());
        fs.clear_faults();
        assert_eq!(fs.file_size(p("/db/a")).unwrap(), 1);
        assert!(fs.flip_bit(p("/db/a"), 0, 0).is_ok());
        file.zero_extend(100).unwrap();
        assert!(
            fs.flip_bit(p("/db/a"), 50, 0).is_err(),
            "a bit in the zero tail"
        );
    }

    #[test]
    fn sync_file_makes_content_written_through_another_handle_durable() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"synced", true);
        fs.sync_dir(p("/db")).unwrap();
        file.append(b"-page-cache").unwrap();
        drop(file);
        fs.sync_file(p("/db/a")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced-page-cache");

        // It is a sync: it fails while syncs fail, and a missing file or a
        // directory is an error.
        fs.set_fail_syncs(true);
        assert!(fs.sync_file(p("/db/a")).is_err());
        fs.clear_faults();
        assert!(fs.sync_file(p("/db/missing")).is_err());
        assert!(fs.sync_file(p("/db")).is_err());
    }

    #[test]
    fn keep_unsynced_models_a_process_crash() {
        let fs = fs_with_db();
        let _file = write_file(&fs, "/db/a", b"page cache", false);
        fs.crash(CrashMode::KeepUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"page cache");
        // What survived a process crash is now durable.
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"page cache");
    }

    #[test]
    fn a_new_entry_needs_sync_dir_even_if_its_data_was_synced() {
        let fs = fs_with_db();
        let _file = write_file(&fs, "/db/a", b"data", true);
        assert!(fs.exists(p("/db/a")).unwrap());
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(p("/db/a")).unwrap());
        assert_eq!(fs.list_dir(p("/db")).unwrap(), Vec::<String>::new());

        let _file = write_file(&fs, "/db/b", b"data", true);
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"data");
    }

    #[test]
    fn an_unsynced_directory_loses_its_whole_subtree() {
        let fs = CrashFs::new();
        fs.create_dir_all(p("/db/sub")).unwrap();
        let _file = write_file(&fs, "/db/sub/a", b"data", true);
        fs.sync_dir(p("/db/sub")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        // The root was never synced, so `/db` itself is not durable.
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(p("/db")).unwrap());
    }

    #[test]
    fn an_unsynced_removal_reappears_with_its_durable_content() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"durable", true);
        fs.sync_dir(p("/db")).unwrap();
        file.append(b"+lost").unwrap();
        fs.remove_file(p("/db/a")).unwrap();
        assert!(!fs.exists(p("/db/a")).unwrap());
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"durable");

        fs.remove_file(p("/db/a")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(p("/db/a")).unwrap());
    }

    #[test]
    fn rename_is_atomic_and_needs_sync_dir() {
        let fs = fs_with_db();
        let _old = write_file(&fs, "/db/CURRENT", b"old", true);
        fs.sync_dir(p("/db")).unwrap();
        let _new = write_file(&fs, "/db/CURRENT.tmp", b"new", true);
        fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
        assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"new");
        assert!(!fs.exists(p("/db/CURRENT.tmp")).unwrap());

        // Not synced: the rename is undone as a whole.
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"old");
        assert!(!fs.exists(p("/db/CURRENT.tmp")).unwrap());

        let _new = write_file(&fs, "/db/CURRENT.tmp", b"new", true);
        fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"new");
        assert_eq!(fs.list_dir(p("/db")).unwrap(), vec!["CURRENT".to_string()]);
    }

    #[test]
    fn a_renamed_directory_keeps_its_files_and_needs_both_parents_synced() {
        let fs = fs_with_db();
        fs.create_dir_all(p("/db/snap.tmp/kv")).unwrap();
        let _file = write_file(&fs, "/db/snap.tmp/kv/a", b"table", true);
        fs.sync_dir(p("/db/snap.tmp/kv")).unwrap();
        fs.sync_dir(p("/db/snap.tmp")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.rename(p("/db/snap.tmp"), p("/db/snap")).unwrap();
        assert_eq!(fs.read_file(p("/db/snap/kv/a")).unwrap(), b"table");
        assert!(!fs.exists(p("/db/snap.tmp")).unwrap());
        // Not synced: the old name comes back.
        fs.crash(CrashMode::DropUnsynced);
        assert!(fs.exists(p("/db/snap.tmp/kv/a")).unwrap());
        assert!(!fs.exists(p("/db/snap")).unwrap());

        fs.rename(p("/db/snap.tmp"), p("/db/snap")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/snap/kv/a")).unwrap(), b"table");
        assert_eq!(fs.list_dir(p("/db")).unwrap(), vec!["snap".to_string()]);
    }

    #[test]
    fn a_directory_moves_neither_into_itself_nor_over_another_entry() {
        let fs = fs_with_db();
        fs.create_dir_all(p("/db/a/b")).unwrap();
        fs.create_dir_all(p("/db/c")).unwrap();
        let _file = write_file(&fs, "/db/f", b"x", false);
        assert!(fs.rename(p("/db/a"), p("/db/a/b/a")).is_err());
        assert!(fs.rename(p("/db/a"), p("/db/c")).is_err());
        assert!(fs.rename(p("/db/a"), p("/db/f")).is_err());
        assert!(fs.rename(p("/db/f"), p("/db/c")).is_err());
        assert!(fs.exists(p("/db/a/b")).unwrap());
    }

    #[test]
    fn only_an_empty_directory_is_removed_and_the_removal_needs_sync_dir() {
        let fs = fs_with_db();
        fs.create_dir_all(p("/db/d")).unwrap();
        let _file = write_file(&fs, "/db/d/a", b"x", true);
        fs.sync_dir(p("/db/d")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        assert!(fs.remove_dir(p("/db/d")).is_err(), "not empty");
        fs.remove_file(p("/db/d/a")).unwrap();
        fs.remove_dir(p("/db/d")).unwrap();
        assert!(!fs.exists(p("/db/d")).unwrap());
        fs.crash(CrashMode::DropUnsynced);
        assert!(fs.exists(p("/db/d/a")).unwrap(), "nothing was synced");

        super::super::remove_dir_all(&fs, p("/db/d")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(p("/db/d")).unwrap());
    }

    #[test]
    fn rename_moves_the_inode_so_an_open_handle_follows_it() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"one", false);
        fs.rename(p("/db/a"), p("/db/b")).unwrap();
        file.append(b"two").unwrap();
        assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"onetwo");
        assert!(fs.read_file(p("/db/a")).is_err());
    }

    #[test]
    fn torn_tail_keeps_synced_bytes_and_a_prefix_of_the_rest() {
        let synced = b"synced-part|".to_vec();
        let unsynced: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut lengths = BTreeSet::new();
        let mut garbled = 0;
        for seed in 0..200 {
            let fs = fs_with_db();
            let mut file = write_file(&fs, "/db/log", &synced, true);
            fs.sync_dir(p("/db")).unwrap();
            file.append(&unsynced).unwrap();
            fs.crash(CrashMode::TornTail { seed });
            let after = fs.read_file(p("/db/log")).unwrap();
            assert!(after.len() >= synced.len() && after.len() <= synced.len() + unsynced.len());
            assert_eq!(&after[..synced.len()], &synced[..], "seed {seed}");
            let tail = &after[synced.len()..];
            // All but at most the last MAX_GARBLED_TAIL_BYTES are an exact prefix.
            let exact = tail.len().saturating_sub(MAX_GARBLED_TAIL_BYTES);
            assert_eq!(&tail[..exact], &unsynced[..exact], "seed {seed}");
            if tail != &unsynced[..tail.len()] {
                garbled += 1;
            }
            lengths.insert(tail.len());

            // Determinism: the same history and seed give the same bytes.
            let again = fs_with_db();
            let mut file = write_file(&again, "/db/log", &synced, true);
            again.sync_dir(p("/db")).unwrap();
            file.append(&unsynced).unwrap();
            again.crash(CrashMode::TornTail { seed });
            assert_eq!(again.read_file(p("/db/log")).unwrap(), after);
        }
        assert!(lengths.len() > 50, "torn lengths vary: {}", lengths.len());
        assert!(garbled > 10, "some tails are garbled: {garbled}");
    }

    #[test]
    fn hard_links_share_content_and_survive_removal_of_the_original() {
        let fs = fs_with_db();
        fs.create_dir_all(p("/checkpoint")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        let mut file = write_file(&fs, "/db/a", b"shared", true);
        fs.sync_dir(p("/db")).unwrap();
        fs.hard_link(p("/db/a"), p("/checkpoint/a")).unwrap();
        file.append(b"+more").unwrap();
        assert_eq!(fs.read_file(p("/checkpoint/a")).unwrap(), b"shared+more");
        assert!(fs.hard_link(p("/db/a"), p("/checkpoint/a")).is_err());

        fs.sync_dir(p("/checkpoint")).unwrap();
        fs.remove_file(p("/db/a")).unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(p("/db/a")).unwrap());
        assert_eq!(fs.read_file(p("/checkpoint/a")).unwrap(), b"shared");
    }

    #[test]
    fn create_file_truncates_in_place_and_the_truncation_needs_a_sync() {
        let fs = fs_with_db();
        let _file = write_file(&fs, "/db/a", b"old content", true);
        fs.sync_dir(p("/db")).unwrap();
        let mut file = write_file(&fs, "/db/a", b"new", false);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"new");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"old content");
        assert!(file.append(b"x").is_err());

        let mut file = write_file(&fs, "/db/a", b"new", true);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"new");
        assert!(file.sync_data().is_err());
    }

    #[test]
    fn handles_die_at_a_crash() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"abc", true);
        fs.sync_dir(p("/db")).unwrap();
        let reader = fs.open_random_access(p("/db/a")).unwrap();
        assert_eq!(reader.read_exact_at(1, 2).unwrap(), b"bc");
        assert!(reader.read_exact_at(2, 2).unwrap_err().is_corruption());
        fs.crash(CrashMode::DropUnsynced);
        assert!(matches!(reader.read_exact_at(0, 1), Err(Error::Io { .. })));
        assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
        assert!(matches!(file.sync_data(), Err(Error::Io { .. })));
    }

    #[test]
    fn write_and_sync_faults_fail_until_cleared() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"ok", false);
        fs.set_fail_writes(true);
        assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
        assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
        file.sync_data().unwrap();
        fs.set_fail_writes(false);
        fs.set_fail_syncs(true);
        file.append(b"!").unwrap();
        assert!(matches!(file.sync_data(), Err(Error::Io { .. })));
        assert!(matches!(fs.sync_dir(p("/db")), Err(Error::Io { .. })));
        fs.clear_faults();
        file.sync_data().unwrap();
        assert_eq!(fs.durable_raw(p("/db/a")).unwrap(), b"ok!");
        assert_eq!(file.len(), 3);
    }

    #[test]
    fn fail_after_operations_fails_exactly_one_operation() {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"", false);
        let before = fs.operation_count();
        fs.fail_after_operations(2);
        file.append(b"1").unwrap();
        file.append(b"2").unwrap();
        assert!(file.append(b"3").is_err());
        file.append(b"4").unwrap();
        assert_eq!(fs.read_raw(p("/db/a")).unwrap(), b"124");
        // The failed operation is not counted.
        assert_eq!(fs.operation_count(), before + 3);
    }

    #[test]
    fn crash_after_operations_kills_every_later_mutation_until_the_crash() {
        let fs = fs_with_db();
        fs.crash_after_operations(3);
        let mut file = fs.create_file(p("/db/a")).unwrap();
        file.append(b"data").unwrap();
        file.sync_data().unwrap();
        assert!(fs.sync_dir(p("/db")).is_err());
        assert!(fs.create_file(p("/db/b")).is_err());
        assert!(fs.rename(p("/db/a"), p("/db/c")).is_err());
        // Reads still work: the test inspects the dead process's view.
        assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"data");
        fs.crash(CrashMode::DropUnsynced);
        // The directory sync never happened, so the file is gone; the new
        // "process" may mutate again.
        assert!(!fs.exists(p("/db/a")).unwrap());
        let _file = write_file(&fs, "/db/a", b"again", true);
    }

    #[test]
    fn operation_counts_are_deterministic() {
        let run = |fs: &CrashFs| {
            let mut file = write_file(fs, "/db/a", b"x", true);
            file.append(b"y").unwrap();
            fs.sync_dir(p("/db")).unwrap();
            fs.rename(p("/db/a"), p("/db/b")).unwrap();
            fs.operation_count()
        };
        let first = run(&fs_with_db());
        assert_eq!(first, run(&fs_with_db()));
        // create_dir_all + sync_dir(/) + create + append + sync + append + sync_dir + rename
        assert_eq!(first, 8);
    }

    #[test]
    fn locks_are_exclusive_and_released_on_drop_or_crash() {
        let fs = fs_with_db();
        let lock = fs.lock_file(p("/db/LOCK")).unwrap();
        assert!(matches!(fs.lock_file(p("/db/LOCK")), Err(Error::Locked(_))));
        assert!(matches!(
            fs.lock_file(p("db/./LOCK")),
            Err(Error::Locked(_))
        ));
        drop(lock);
        let stale = fs.lock_file(p("/db/LOCK")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        fs.create_dir_all(p("/db")).unwrap();
        let fresh = fs.lock_file(p("/db/LOCK")).unwrap();
        // Dropping the guard from before the crash must not release the new lock.
        drop(stale);
        assert!(matches!(fs.lock_file(p("/db/LOCK")), Err(Error::Locked(_))));
        drop(fresh);
        fs.lock_file(p("/db/LOCK")).unwrap();
    }

    #[test]
    fn raw_helpers_corrupt_durably() {
        let fs = fs_with_db();
        fs.write_raw(p("/db/raw"), &[0b0000_0001, 0xff]).unwrap();
        fs.flip_bit(p("/db/raw"), 0, 0).unwrap();
        fs.flip_bit(p("/db/raw"), 1, 7).unwrap();
        assert!(fs.flip_bit(p("/db/raw"), 2, 0).is_err());
        assert!(fs.flip_bit(p("/db/raw"), 0, 8).is_err());
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_raw(p("/db/raw")).unwrap(), vec![0, 0x7f]);
        assert_eq!(fs.read_raw(p("/db/missing")), None);
    }

    #[test]
    fn clones_share_state_and_paths_are_normalised() {
        let fs = fs_with_db();
        let other = fs.clone();
        let _file = write_file(&other, "db/x", b"1", false);
        assert!(fs.exists(p("/db/x")).unwrap());
        assert!(fs.is_dir(p("/db/..")).unwrap());
        assert!(!fs.is_dir(p("/db/x")).unwrap());
        assert!(fs.list_dir(p("/db/x")).is_err());
        assert!(fs.create_file(p("/missing/x")).is_err());
    }
}
