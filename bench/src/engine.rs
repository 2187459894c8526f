//! The [`Engine`] trait every adapter implements, and what the adapters share.
//!
//! Each adapter does the natural thing for its engine (no extra copies the
//! engine does not force), so that the numbers compare the engines rather
//! than the adapters.

use std::path::Path;

/// The error type of the tool: the engines' own errors, boxed, with context
/// added where the tool catches them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type Result<T> = std::result::Result<T, BoxError>;

/// Settings every engine receives, so that the comparison is like for like.
#[derive(Debug, Clone, Copy)]
pub struct CommonConfig {
    /// Budget of every block / page cache, in bytes.
    pub cache_size_bytes: u64,
    /// Memtable (write buffer) size, in bytes, for engines that have one.
    pub memtable_size_bytes: u64,
    /// fsync (fdatasync) before acknowledging each write.
    pub sync: bool,
}

/// Counters only raftwood-lsm exposes.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    /// Bytes written to disk per user byte, as the engine counts it.
    pub write_amplification: Option<f64>,
    /// Bytes in SSTables per level (level 0 first).
    pub level_sizes_bytes: Vec<u64>,
    /// Files per level (level 0 first).
    pub level_files: Vec<usize>,
    /// Free-form one-line summary of other counters.
    pub summary: String,
}

/// One key-value engine, shared by at most two benchmark threads.
pub trait Engine: Send + Sync {
    /// Short name, as used in `--engines`.
    fn name(&self) -> &'static str;

    /// Inserts or overwrites one key.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Inserts `pairs` atomically, as one write.
    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Result<()>;

    /// Looks `key` up; if present, shows its value to `visit` (in whatever
    /// form the engine returns it, without copying) and returns true.
    fn get(&self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool>;

    /// Positions a fresh cursor at the first key >= `start` and shows up to
    /// `count` entries to `visit`. Returns how many were shown.
    fn seek_and_scan(&self, start: &[u8], count: usize, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<usize>;

    /// Makes everything written so far durable and moves the memtable into
    /// the engine's on-disk structure (no-op where there is no memtable).
    fn flush(&self) -> Result<()>;

    /// Engine-specific counters (raftwood only).
    fn stats(&self) -> Option<EngineStats> {
        None
    }

    /// Closes the engine, waiting for its background threads.
    fn close(self: Box<Self>) -> Result<()>;
}

/// What each engine does per write under the chosen `--sync` setting, for
/// the report.
pub fn durability_note(engine: &str, sync: bool) -> &'static str {
    match (engine, sync) {
        ("raftwood", false) => {
            "WAL on; each write group is appended to the WAL with write(2), no fsync (WriteOptions { sync: false })"
        }
        ("raftwood", true) => "WAL on; each write group is appended and fdatasync'd (WriteOptions { sync: true })",
        ("fjall", false) => {
            "journal on; each write is flushed from the journal's BufWriter to the OS (manual_journal_persist = false), no fsync"
        }
        ("fjall", true) => "journal on; Database::persist(PersistMode::SyncData) (fdatasync) after each write",
        ("sled", false) => {
            "log on; writes are buffered in sled's in-memory log buffer and written + fsync'd by its background flusher every 500 ms (flush_every_ms default)"
        }
        ("sled", true) => "log on; Db::flush() (write + fsync) after each write",
        ("rocksdb", false) => "WAL on; each write is appended to the WAL with write(2), no fsync (WriteOptions::set_sync(false))",
        ("rocksdb", true) => "WAL on; each write is fsync'd (WriteOptions::set_sync(true))",
        _ => "unknown engine",
    }
}

/// Bytes the directory occupies on disk, summed over every file below it,
/// counted as allocated blocks (like `du`), so that preallocated but sparse
/// files (fjall's journal is `set_len` to 64 MiB) are not overcounted.
pub fn disk_usage_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(m) => m,
                // A file deleted by a background compaction between listing
                // and stat is simply no longer there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.blocks() * 512;
            }
        }
    }
    Ok(total)
}

/// This process's I/O counters from `/proc/self/io` (all threads, including
/// finished ones), which measure every engine's writes the same way,
/// whatever the engine counts itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessIo {
    /// Bytes passed to write(2)/pwrite(2) and friends (`wchar`): what the
    /// engine handed the kernel, WAL and table writes alike.
    pub bytes_handed_to_kernel: u64,
    /// Bytes of page cache this process dirtied, minus those dropped before
    /// reaching the disk (`write_bytes - cancelled_write_bytes`): what the
    /// device was or will be asked to write, in whole pages.
    pub bytes_to_device: u64,
}

impl ProcessIo {
    /// The counters now; all zero where `/proc/self/io` is unreadable.
    pub fn now() -> ProcessIo {
        let Ok(text) = std::fs::read_to_string("/proc/self/io") else {
            return ProcessIo::default();
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        ProcessIo {
            bytes_handed_to_kernel: field("wchar"),
            bytes_to_device: field("write_bytes").saturating_sub(field("cancelled_write_bytes")),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: ProcessIo) -> ProcessIo {
        ProcessIo {
            bytes_handed_to_kernel: self.bytes_handed_to_kernel.saturating_sub(earlier.bytes_handed_to_kernel),
            bytes_to_device: self.bytes_to_device.saturating_sub(earlier.bytes_to_device),
        }
    }
}
