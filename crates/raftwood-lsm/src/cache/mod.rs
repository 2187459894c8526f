//! The block cache: decoded SSTable blocks (data, index and filter) under one
//! hard memory budget.
//!
//! Entries are keyed by `(table_file_number, block_offset)`. File numbers are
//! never reused, so an entry can never describe a different file; entries of
//! deleted tables simply age out (or are dropped with
//! [`BlockCache::remove_table`]).
//!
//! Built on `quick_cache`'s sharded CLOCK-Pro cache with a weigher that
//! charges each entry its decoded size plus a fixed overhead, so the budget
//! bounds memory rather than entry count. An entry heavier than a shard's
//! share of the budget is returned to the caller but not kept.
//!
//! Index and filter blocks (*metadata*) live in a partition of their own
//! that data blocks cannot evict, up to [`METADATA_SHARE_PERCENT`] of the
//! budget; the data partition gets whatever the metadata does not use. A
//! read needs a table's index (and, for a point read, its filter) before it
//! can touch a data block, and the index of a 64 MiB table is hundreds of
//! KiB: when a stream of data blocks pushed the index blocks out of one
//! shared pool, a large tree reloaded (and decompressed) an index block for
//! nearly every read — at 10 M keys under a 64 MiB budget, point reads fell
//! from 118k to under 17k ops/s. RocksDB solves the same problem with a
//! high-priority pool for index and filter blocks
//! (`cache_index_and_filter_blocks_with_high_priority`).

mod table_cache;

pub use table_cache::{ReaderSlot, TableCache};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::error::Result;
use crate::sstable::{Block, BloomFilter};

/// Charged per entry on top of its bytes: the key, the enum, the `Arc`
/// headers and the cache's own bookkeeping, roughly.
const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// Typical block size, used only to pre-size the cache's tables.
const TYPICAL_ENTRY_BYTES: u64 = 4096;

/// `(table_file_number, block_offset)`.
pub type BlockCacheKey = (u64, u64);

/// A decoded block as the cache holds it. Cloning is cheap (reference counts).
#[derive(Debug, Clone)]
pub enum CachedBlock {
    /// A data or index block.
    Block(Block),
    /// A table's Bloom filter.
    Filter(Arc<BloomFilter>),
}

