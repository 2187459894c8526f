//! The filesystem's state under its one lock: the inode table, path
//! lookup, fault injection, and what a crash keeps.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    /// `append`, `zero_extend`.
    Write,
    /// `sync_data`, `sync_dir`.
    Sync,
    /// Directory-entry changes.
    Namespace,
}

#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Every append fails while set.
    pub(super) fail_writes: bool,
    /// Every `sync_data` and `sync_dir` fails while set.
    pub(super) fail_syncs: bool,
    /// The mutating operation attempted when `operation_count` equals this
    /// value fails, once.
    pub(super) fail_once_at_count: Option<u64>,
    /// Every mutating operation attempted once `operation_count` reaches this
    /// value fails, until the next crash: the process "died" there.
    pub(super) dead_from_count: Option<u64>,
}

#[derive(Debug)]
pub(super) struct State {
    /// Invariant: `ROOT_INODE` is present and is a directory.
    pub(super) nodes: BTreeMap<InodeId, Node>,
    pub(super) next_inode: InodeId,
    /// Incremented by every crash. Handles remember the epoch they were
    /// opened in and refuse to work in a later one.
    pub(super) epoch: u64,
    /// Held locks: normalised path to the id of the guard holding it.
    pub(super) locks: HashMap<String, u64>,
    pub(super) next_lock_id: u64,
    /// Successful mutating operations since the filesystem was created.
    pub(super) operation_count: u64,
    pub(super) faults: Faults,
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

pub(super) fn io_error(context: String, kind: io::ErrorKind, message: &str) -> Error {
    Error::io(
        context,
        io::Error::new(kind, format!("{message} (CrashFs)")),
    )
}

pub(super) fn not_found(what: &str, path: &Path) -> Error {
    io_error(
        format!("{what} {}", path.display()),
        io::ErrorKind::NotFound,
        "no such file or directory",
    )
}

pub(super) fn stale_handle(path: &Path) -> Error {
    io_error(
        format!("using a handle to {}", path.display()),
        io::ErrorKind::Other,
        "handle was opened before a crash",
    )
}

/// Splits a path into its normal components, resolving `.` and `..`. The
/// root is implicit, so relative and absolute paths name the same entries.
pub(super) fn components(path: &Path) -> Result<Vec<String>> {
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
pub(super) fn lock_key(path: &Path) -> Result<String> {
    Ok(components(path)?.join("/"))
}

impl State {
    pub(super) fn dir(&self, inode: InodeId) -> Option<&DirNode> {
        match self.nodes.get(&inode) {
            Some(Node::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    pub(super) fn dir_mut(&mut self, inode: InodeId) -> Option<&mut DirNode> {
        match self.nodes.get_mut(&inode) {
            Some(Node::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    pub(super) fn file(&self, inode: InodeId) -> Option<&FileNode> {
        match self.nodes.get(&inode) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    pub(super) fn file_mut(&mut self, inode: InodeId) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&inode) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    /// Follows visible entries from the root.
    pub(super) fn lookup(&self, parts: &[String]) -> Option<InodeId> {
        let mut current = ROOT_INODE;
        for part in parts {
            current = *self.dir(current)?.visible.get(part)?;
        }
        Some(current)
    }

    pub(super) fn lookup_file(&self, path: &Path, what: &str) -> Result<InodeId> {
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

    pub(super) fn lookup_dir(&self, path: &Path, what: &str) -> Result<InodeId> {
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
    pub(super) fn parent_and_name(&self, path: &Path, what: &str) -> Result<(InodeId, String)> {
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

    pub(super) fn allocate(&mut self, node: Node) -> InodeId {
        let inode = self.next_inode;
        self.next_inode += 1;
        let previous = self.nodes.insert(inode, node);
        debug_assert!(previous.is_none(), "inode ids are never reused");
        inode
    }

    /// Inserts a visible entry. The caller checked that `parent` is a
    /// directory.
    pub(super) fn link(&mut self, parent: InodeId, name: String, inode: InodeId) {
        debug_assert!(self.nodes.contains_key(&inode));
        if let Some(dir) = self.dir_mut(parent) {
            dir.visible.insert(name, inode);
        }
    }

    pub(super) fn check_faults(&mut self, kind: OpKind, context: &str) -> Result<()> {
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
    pub(super) fn mutate<T>(
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

    /// Asserts the model's invariants: the root is a directory, inode and
    /// lock ids were handed out, every entry (visible or durable) names an
    /// inode that still exists (only a crash collects inodes, and only
    /// those no entry reaches), and every file's own invariants. Checked
    /// after every crash, where inodes are collected (checking after every
    /// operation made the crash tests half as slow again).
    pub(super) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        debug_assert!(self.dir(ROOT_INODE).is_some(), "the root is a directory");
        debug_assert!(
            self.nodes
                .keys()
                .next_back()
                .is_none_or(|&last| last < self.next_inode)
        );
        debug_assert!(self.locks.values().all(|&id| id < self.next_lock_id));
        for node in self.nodes.values() {
            match node {
                Node::File(file) => file.check_invariants(),
                Node::Dir(dir) => debug_assert!(
                    dir.visible
                        .values()
                        .chain(dir.durable.values())
                        .all(|inode| self.nodes.contains_key(inode)),
                    "a directory entry names a collected inode"
                ),
            }
        }
    }

    pub(super) fn crash(&mut self, mode: CrashMode) {
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
        self.check_invariants();
    }

    /// Drops inodes no directory entry reaches (files created in unsynced
    /// directories, files whose removal was synced, ...).
    pub(super) fn collect_unreachable(&mut self) {
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
