//! [`LiveCache`]: the live entry (the current version's header) of recently
//! written keys, by live-entry key, so that applying a write does not
//! search the LSM for the version it supersedes.
//!
//! Every put and delete first reads the key's live entry (to carry its
//! create revision, version and lease forward, and to know whether it
//! exists). In the LSM
//! that read is a memtable skiplist search, then a search of each immutable
//! memtable and table the key might be in: under `put, 100 clients` it was
//! about a third of the apply thread's time, nearly all of it cache misses
//! on skiplist nodes. The keys a workload writes are usually the keys it
//! writes again, so the apply path keeps their live entries here.
//!
//! Write-through, never read-populated: an entry is set only after the
//! engine write that made it true (the store's `write_applied`), so the
//! cache never holds a state the engine does not; the apply lock is held
//! throughout, so no other write can come between. A miss means "unknown"
//! and reads the engine. A cached `None` means the key is known to have no
//! live entry (it was deleted), which spares the read a delete-then-create
//! would otherwise pay.

use quick_cache::Weighter;
use quick_cache::unsync::Cache;

/// Bytes an entry costs beyond its key and value (hash table slot, the two
/// vectors' headers). An estimate; it only decides what is evicted.
const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// An entry's weight: its bytes.
#[derive(Debug, Clone, Copy, Default)]
struct EntryBytes;

impl Weighter<Vec<u8>, Option<Vec<u8>>> for EntryBytes {
    fn weight(&self, key: &Vec<u8>, value: &Option<Vec<u8>>) -> u64 {
        let value_len = value.as_ref().map_or(0, Vec::len);
        (key.len() + value_len) as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// See the module comment. Not shared: it lives under the apply lock.
pub struct LiveCache {
    /// `None` when the budget is zero (caching off).
    entries: Option<Cache<Vec<u8>, Option<Vec<u8>>, EntryBytes>>,
}

impl std::fmt::Debug for LiveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCache")
            .field("entries", &self.entries.as_ref().map(Cache::len))
            .field("bytes", &self.entries.as_ref().map(Cache::weight))
            .finish()
    }
}

impl LiveCache {
    /// A cache holding at most about `capacity_bytes` of keys and records;
    /// 0 turns it off.
    pub fn new(capacity_bytes: u64) -> LiveCache {
        let entries = (capacity_bytes > 0).then(|| {
            // A guess at the entry count only sizes the first allocation.
            let estimated_items = (capacity_bytes / 512).clamp(16, 1 << 20) as usize;
            Cache::with_weighter(estimated_items, capacity_bytes, EntryBytes)
        });
        LiveCache { entries }
    }

    /// What the engine holds under `live_key`, if known: `Some(Some(raw))`
    /// the encoded record, `Some(None)` no live entry, `None` not cached.
    pub fn get(&self, live_key: &[u8]) -> Option<Option<&[u8]>> {
        self.entries
            .as_ref()?
            .get(live_key)
            .map(|record| record.as_deref())
    }

    /// Records that the engine now holds `record` (or, for `None`, nothing)
    /// under `live_key`. Call only after the write is in the engine. Takes
    /// the buffers the batch was built from, so a put costs no copy here.
    pub fn set(&mut self, live_key: Vec<u8>, record: Option<Vec<u8>>) {
        if let Some(entries) = &mut self.entries {
            entries.insert(live_key, record);
        }
    }

    /// Forgets everything (after a write whose live keys were not noted).
    pub fn clear(&mut self) {
        if let Some(entries) = &mut self.entries {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    #[test]
    fn tells_present_absent_and_unknown_apart() {
        let mut cache = LiveCache::new(1 << 20);
        assert_eq!(cache.get(b"la"), None);
        cache.set(b"la".to_vec(), Some(b"record".to_vec()));
        cache.set(b"lb".to_vec(), None);
        assert_eq!(cache.get(b"la"), Some(Some(&b"record"[..])));
        assert_eq!(cache.get(b"lb"), Some(None));
        cache.set(b"la".to_vec(), None);
        assert_eq!(cache.get(b"la"), Some(None));
        cache.clear();
        assert_eq!(cache.get(b"la"), None);
        assert_eq!(cache.get(b"lb"), None);
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let mut cache = LiveCache::new(0);
        cache.set(b"la".to_vec(), Some(b"record".to_vec()));
        assert_eq!(cache.get(b"la"), None);
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 64 << 10;
        let mut cache = LiveCache::new(budget);
        let value = vec![7u8; 300];
        for i in 0..10_000u32 {
            cache.set(i.to_be_bytes().to_vec(), Some(value.clone()));
        }
        let weight = cache.entries.as_ref().unwrap().weight();
        assert!(weight <= budget, "{weight} bytes cached of {budget}");
        let cached = (0..10_000u32)
            .filter(|i| cache.get(&i.to_be_bytes()).is_some())
            .count();
        assert!(cached > 0 && cached < 10_000, "{cached} entries cached");
    }
}
