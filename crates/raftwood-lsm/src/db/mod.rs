//! [`Db`]: the engine's public face. The pieces live in their own files:
//! `open.rs` (recovery), `write.rs` (group commit), `read.rs` (point reads
//! and iterators), `background.rs` (flush, compaction, file cleanup),
//! `checkpoint.rs`.

mod background;
mod checkpoint;
mod open;
mod read;
mod seek_charges;
mod write;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};

use crate::batch::WriteBatch;
use crate::cache::TableCache;
use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::log::LogWriter;
use crate::memtable::{ChunkPool, MemTable};
use crate::options::{Options, WriteOptions};
use crate::snapshot::{Snapshot, SnapshotList};
use crate::stats::{Counters, LevelStats, Stats};
use crate::version::{Version, VersionSet};

pub use read::ReadOptions;
pub(crate) use seek_charges::SeekCharges;
use write::WriteQueue;

/// What a read needs, swapped atomically as a whole: the active memtable,
/// the frozen ones, and the current version.
#[derive(Debug)]
pub struct SuperVersion {
    pub(crate) mem: Arc<MemTable>,
    /// Frozen memtables, newest first.
    pub(crate) imm: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
}

/// Mutable state, under `DbInner::state`.
#[derive(Debug)]
struct State {
    versions: VersionSet,
    mem: Arc<MemTable>,
    /// Frozen memtables, oldest first (flushed in this order).
    imm: VecDeque<Arc<MemTable>>,
    /// Every version installed and possibly still referenced by a reader.
    live_versions: Vec<Weak<Version>>,
    /// File numbers being written by flushes and compactions in flight.
    pending_outputs: BTreeSet<u64>,
    /// Per-level compaction cursors (see the picker).
    compaction_cursors: Vec<Vec<u8>>,
    flush_running: bool,
    compaction_running: bool,
    /// Manual compactions pause automatic ones.
    manual_compactions: usize,
    /// Checkpoints in progress: no file may be deleted.
    file_deletion_holds: usize,
    /// The first storage error; set once, never cleared (fail-stop).
    background_error: Option<String>,
    shutting_down: bool,
}

/// The WAL, touched only by the write-group leader.
#[derive(Debug)]
struct WalState {
    writer: Option<LogWriter>,
    number: u64,
    /// The group's encoded batches, back to back; reused across groups so
    /// that a write allocates no record buffer.
    records: Vec<u8>,
    /// Where each batch's record ends in `records`; reused likewise.
    record_ends: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct DbInner {
    dir: PathBuf,
    options: Options,
    fs: Arc<dyn FileSystem>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    super_version: ArcSwap<SuperVersion>,
    state: Mutex<State>,
    /// Signalled when background work may be needed.
    work_available: Condvar,
    /// Signalled when background work completed (stalled writers wait here).
    work_done: Condvar,
    wal: Mutex<WalState>,
    write_queue: Mutex<WriteQueue>,
    write_turn: Condvar,
    /// Sequence number of the newest write visible to reads.
    /// Invariant: every entry with a sequence number <= this is in a memtable or a table.
    visible_sequence_number: AtomicU64,
    /// Last sequence number handed to a write group. Only the leader moves it.
    allocated_sequence_number: AtomicU64,
    snapshots: Arc<SnapshotList>,
    tables: Arc<TableCache>,
    counters: Counters,
    closed: AtomicBool,
    /// Mirrors `state.background_error.is_some()` so that the write path can
    /// check it without the state lock. Set once, never cleared.
    poisoned: AtomicBool,
    /// Arena chunks of flushed memtables, for the next ones.
    memtable_chunks: Arc<ChunkPool>,
}

/// An open database. Cheap to share: `Db` is `Send + Sync`; clone the
/// `Arc` you keep it in, or call methods from many threads.
#[derive(Debug)]
pub struct Db {
    inner: Arc<DbInner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Db {
    /// Opens (or creates, per `options`) the database in `path`.
    ///
    /// Errors: [`Error::NotADatabase`] for a directory holding something
    /// else, [`Error::Locked`] if another handle has it open,
    /// [`Error::UnsupportedFormatVersion`] for a newer format, corruption
    /// errors for damaged files. None of these modifies the directory.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let inner = open::open(path.as_ref(), options)?;
        let inner = Arc::new(inner);
        let mut threads = Vec::new();
        if inner.options.background_threads {
            for job in [background::Job::Flush, background::Job::Compaction] {
                let worker = Arc::clone(&inner);
                let handle = std::thread::Builder::new()
                    .name(format!("raftwood-lsm-{job:?}").to_lowercase())
                    .spawn(move || worker.background_loop(job))
                    .map_err(|e| Error::io("starting a background thread", e))?;
                threads.push(handle);
            }
        }
        let db = Db {
            inner,
            threads: Mutex::new(threads),
        };
        db.inner.maybe_schedule_work();
        Ok(db)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        // Sized up front: growing from empty would reallocate several times.
        let mut batch =
            WriteBatch::with_capacity(WriteBatch::put_size_bytes(key.len(), value.len()));
        batch.put(key, value);
        self.write(batch, options)
    }

