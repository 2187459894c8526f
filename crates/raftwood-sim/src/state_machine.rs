//! A member's state machine: `raftwood_kv::KvStore` on the member's own
//! in-memory, crash-modelling filesystem (`raftwood_lsm::fs::CrashFs`),
//! and the snapshot images that carry a store from one member to another.
//!
//! Durability follows the server's design: the store runs without a WAL
//! (the raft log is the write-ahead log) and its applied index is durable
//! with its data, at each engine flush. A crash drops everything unsynced
//! (`CrashMode::DropUnsynced`); the store reopens at its durable applied
//! index and the member replays the committed log after it.
//!
//! Snapshots: when a member compacts its log at index `i`, it takes a
//! `KvStore::checkpoint` (which also flushes the live store, so the live
//! store is durable at `i` or later and a restart never needs the
//! compacted entries) and keeps the checkpoint's files as the snapshot's
//! data on the simulated raft disk (`SnapshotImage`, what a server keeps in
//! its snapshot directory and streams to followers). A member that
//! installs a snapshot from the leader replaces its store's files by the
//! image's, synced, and reopens: its store is then durable at exactly the
//! snapshot's index. Both happen inside one simulated event, so no crash
//! falls between the raft disk and the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use raftwood_kv::proto::etcdserverpb::Member;
use raftwood_kv::{ApplyOutcome, CommittedEntry, KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, CrashMode, FileSystem};
use raftwood_raft::{Index, NodeId, SnapshotMeta};
use raftwood_server::snapshot::{self, SnapshotStore};
use raftwood_server::state_dir::StateDir;

use crate::etcd;
use crate::model::{Key, KvOutput};

/// Where the live store lives in a member's filesystem.
const STORE_DIR: &str = "/kv";
/// Where checkpoints are taken (one fresh directory each).
const CHECKPOINT_DIR: &str = "/checkpoints";

/// The files of a store checkpoint: a snapshot's data. No files stands for
/// a new, empty store (the bootstrap snapshot at index 1 holds no data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotImage {
    /// (file name, content), by name.
    pub files: Vec<(String, Vec<u8>)>,
}

/// One member's store and the filesystem it lives on.
#[derive(Debug)]
pub struct MemberKv {
    fs: Arc<CrashFs>,
    /// `None` while the member is down (crashed, not yet restarted).
    /// Shared with the server-loop mode's apply side (which swaps in a
    /// store installed from a snapshot), which the simulator drops before a
    /// crash drops this.
    store: Option<Arc<ArcSwap<KvStore>>>,
    /// Checkpoints taken so far; names the next checkpoint directory.
    checkpoints_taken: u64,
}

impl Default for MemberKv {
    fn default() -> Self {
        MemberKv::new()
    }
}

/// The registry's record of simulated member `id`, as MemberAdd writes it
/// (its peer URL stands for an address; the simulator has no sockets).
pub fn registry_record(id: NodeId, is_learner: bool) -> Member {
    Member {
        id,
        name: format!("member-{id}"),
        peer_ur_ls: vec![format!("http://member-{id}.sim:2380")],
        client_ur_ls: Vec::new(),
        is_learner,
    }
}

fn io(what: &str, error: impl std::fmt::Display) -> String {
    format!("{what}: {error}")
}

impl MemberKv {
    /// An empty filesystem; the store is not open yet.
    pub fn new() -> MemberKv {
        MemberKv {
            fs: Arc::new(CrashFs::new()),
            store: None,
            checkpoints_taken: 0,
        }
    }

    fn options(&self) -> KvOptions {
        let mut options = KvOptions::default();
        options.lsm.fs = Arc::clone(&self.fs) as Arc<dyn FileSystem>;
        // Flushes and compactions inline: a run stays a function of its seed.
        options.lsm.background_threads = false;
        // Small memtables, so that some applies are flushed before a crash
        // and some are not: restarts replay from varied durable points.
        options.lsm.memtable_size_bytes = 16 << 10;
        options.lsm.block_cache_size_bytes = 1 << 20;
        options.lsm.max_open_tables = 64;
        options
    }

    /// Opens (or creates) the store from what is on the filesystem.
    pub fn open(&mut self) -> Result<(), String> {
        let store = KvStore::open(Path::new(STORE_DIR), self.options())
            .map_err(|e| io("opening the store", e))?;
        self.store = Some(Arc::new(ArcSwap::from_pointee(store)));
        Ok(())
    }

