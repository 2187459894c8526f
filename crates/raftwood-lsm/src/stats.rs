//! Counters reported by [`Db::stats`](crate::Db::stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) user_bytes_written: AtomicU64,
    pub(crate) wal_bytes_written: AtomicU64,
    pub(crate) wal_syncs: AtomicU64,
    pub(crate) flush_bytes_written: AtomicU64,
    pub(crate) compaction_bytes_read: AtomicU64,
    pub(crate) compaction_bytes_written: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) trivial_moves: AtomicU64,
    pub(crate) write_stalls: AtomicU64,
    pub(crate) write_slowdowns: AtomicU64,
    pub(crate) write_groups: AtomicU64,
    pub(crate) writes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Per-level numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelStats {
    /// Files at the level.
    pub files: usize,
    /// Bytes at the level.
    pub size_bytes: u64,
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Files and bytes per level.
    pub levels: Vec<LevelStats>,
    /// Bytes of keys and values the user wrote.
    pub user_bytes_written: u64,
    /// Bytes appended to WALs.
    pub wal_bytes_written: u64,
    /// WAL fsyncs (one per group commit that asked for sync).
    pub wal_syncs: u64,
    /// Bytes written by flushes.
    pub flush_bytes_written: u64,
    /// Bytes read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes written by compactions.
    pub compaction_bytes_written: u64,
    /// Completed flushes.
    pub flushes: u64,
    /// Completed compactions (trivial moves included).
    pub compactions: u64,
    /// Compactions that only moved a file.
    pub trivial_moves: u64,
    /// Times a writer waited for flush or compaction.
    pub write_stalls: u64,
    /// Times a writer was slowed down by level-0 growth.
    pub write_slowdowns: u64,
    /// Write groups committed (each one WAL append, at most one fsync).
    pub write_groups: u64,
    /// Individual `write` calls committed.
    pub writes: u64,
    /// Frozen memtables waiting for flush.
    pub immutable_memtables: usize,
    /// Bytes in the active memtable.
    pub memtable_size_bytes: usize,
    /// Bytes used by the block cache.
    pub block_cache_usage_bytes: u64,
    /// Of that, bytes of index and filter blocks (the cache's metadata
    /// partition).
    pub block_cache_metadata_bytes: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Last sequence number visible to reads.
    pub last_sequence_number: u64,
}

impl Stats {
    /// Bytes written to disk per byte the user wrote (WAL + flush +
    /// compaction over user bytes).
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.wal_bytes_written + self.flush_bytes_written + self.compaction_bytes_written) as f64
            / self.user_bytes_written as f64
    }

    /// Total bytes in tables.
    pub fn table_size_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.size_bytes).sum()
    }
}