    /// Deletes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>, options: WriteOptions) -> Result<()> {
        let key = key.as_ref();
        let mut batch = WriteBatch::with_capacity(1 + 4 + key.len());
        batch.delete(key);
        self.write(batch, options)
    }

    /// Deletes every key in `[start, end)`.
    pub fn delete_range(
        &self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(start, end);
        self.write(batch, options)
    }

    /// Applies `batch` atomically. Concurrent writers are grouped: one WAL
    /// append and at most one fsync serve the whole group.
    pub fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.check_open()?;
        self.inner.write(batch, options)
    }

    /// The value of `key`, as of now.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        self.inner.get(key.as_ref(), None)
    }

    /// The value of `key` in `snapshot`.
    pub fn get_at(&self, key: impl AsRef<[u8]>, snapshot: &Snapshot) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        self.inner
            .get(key.as_ref(), Some(snapshot.sequence_number()))
    }

    /// A consistent read view of everything acknowledged so far.
    pub fn snapshot(&self) -> Snapshot {
        let seq = self.inner.visible_sequence_number.load(Ordering::Acquire);
        Snapshot::new(Arc::clone(&self.inner.snapshots), seq)
    }

    /// A cursor over the database (see [`ReadOptions`] for bounds and snapshot).
    pub fn iter(&self, options: ReadOptions<'_>) -> Result<crate::DbIterator> {
        self.check_open()?;
        self.inner.iter(options)
    }

    /// Keys and values in `[start, end)` (either bound optional), ascending.
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<crate::RangeIter> {
        self.range_iter(start, end, false)
    }

    /// Keys and values in `[start, end)`, descending.
    pub fn range_rev(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<crate::RangeIter> {
        self.range_iter(start, end, true)
    }

    fn range_iter(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        reverse: bool,
    ) -> Result<crate::RangeIter> {
        let cursor = self.iter(ReadOptions {
            lower_bound: start.map(<[u8]>::to_vec),
            upper_bound: end.map(<[u8]>::to_vec),
            snapshot: None,
        })?;
        Ok(crate::RangeIter::new(cursor, reverse))
    }

    /// Writes the active memtable to a level-0 table and waits until every
    /// frozen memtable is flushed.
    pub fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.inner.flush()
    }

    /// Compacts every level overlapping `[start, end]` down to the deepest
    /// non-empty level, dropping deleted and overwritten data.
    pub fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        self.check_open()?;
        self.inner.compact_range(start, end)
    }

    /// Writes a consistent copy of the database into `dir` (which must not
    /// exist), hard-linking tables. Usable as a backup or Raft snapshot:
    /// open it with `Db::open`.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.check_open()?;
        self.inner.checkpoint(dir.as_ref(), true).map(|_| ())
    }

    /// Like [`Db::checkpoint`], but of the tables as they are, without
    /// flushing first: the state as of the last flush, written in the time
    /// it takes to hard-link the tables. Returns the applied-index marker
    /// it holds ([`Db::applied_index`] at that flush). With the WAL on,
    /// writes since the last flush are not in it.
    pub fn checkpoint_flushed(&self, dir: impl AsRef<Path>) -> Result<u64> {
        self.check_open()?;
        self.inner.checkpoint(dir.as_ref(), false)
    }

    /// The applied-index marker made durable (see
    /// [`WriteBatch::set_applied_index`]). With the WAL off, this is what a
    /// restarted caller replays its log from.
    pub fn applied_index(&self) -> u64 {
        self.inner.state.lock().versions.applied_index()
    }

    /// Counters and level shape.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The directory the database lives in.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops background work and releases the directory lock. With the WAL
    /// off, the memtable is flushed first so a clean close loses nothing.
    /// Later calls on this handle return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let flushed = if !self.inner.options.wal_enabled {
            self.inner.flush()
        } else {
            self.inner.sync_wal()
        };
        self.inner.closed.store(true, Ordering::Release);
        {
            let mut state = self.inner.state.lock();
            state.shutting_down = true;
            self.inner.work_available.notify_all();
            self.inner.work_done.notify_all();
        }
        for handle in self.threads.lock().drain(..) {
            // A panicked background thread already recorded nothing useful;
            // closing must still release the lock.
            let _ = handle.join();
        }
        *self.inner.lock.lock() = None;
        flushed
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::warn!(%error, "closing the database on drop failed");
        }
    }
}