impl CachedBlock {
    /// Bytes charged against the budget.
    pub fn charge_bytes(&self) -> u64 {
        let payload = match self {
            CachedBlock::Block(block) => block.size_bytes(),
            CachedBlock::Filter(filter) => filter.size_bytes(),
        };
        payload as u64 + ENTRY_OVERHEAD_BYTES
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ByteSizeWeighter;

impl Weighter<BlockCacheKey, CachedBlock> for ByteSizeWeighter {
    fn weight(&self, _key: &BlockCacheKey, value: &CachedBlock) -> u64 {
        // Never zero: quick_cache never evicts zero-weight entries.
        value.charge_bytes()
    }
}

/// Metadata (index and filter blocks) may use at most this percentage of
/// the budget, so that a tree whose metadata outgrows the cache still
/// keeps a quarter of it for data blocks. Half (RocksDB's default
/// high-priority pool ratio) was too little for raftwood's indexes: at
/// 10 M keys under 64 MiB the index and filter blocks alone need about
/// 40 MiB, and with half of the budget they evicted each other.
pub const METADATA_SHARE_PERCENT: u64 = 75;

/// The metadata partition's budget for a cache of `capacity_bytes`.
pub fn metadata_capacity_bytes(capacity_bytes: u64) -> u64 {
    let share = capacity_bytes / 100 * METADATA_SHARE_PERCENT
        + capacity_bytes % 100 * METADATA_SHARE_PERCENT / 100;
    debug_assert!(share <= capacity_bytes);
    share
}

/// A shared, thread-safe cache of decoded blocks with a byte budget.
pub struct BlockCache {
    /// Data blocks. Its capacity is the budget less what `metadata` holds,
    /// set by [`BlockCache::resize_data_partition`] after every change of
    /// the metadata partition.
    data: Cache<BlockCacheKey, CachedBlock, ByteSizeWeighter>,
    /// Index and filter blocks; capacity
    /// [`metadata_capacity_bytes`]`(capacity_bytes)`. One shard: its
    /// entries are few and large (an index block of a 64 MiB table is over
    /// a MiB), and split over many shards, each with its slice of the
    /// budget, they would be evicted from a full shard while others had
    /// room. Its lookups are rare (tables hold their index and filter
    /// through weak slots), so one lock costs nothing.
    metadata: Cache<BlockCacheKey, CachedBlock, ByteSizeWeighter>,
    /// Serialises resizes of `data`, so that the last resize always sees
    /// the latest metadata weight.
    resize_lock: Mutex<()>,
    capacity_bytes: u64,
    /// Lookups answered from the cache.
    hits: AtomicU64,
    /// Lookups that had to read and decode the block.
    misses: AtomicU64,
}

impl fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("usage_bytes", &self.usage_bytes())
            .field("data_entries", &self.data.len())
            .field("metadata_entries", &self.metadata.len())
            .field("metadata_bytes", &self.metadata.weight())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl BlockCache {
    /// A cache that holds at most `capacity_bytes` of charged entry weight.
    /// A capacity of 0 caches nothing (every lookup loads).
    pub fn new(capacity_bytes: u64) -> BlockCache {
        let partition = |bytes: u64| {
            let estimated_entries = (bytes / TYPICAL_ENTRY_BYTES).clamp(16, 1 << 24);
            Cache::with_weighter(
                usize::try_from(estimated_entries).unwrap_or(1 << 24),
                bytes,
                ByteSizeWeighter,
            )
        };
        let metadata_bytes = metadata_capacity_bytes(capacity_bytes);
        let single_shard = OptionsBuilder::new()
            .shards(1)
            .estimated_items_capacity(256)
            .weight_capacity(metadata_bytes)
            .build();
        let metadata = match single_shard {
            Ok(options) => Cache::with_options(
                options,
                ByteSizeWeighter,
                DefaultHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
            // Not expected (the options are valid); a sharded partition
            // still works, only packs large blocks less well.
            Err(_) => partition(metadata_bytes),
        };
        BlockCache {
            data: partition(capacity_bytes),
            metadata,
            resize_lock: Mutex::new(()),
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Returns the cached data block for `(file_number, offset)`, or runs
    /// `load`, caches its result and returns it. Concurrent callers for the
    /// same key wait for one load instead of reading the block twice. A
    /// failed load caches nothing.
    pub fn get_or_insert_with(
        &self,
        file_number: u64,
        offset: u64,
        load: impl FnOnce() -> Result<CachedBlock>,
    ) -> Result<CachedBlock> {
        let (result, _) = self.lookup(&self.data, file_number, offset, load);
        // Filters belong to the metadata partition, which data blocks
        // cannot evict.
        debug_assert!(
            !matches!(result, Ok(CachedBlock::Filter(_))),
            "a filter in the data partition"
        );
        result
    }

    /// As [`BlockCache::get_or_insert_with`], for an index or filter block:
    /// cached in the metadata partition, which data blocks cannot evict.
    pub fn get_or_insert_metadata_with(
        &self,
        file_number: u64,
        offset: u64,
        load: impl FnOnce() -> Result<CachedBlock>,
    ) -> Result<CachedBlock> {
        let (result, loaded) = self.lookup(&self.metadata, file_number, offset, load);
        if loaded {
            self.resize_data_partition();
        }
        result
    }

    /// A data block if it is cached, without loading or caching anything
    /// (counts as a hit or a miss). For readers, such as compaction, whose
    /// blocks nobody will ask for again.
    pub fn get(&self, file_number: u64, offset: u64) -> Option<CachedBlock> {
        let found = self.data.get(&(file_number, offset));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Looks `(file_number, offset)` up in `partition`, loading on a miss;
    /// also says whether it loaded.
    fn lookup(
        &self,
        partition: &Cache<BlockCacheKey, CachedBlock, ByteSizeWeighter>,
        file_number: u64,
        offset: u64,
        load: impl FnOnce() -> Result<CachedBlock>,
    ) -> (Result<CachedBlock>, bool) {
        let mut loaded = false;
        let result = partition.get_or_insert_with(&(file_number, offset), || {
            loaded = true;
            load()
        });
        let counter = if loaded { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        (result, loaded)
    }

    /// Gives the data partition the budget the metadata partition leaves.
    /// Called after every change of the metadata partition (it changes only
    /// by insertion, the evictions an insertion causes, and
    /// [`BlockCache::remove_table`]), so the two together stay within the
    /// budget except while an inserted metadata block awaits this call.
    fn resize_data_partition(&self) {
        let _serialised = self.resize_lock.lock();
        let data_capacity = self.capacity_bytes.saturating_sub(self.metadata.weight());
        if self.data.capacity() != data_capacity {
            self.data.set_capacity(data_capacity);
        }
    }

    /// Drops every entry of one table (after its file is deleted). Scans the
    /// whole cache, so callers should not do this per read.
    pub fn remove_table(&self, file_number: u64) {
        self.data.retain(|key, _| key.0 != file_number);
        self.metadata.retain(|key, _| key.0 != file_number);
        self.resize_data_partition();
    }

    /// Drops the index and filter blocks of a deleted table, so that they
    /// do not take room other tables' metadata needs until the metadata
    /// partition's clock reaches them. Cheap: the partition holds a few
    /// entries per live table. (Data blocks are left to age out.)
    pub fn remove_table_metadata(&self, file_number: u64) {
        self.metadata.retain(|key, _| key.0 != file_number);
        self.resize_data_partition();
    }

    /// Charged bytes currently held. Invariant: `<= capacity_bytes()`
    /// (between calls).
    pub fn usage_bytes(&self) -> u64 {
        self.data.weight() + self.metadata.weight()
    }

    /// Charged bytes of index and filter blocks currently held.
    pub fn metadata_usage_bytes(&self) -> u64 {
        self.metadata.weight()
    }

    /// The budget given to [`BlockCache::new`].
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.data.len() + self.metadata.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.metadata.is_empty()
    }

    /// Lookups served from the cache since creation.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that loaded from disk since creation.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::key::{ValueKind, internal_key};
    use crate::sstable::BlockBuilder;

    fn block_of(size_hint: usize) -> CachedBlock {
        let mut builder = BlockBuilder::new(16);
        builder.add(
            &internal_key(b"k", 1, ValueKind::Value),
            &vec![7u8; size_hint],
        );
        CachedBlock::Block(Block::new(builder.finish().to_vec()).unwrap())
    }

    #[test]
    fn is_send_sync_and_debug() {
        fn assert_traits<T: Send + Sync + fmt::Debug>() {}
        assert_traits::<BlockCache>();
    }

    #[test]
    fn counts_hits_and_misses_and_does_not_cache_errors() {
        let cache = BlockCache::new(1 << 20);
        let mut loads = 0;
        for _ in 0..3 {
            cache
                .get_or_insert_with(1, 0, || {
                    loads += 1;
                    Ok(block_of(100))
                })
                .unwrap();
        }
        assert_eq!(loads, 1);
        assert_eq!((cache.hits(), cache.misses()), (2, 1));
        let error = cache
            .get_or_insert_with(1, 4096, || Err(Error::corruption("t", "bad")))
            .unwrap_err();
        assert!(error.is_corruption());
        assert!(cache.get(1, 4096).is_none());
        assert_eq!(cache.len(), 1);
        cache.remove_table(1);
        assert!(cache.is_empty());
    }

    #[test]
    fn usage_stays_within_the_byte_budget() {
        let capacity = 256 * 1024;
        let cache = BlockCache::new(capacity);
        for offset in 0..1000u64 {
            cache
                .get_or_insert_with(offset % 7, offset, || Ok(block_of(4000)))
                .unwrap();
            assert!(
                cache.usage_bytes() <= capacity,
                "usage {}",
                cache.usage_bytes()
            );
        }
        assert!(cache.usage_bytes() > capacity / 2, "cache should be in use");
        assert!(cache.len() < 1000);
    }

    #[test]
    fn data_blocks_cannot_evict_metadata_and_share_one_budget() {
        let capacity = 512 * 1024;
        let cache = BlockCache::new(capacity);
        for offset in 0..20u64 {
            cache
                .get_or_insert_metadata_with(1, offset, || Ok(block_of(4000)))
                .unwrap();
        }
        let metadata = cache.metadata_usage_bytes();
        assert!(metadata >= 20 * 4000, "all metadata fits: {metadata}");
        for offset in 0..1000u64 {
            cache
                .get_or_insert_with(2, offset, || Ok(block_of(4000)))
                .unwrap();
            assert!(cache.usage_bytes() <= capacity, "{}", cache.usage_bytes());
        }
        assert_eq!(cache.metadata_usage_bytes(), metadata, "nothing evicted");
        let misses = cache.misses();
        for offset in 0..20u64 {
            cache
                .get_or_insert_metadata_with(1, offset, || panic!("evicted"))
                .unwrap();
        }
        assert_eq!(cache.misses(), misses);

        // Metadata is capped at its share; the data partition keeps the rest.
        for offset in 100..1000u64 {
            cache
                .get_or_insert_metadata_with(3, offset, || Ok(block_of(4000)))
                .unwrap();
            assert!(cache.usage_bytes() <= capacity, "{}", cache.usage_bytes());
        }
        assert!(cache.metadata_usage_bytes() <= metadata_capacity_bytes(capacity));
        assert!(
            cache.metadata_usage_bytes() > capacity / 2,
            "one shard packs it full"
        );
        cache.remove_table(3);
        cache.remove_table(1);
        assert_eq!(cache.metadata_usage_bytes(), 0);
        for offset in 0..1000u64 {
            cache
                .get_or_insert_with(4, offset, || Ok(block_of(4000)))
                .unwrap();
        }
        assert!(
            cache.usage_bytes() > capacity * 3 / 4,
            "data gets the whole budget back: {}",
            cache.usage_bytes()
        );
    }

    #[test]
    fn zero_capacity_caches_nothing_but_still_serves() {
        let cache = BlockCache::new(0);
        let block = cache.get_or_insert_with(1, 0, || Ok(block_of(10))).unwrap();
        assert!(matches!(block, CachedBlock::Block(_)));
        assert_eq!(cache.usage_bytes(), 0);
    }
}