    /// The server's layout of this member's filesystem (the server-loop
    /// mode's): the state machine, its snapshots and the transfers in
    /// progress under `/member`, as `state_dir.rs` lays them out.
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(self.fs(), Path::new("/")).with_kv_options(self.options())
    }

    /// The server's snapshot store on this member's filesystem.
    pub fn snapshot_store(&self) -> Result<SnapshotStore, String> {
        SnapshotStore::open(self.fs(), self.state_dir().snapshot_root())
            .map_err(|e| io("opening the snapshot store", e))
    }

    /// What the server's start-up writes at a new cluster's first start
    /// (`bootstrap.rs`): the registry of the initial voters at the
    /// snapshot point `point`, kept as the member's first snapshot, so that
    /// a member added before any snapshot is taken can be sent one. Nothing
    /// for a joining member (no snapshot point) or a store already written.
    pub fn bootstrap_new_cluster(&self, point: &SnapshotMeta) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Err("bootstrapping a store that is not open".into());
        };
        let kv = store.load_full();
        if point.index == 0 || kv.applied_index() != 0 {
            return Ok(());
        }
        let members: Vec<Member> = point
            .conf_state
            .voters
            .iter()
            .map(|id| registry_record(*id, false))
            .collect();
        kv.bootstrap_members(&members, point.index)
            .map_err(|e| io("recording the initial members", e))?;
        snapshot::keep_live_store(&self.snapshot_store()?, &kv, point)
    }

    /// Keeps the live store as the snapshot `meta` unless it is there
    /// already, as the server's start-up does before it resets the log to
    /// a snapshot an install did not finish keeping.
    pub fn keep_live_store_if_missing(&self, meta: &SnapshotMeta) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Err("keeping a snapshot of a store that is not open".into());
        };
        snapshot::keep_live_store_if_missing(&self.snapshot_store()?, &store.load(), meta)
    }

    /// Opens the store as the server's start-up does (`bootstrap.rs`): the
    /// live state machine is the one `kv-current` names, older ones and
    /// unfinished snapshots and transfers are removed. Returns the meta of
    /// the snapshot the live store was installed from, if it was.
    pub fn open_server_layout(&mut self) -> Result<Option<SnapshotMeta>, String> {
        let dirs = self.state_dir();
        // What the server's identity check does first: `member/` exists,
        // durably, before anything is written inside it.
        let fs = self.fs();
        fs.create_dir_all(dirs.member())
            .and_then(|()| fs.sync_dir(Path::new("/")))
            .map_err(|e| io("creating member/", e))?;
        let live = dirs
            .current_kv()
            .map_err(|e| io("finding the live store", e))?;
        dirs.remove_unused_kv_dirs(&live)
            .map_err(|e| io("removing old stores", e))?;
        self.snapshot_store()?
            .remove_leftovers()
            .map_err(|e| io("removing unfinished snapshots", e))?;
        raftwood_lsm::fs::remove_dir_all(fs.as_ref(), &dirs.incoming())
            .and_then(|()| fs.create_dir_all(&dirs.incoming()))
            .map_err(|e| io("clearing snapshot transfers", e))?;
        let store = dirs
            .open_kv_at(&live)
            .map_err(|e| io("opening the store", e))?;
        self.store = Some(Arc::new(ArcSwap::from_pointee(store)));
        Ok(snapshot::installed_snapshot(&dirs, &live))
    }

    /// The filesystem the member's files live on.
    pub fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::clone(&self.fs) as Arc<dyn FileSystem>
    }

    /// The same filesystem, with its fault injection.
    pub fn crash_fs(&self) -> &CrashFs {
        &self.fs
    }

    /// The open store, for an apply side that holds it as the server does.
    pub fn shared_store(&self) -> Option<Arc<ArcSwap<KvStore>>> {
        self.store.clone()
    }

    fn store(&self) -> Result<Arc<KvStore>, String> {
        self.store
            .as_ref()
            .map(|store| store.load_full())
            .ok_or_else(|| "the store is not open".to_owned())
    }

    /// Power cut: the store dies without a clean close (every write from
    /// now on fails, so closing cannot flush), then everything unsynced is
    /// dropped.
    pub fn crash(&mut self) {
        self.fs.crash_after_operations(0);
        self.store = None;
        self.fs.crash(CrashMode::DropUnsynced);
    }

    /// The last index applied (0 while down).
    pub fn applied_index(&self) -> Index {
        self.store().map_or(0, |store| store.applied_index())
    }

    /// The last index whose effects are durable (0 while down).
    pub fn durable_applied_index(&self) -> Index {
        self.store()
            .map_or(0, |store| store.durable_applied_index())
    }

    /// Applies committed entries; one outcome each.
    pub fn apply(&self, entries: &[CommittedEntry<'_>]) -> Result<Vec<ApplyOutcome>, String> {
        self.store()?
            .apply(entries)
            .map_err(|e| io("applying entries", e))
    }

    /// A get's answer at the applied state.
    pub fn get(&self, key: Key) -> Result<KvOutput, String> {
        let response = self
            .store()?
            .range(&etcd::range_request(key))
            .map_err(|e| io("serving a range", e))?;
        etcd::read_output(&response).map_err(|e| format!("range of k{key} returned {e}"))
    }

    /// The store's `state_digest`.
    pub fn digest(&self) -> Result<u32, String> {
        self.store()?
            .state_digest()
            .map_err(|e| io("computing the state digest", e))
    }

    /// Takes a checkpoint and reads it into an image; returns the applied
    /// index it holds. The checkpoint's files are removed afterwards (the
    /// image is the snapshot's data from now on).
    pub fn take_image(&mut self) -> Result<(Index, SnapshotImage), String> {
        let dir = PathBuf::from(CHECKPOINT_DIR).join(self.checkpoints_taken.to_string());
        self.checkpoints_taken += 1;
        let index = self
            .store()?
            .checkpoint(&dir)
            .map_err(|e| io("taking a checkpoint", e))?;
        let mut names = self
            .fs
            .list_dir(&dir)
            .map_err(|e| io("listing a checkpoint", e))?;
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let content = self
                .fs
                .read_file(&path)
                .map_err(|e| io("reading a checkpoint", e))?;
            self.fs
                .remove_file(&path)
                .map_err(|e| io("removing a checkpoint", e))?;
            files.push((name, content));
        }
        Ok((index, SnapshotImage { files }))
    }

    /// Replaces the store by `image`, durably, and reopens it.
    pub fn install(&mut self, image: &SnapshotImage) -> Result<(), String> {
        self.store = None;
        let dir = Path::new(STORE_DIR);
        let mut old = self
            .fs
            .list_dir(dir)
            .map_err(|e| io("listing the store", e))?;
        old.sort();
        for name in old {
            self.fs
                .remove_file(&dir.join(name))
                .map_err(|e| io("removing a store file", e))?;
        }
        for (name, content) in &image.files {
            let mut file = self
                .fs
                .create_file(&dir.join(name))
                .map_err(|e| io("writing a snapshot file", e))?;
            file.append(content)
                .map_err(|e| io("writing a snapshot file", e))?;
            file.sync_data()
                .map_err(|e| io("syncing a snapshot file", e))?;
        }
        self.fs
            .sync_dir(dir)
            .map_err(|e| io("syncing the store directory", e))?;
        self.open()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::{Command, KvOp};

    fn put(index: Index, key: Key, value: u64) -> (Index, Bytes) {
        let command = Command {
            request_id: index,
            op: KvOp::Put { key, value },
        };
        (index, etcd::encode(&command).unwrap_or_default())
    }

    fn apply(kv: &MemberKv, entries: &[(Index, Bytes)]) {
        let committed: Vec<CommittedEntry<'_>> = entries
            .iter()
            .map(|(index, bytes)| CommittedEntry {
                index: *index,
                request: Some(bytes),
            })
            .collect();
        assert_eq!(kv.apply(&committed).map(|o| o.len()), Ok(entries.len()));
    }

    #[test]
    fn a_crash_reopens_at_the_durable_index_and_an_image_installs_elsewhere() {
        let mut kv = MemberKv::new();
        assert_eq!(kv.open(), Ok(()));
        apply(&kv, &[put(2, 1, 10), put(3, 2, 20)]);
        assert_eq!(kv.get(1), Ok(KvOutput::Value(Some(10))));
        let (index, image) = kv.take_image().unwrap_or_default();
        assert_eq!(index, 3);
        assert!(!image.files.is_empty());
        apply(&kv, &[put(4, 1, 11)]);
        // The checkpoint flushed through 3; 4 is lost by the crash.
        kv.crash();
        assert_eq!(kv.open(), Ok(()));
        assert_eq!(kv.durable_applied_index(), 3);
        assert_eq!(kv.get(1), Ok(KvOutput::Value(Some(10))));

        let mut other = MemberKv::new();
        assert_eq!(other.open(), Ok(()));
        apply(&other, &[put(2, 3, 30)]);
        assert_eq!(other.install(&image), Ok(()));
        assert_eq!(other.applied_index(), 3);
        assert_eq!(other.get(3), Ok(KvOutput::Value(None)));
        assert_eq!(other.digest(), kv.digest());
        other.crash();
        assert_eq!(other.open(), Ok(()));
        assert_eq!(other.durable_applied_index(), 3, "an install is durable");
        assert_eq!(other.get(2), Ok(KvOutput::Value(Some(20))));
    }
}
