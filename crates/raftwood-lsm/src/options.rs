//! Tuning knobs and their defaults. Every limit carries its unit in its name.

use std::sync::Arc;

use crate::fs::{FileSystem, StdFs};

/// Block compression for SSTables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Blocks are stored as written.
    None,
    /// Blocks are compressed with LZ4 (kept only when it saves at least 1/8).
    #[default]
    Lz4,
}

/// How an SSTable is laid out.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Uncompressed size at which a data block is cut.
    pub block_size_bytes: usize,
    /// Every this many keys a block stores a key whole (a restart point)
    /// instead of prefix-compressed against its predecessor.
    pub block_restart_interval: usize,
    /// The same for index blocks. Index keys share long prefixes, so a
    /// larger interval shrinks the index (which must stay cached for reads
    /// to be fast) at the price of a short linear scan per lookup.
    pub index_block_restart_interval: usize,
    /// Bloom filter bits per key; 0 disables the filter. Levels listed in
    /// `level_overrides` use their own setting instead.
    pub bloom_bits_per_key: u32,
    /// Data block compression. Levels listed in `level_overrides` use their
    /// own setting instead.
    pub compression: Compression,
    /// Settings for the shallowest levels: tables written to level `i <
    /// level_overrides.len()` use `level_overrides[i]`.
    ///
    /// The default gives levels 0 and 1 16 bits per key (a false-positive
    /// rate of about 0.05 % instead of 0.8 %: every level-0 table is probed
    /// by a point read, so their false positives add up) and leaves their
    /// data blocks uncompressed (they are few, small and rewritten soon; a
    /// block-cache miss there then costs a read and a checksum, not an LZ4
    /// decompression). fjall's defaults are similar.
    pub level_overrides: Vec<LevelTableOptions>,
}

/// Table settings for one level (see [`TableOptions::level_overrides`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelTableOptions {
    /// Bloom filter bits per key; 0 disables the filter.
    pub bloom_bits_per_key: u32,
    /// Data block compression.
    pub compression: Compression,
}

const INDEX_RESTART_INTERVAL: usize = 16;

impl Default for TableOptions {
    fn default() -> Self {
        let shallow = LevelTableOptions {
            bloom_bits_per_key: 16,
            compression: Compression::None,
        };
        TableOptions {
            block_size_bytes: 4096,
            block_restart_interval: 16,
            index_block_restart_interval: INDEX_RESTART_INTERVAL,
            bloom_bits_per_key: 10,
            compression: Compression::Lz4,
            level_overrides: vec![shallow, shallow],
        }
    }
}

impl TableOptions {
    /// The options for a table written to `level`, with that level's
    /// override applied.
    pub fn for_level(&self, level: usize) -> TableOptions {
        let mut options = self.clone();
        if let Some(level_options) = self.level_overrides.get(level) {
            options.bloom_bits_per_key = level_options.bloom_bits_per_key;
            options.compression = level_options.compression;
        }
        options
    }
}

/// How a WAL that ends in a bad record is treated at recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalRecovery {
    /// A torn tail (an incomplete or bad last record, as a crash leaves) is
    /// truncated; a bad record followed by good ones is a corruption error.
    #[default]
    TolerateTornTail,
    /// Recovery stops at the first bad record anywhere and keeps everything
    /// before it (point-in-time recovery); later records are dropped.
    PointInTime,
}

/// Options for [`Db::open`](crate::Db::open).
#[derive(Debug, Clone)]
pub struct Options {
    /// The filesystem every byte goes through.
    pub fs: Arc<dyn FileSystem>,
    /// Create the database if the directory holds none.
    pub create_if_missing: bool,
    /// Fail if the directory already holds a database.
    pub error_if_exists: bool,
    /// Write a WAL. When false, the caller (a Raft log) makes writes durable
    /// and the engine keeps only the applied-index marker, made durable with
    /// each flush; see `docs/lsm.md`, "Running without a WAL".
    pub wal_enabled: bool,
    /// How a damaged WAL is recovered.
    pub wal_recovery: WalRecovery,
    /// A memtable is frozen and flushed once it holds this many bytes.
    pub memtable_size_bytes: usize,
    /// At most this many frozen memtables wait for flush before writes stall.
    pub max_immutable_memtables: usize,
    /// SSTable layout.
    pub table: TableOptions,
    /// Compaction output files are cut at this size.
    pub target_file_size_bytes: u64,
    /// Level 0 is compacted once it holds this many files.
    pub level0_compaction_trigger_files: usize,
    /// Writes are delayed once level 0 holds this many files.
    pub level0_slowdown_writes_files: usize,
    /// Writes stop until compaction catches up at this many level-0 files.
    pub level0_stop_writes_files: usize,
    /// Target size of level 1; each deeper level is `level_size_multiplier`
    /// times larger.
    pub level1_size_bytes: u64,
    /// Growth factor between levels.
    pub level_size_multiplier: u64,
    /// Number of levels (including level 0).
    pub num_levels: usize,
    /// Hard memory budget of the block cache (data, index and filter blocks).
    pub block_cache_size_bytes: u64,
    /// Open SSTable readers kept in the table cache.
    pub max_open_tables: usize,
    /// Longest accepted key.
    pub max_key_size_bytes: usize,
    /// Longest accepted value.
    pub max_value_size_bytes: usize,
    /// Run flushes and compactions on background threads. When false they
    /// run inline on the writer's thread (deterministic tests).
    pub background_threads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fs: Arc::new(StdFs),
            create_if_missing: true,
            error_if_exists: false,
            wal_enabled: true,
            wal_recovery: WalRecovery::default(),
            memtable_size_bytes: 64 << 20,
            max_immutable_memtables: 4,
            table: TableOptions::default(),
            target_file_size_bytes: 64 << 20,
            level0_compaction_trigger_files: 4,
            level0_slowdown_writes_files: 20,
            level0_stop_writes_files: 36,
            level1_size_bytes: 256 << 20,
            level_size_multiplier: 10,
            num_levels: 7,
            block_cache_size_bytes: 64 << 20,
            max_open_tables: 1000,
            max_key_size_bytes: 64 << 10,
            max_value_size_bytes: 64 << 20,
            background_threads: true,
        }
    }
}

/// Options for one write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// fdatasync the WAL before acknowledging. Without it an acknowledged
    /// write survives a process crash but not a power cut.
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_overrides_apply_only_to_their_levels() {
        let options = TableOptions::default();
        let level0 = options.for_level(0);
        assert_eq!(level0.bloom_bits_per_key, 16);
        assert_eq!(level0.compression, Compression::None);
        let deep = options.for_level(options.level_overrides.len());
        assert_eq!(deep.bloom_bits_per_key, options.bloom_bits_per_key);
        assert_eq!(deep.compression, Compression::Lz4);
    }
}