impl DbInner {
    fn poison(&self, state: &mut State, error: &Error) {
        if state.background_error.is_none() {
            tracing::error!(%error, "storage error: the database refuses further writes");
            state.background_error = Some(error.to_string());
            self.poisoned.store(true, Ordering::Release);
        }
        self.work_done.notify_all();
    }

    fn check_poisoned(state: &State) -> Result<()> {
        match &state.background_error {
            Some(message) => Err(Error::Poisoned(message.clone())),
            None => Ok(()),
        }
    }

    /// Publishes a new super version built from `state`.
    fn install_super_version(&self, state: &mut State) {
        // Reads search the active memtable, then the frozen ones newest
        // first, then the tables: the WALs say the frozen ones are older.
        debug_assert!(
            !self.options.wal_enabled
                || state
                    .imm
                    .iter()
                    .chain([&state.mem])
                    .map(|mem| mem.wal_number())
                    .is_sorted_by(|older, newer| older < newer)
        );
        let version = state.versions.current();
        state.live_versions.retain(|v| v.strong_count() > 0);
        state.live_versions.push(Arc::downgrade(&version));
        self.super_version.store(Arc::new(SuperVersion {
            mem: Arc::clone(&state.mem),
            imm: state.imm.iter().rev().cloned().collect(),
            version,
        }));
    }

    fn stats(&self) -> Stats {
        let sv = self.super_version.load_full();
        let immutable_memtables = self.state.lock().imm.len();
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cache = self.tables.block_cache();
        Stats {
            levels: (0..sv.version.num_levels())
                .map(|level| LevelStats {
                    files: sv.version.files(level).len(),
                    size_bytes: sv.version.level_size_bytes(level),
                })
                .collect(),
            user_bytes_written: load(&c.user_bytes_written),
            wal_bytes_written: load(&c.wal_bytes_written),
            wal_syncs: load(&c.wal_syncs),
            flush_bytes_written: load(&c.flush_bytes_written),
            compaction_bytes_read: load(&c.compaction_bytes_read),
            compaction_bytes_written: load(&c.compaction_bytes_written),
            flushes: load(&c.flushes),
            compactions: load(&c.compactions),
            trivial_moves: load(&c.trivial_moves),
            write_stalls: load(&c.write_stalls),
            write_slowdowns: load(&c.write_slowdowns),
            write_groups: load(&c.write_groups),
            writes: load(&c.writes),
            immutable_memtables,
            memtable_size_bytes: sv.mem.approximate_size_bytes(),
            block_cache_usage_bytes: cache.usage_bytes(),
            block_cache_metadata_bytes: cache.metadata_usage_bytes(),
            block_cache_hits: cache.hits(),
            block_cache_misses: cache.misses(),
            last_sequence_number: self.visible_sequence_number.load(Ordering::Acquire),
        }
    }
}
