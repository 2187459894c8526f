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

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

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

/// A shared, thread-safe cache of decoded blocks with a byte budget.
pub struct BlockCache {
    cache: Cache<BlockCacheKey, CachedBlock, ByteSizeWeighter>,
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
            .field("entries", &self.cache.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl BlockCache {
    /// A cache that holds at most `capacity_bytes` of charged entry weight.
    /// A capacity of 0 caches nothing (every lookup loads).
    pub fn new(capacity_bytes: u64) -> BlockCache {
        let estimated_entries = (capacity_bytes / TYPICAL_ENTRY_BYTES).clamp(16, 1 << 24);
        BlockCache {
            cache: Cache::with_weighter(
                usize::try_from(estimated_entries).unwrap_or(1 << 24),
                capacity_bytes,
                ByteSizeWeighter,
            ),
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Returns the cached entry for `(file_number, offset)`, or runs `load`,
    /// caches its result and returns it. Concurrent callers for the same key
    /// wait for one load instead of reading the block twice. A failed load
    /// caches nothing.
    pub fn get_or_insert_with(
        &self,
        file_number: u64,
        offset: u64,
        load: impl FnOnce() -> Result<CachedBlock>,
    ) -> Result<CachedBlock> {
        let mut loaded = false;
        let result = self.cache.get_or_insert_with(&(file_number, offset), || {
            loaded = true;
            load()
        });
        let counter = if loaded { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// The cached entry, if present (counts as a hit or a miss).
    pub fn get(&self, file_number: u64, offset: u64) -> Option<CachedBlock> {
        let found = self.cache.get(&(file_number, offset));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Drops every entry of one table (after its file is deleted). Scans the
    /// whole cache, so callers should not do this per read.
    pub fn remove_table(&self, file_number: u64) {
        self.cache.retain(|key, _| key.0 != file_number);
    }

    /// Charged bytes currently held. Invariant: `<= capacity_bytes()`.
    pub fn usage_bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// The budget given to [`BlockCache::new`].
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
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
    fn zero_capacity_caches_nothing_but_still_serves() {
        let cache = BlockCache::new(0);
        let block = cache.get_or_insert_with(1, 0, || Ok(block_of(10))).unwrap();
        assert!(matches!(block, CachedBlock::Block(_)));
        assert_eq!(cache.usage_bytes(), 0);
    }
}
