//! The memtable: recent writes in a skiplist ordered by internal key, plus
//! the range tombstones written since it was created.
//!
//! A memtable is mutable while it is the Db's active memtable; once frozen it
//! is only read (and flushed to a level-0 table). Readers never take a lock
//! on the point entries: the skiplist (`skiplist.rs`) has one writer at a
//! time — the write-group leader, or recovery — and lock-free readers, and
//! keeps keys and values inline in an arena (`arena.rs`).

mod arena;
mod search_key;
mod skiplist;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use parking_lot::{Mutex, RwLock};

pub use self::arena::ChunkPool;
use self::arena::{Addr, ArenaFull, SLOTS_BEFORE_FULL};
use self::search_key::SearchKey;
use self::skiplist::{SkipList, SkipListWriter};
use crate::error::{Error, Result};
use crate::iterator::InternalIterator;
use crate::key::{self, MAX_SEQUENCE_NUMBER, RangeTombstone, TRAILER_LEN, ValueKind};

/// Bytes a range tombstone costs beyond its two keys (an estimate; it only
/// decides when to freeze).
const RANGE_TOMBSTONE_OVERHEAD_BYTES: usize = 64;

/// A point entry found by [`MemTable::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Sequence number of the entry.
    pub sequence_number: u64,
    /// Value or tombstone.
    pub kind: ValueKind,
    /// The value (empty for tombstones).
    pub value: Vec<u8>,
}

/// A memtable.
#[derive(Debug)]
pub struct MemTable {
    /// The WAL that holds this memtable's writes (0 when the WAL is off).
    wal_number: u64,
    entries: SkipList,
    /// The skiplist's writer state. Inserts take this lock; it is never
    /// contended (the write path has one leader at a time), and makes the
    /// one-writer rule a fact rather than a promise.
    writer: Mutex<SkipListWriter>,
    range_tombstones: RwLock<Vec<RangeTombstone>>,
    /// Bytes of the arena's nodes and of the range tombstones.
    approximate_size_bytes: AtomicUsize,
    /// Point entries inserted.
    entry_count: AtomicUsize,
    /// Set once the arena has used `SLOTS_BEFORE_FULL` chunk slots.
    arena_nearly_full: AtomicBool,
    /// Largest sequence number inserted. Invariant: monotonically increasing.
    largest_sequence_number: AtomicU64,
    /// Largest applied-index marker among the batches inserted (0 if none).
    applied_index: AtomicU64,
}

impl MemTable {
    /// An empty memtable whose writes are logged in WAL `wal_number`.
    pub fn new(wal_number: u64) -> Self {
        MemTable::with_chunk_pool(wal_number, None)
    }

    /// An empty memtable whose arena takes its regular chunks from `pool`
    /// and gives them back when the memtable is dropped.
    pub fn with_chunk_pool(wal_number: u64, pool: Option<Arc<ChunkPool>>) -> Self {
        let (entries, writer) = SkipList::new(pool);
        MemTable {
            wal_number,
            entries,
            writer: Mutex::new(writer),
            range_tombstones: RwLock::new(Vec::new()),
            approximate_size_bytes: AtomicUsize::new(0),
            entry_count: AtomicUsize::new(0),
            arena_nearly_full: AtomicBool::new(false),
            largest_sequence_number: AtomicU64::new(0),
            applied_index: AtomicU64::new(0),
        }
    }

    /// The WAL number that logs this memtable.
    pub fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Inserts a point entry. Sequence numbers are unique, so keys never
    /// collide. Fails only if the arena has no chunk slot left, which the
    /// write path and recovery prevent by freezing a memtable once
    /// [`MemTable::is_full`] (between batches) and by limiting a batch's
    /// size.
    pub fn insert(
        &self,
        user_key: &[u8],
        sequence_number: u64,
        kind: ValueKind,
        value: &[u8],
    ) -> Result<()> {
        // Counted before the insert: see `has_no_writes`.
        let estimate = user_key.len() + value.len() + 64;
        self.approximate_size_bytes
            .fetch_add(estimate, AtomicOrdering::Relaxed);
        let mut writer = self.writer.lock();
        let node_bytes = self
            .entries
            .insert(
                &mut writer,
                user_key,
                key::pack_trailer(sequence_number, kind),
                value,
            )
            .map_err(|ArenaFull| {
                Error::InvalidArgument(format!(
                    "the memtable's arena is full ({} bytes): a single write batch is too large",
                    writer.allocated_bytes()
                ))
            })?;
        if writer.arena_slots_used() >= SLOTS_BEFORE_FULL {
            self.arena_nearly_full.store(true, AtomicOrdering::Relaxed);
        }
        drop(writer);
        debug_assert!(
            node_bytes >= user_key.len() + value.len(),
            "a node of {node_bytes} bytes holds a {}-byte key and a {}-byte value",
            user_key.len(),
            value.len()
        );
        // Replace the estimate with what the node took.
        if node_bytes >= estimate {
            self.approximate_size_bytes
                .fetch_add(node_bytes - estimate, AtomicOrdering::Relaxed);
        } else {
            self.approximate_size_bytes
                .fetch_sub(estimate - node_bytes, AtomicOrdering::Relaxed);
        }
        // `has_no_writes` relies on the size never returning to zero.
        debug_assert!(self.approximate_size_bytes.load(AtomicOrdering::Relaxed) > 0);
        self.entry_count.fetch_add(1, AtomicOrdering::Relaxed);
        self.largest_sequence_number
            .fetch_max(sequence_number, AtomicOrdering::Release);
        Ok(())
    }

    /// Records a range tombstone.
    pub fn insert_range_tombstone(&self, start: &[u8], end: &[u8], sequence_number: u64) {
        self.approximate_size_bytes.fetch_add(
            start.len() + end.len() + RANGE_TOMBSTONE_OVERHEAD_BYTES,
            AtomicOrdering::Relaxed,
        );
        self.range_tombstones.write().push(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            sequence_number,
        });
        self.largest_sequence_number
            .fetch_max(sequence_number, AtomicOrdering::Release);
    }

    /// Raises the applied-index marker.
    pub fn note_applied_index(&self, index: u64) {
        self.applied_index.fetch_max(index, AtomicOrdering::AcqRel);
    }

    /// The largest applied-index marker written into this memtable.
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(AtomicOrdering::Acquire)
    }

    /// The newest point entry for `user_key` with sequence number <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot_sequence_number: u64) -> Result<Option<Found>> {
        let target = SearchKey::new(
            user_key,
            key::pack_trailer(
                snapshot_sequence_number.min(MAX_SEQUENCE_NUMBER),
                ValueKind::FOR_SEEK,
            ),
        );
        let Some(addr) = self.entries.first_at_or_after(&target) else {
            return Ok(None);
        };
        let node = self.entries.node(addr);
        if !node.has_user_key(user_key) {
            return Ok(None);
        }
        let trailer = node.trailer();
        let kind = ValueKind::from_u8((trailer & 0xff) as u8).ok_or_else(|| {
            Error::corruption("memtable", format!("unknown kind byte {}", trailer & 0xff))
        })?;
        debug_assert!(
            trailer >> 8 <= snapshot_sequence_number,
            "the search returned a version newer than the snapshot"
        );
        let mut value = Vec::new();
        node.append_value(&mut value);
        Ok(Some(Found {
            sequence_number: trailer >> 8,
            kind,
            value,
        }))
    }

    /// Largest sequence number of a tombstone covering `user_key` that is
    /// visible at `snapshot` (0 if none).
    pub fn max_covering_tombstone(&self, user_key: &[u8], snapshot_sequence_number: u64) -> u64 {
        key::max_covering_sequence_number(
            &self.range_tombstones.read(),
            user_key,
            snapshot_sequence_number,
        )
    }

    /// A copy of the range tombstones.
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_tombstones.read().clone()
    }

    /// Estimated memory used, in bytes.
    pub fn approximate_size_bytes(&self) -> usize {
        self.approximate_size_bytes.load(AtomicOrdering::Relaxed)
    }

    /// True once the memtable should take no further batch: it holds
    /// `size_limit_bytes` (the database's `memtable_size_bytes`), or its
    /// arena has used most of its chunk slots (many values over 1 MiB
    /// each take one slot apiece).
    pub fn is_full(&self, size_limit_bytes: usize) -> bool {
        self.approximate_size_bytes() >= size_limit_bytes
            || self.arena_nearly_full.load(AtomicOrdering::Relaxed)
    }

    /// Largest sequence number inserted so far.
    pub fn largest_sequence_number(&self) -> u64 {
        self.largest_sequence_number.load(AtomicOrdering::Acquire)
    }

    /// True if nothing was inserted, judged by one atomic load (no lock).
    ///
    /// Every insert adds to `approximate_size_bytes` before it touches the
    /// skiplist or the tombstones (and never brings it back to zero), and a
    /// write becomes visible only after its inserts (its sequence number is
    /// published with Release and read with Acquire); so a reader that loads
    /// the visible sequence number first and then finds this true has
    /// missed no write it can see.
    pub fn has_no_writes(&self) -> bool {
        self.approximate_size_bytes.load(AtomicOrdering::Relaxed) == 0
    }

    /// True if nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.entries.first().is_none() && self.range_tombstones.read().is_empty()
    }

    /// Number of point entries.
    pub fn len(&self) -> usize {
        self.entry_count.load(AtomicOrdering::Relaxed)
    }

    /// Visits every point entry in order (used by flush), passing the
    /// encoded internal key and the value.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        let mut encoded_key = Vec::new();
        let mut previous_key = Vec::new();
        let mut value = Vec::new();
        let mut visited = 0;
        let mut at = self.entries.first();
        while let Some(addr) = at {
            let node = self.entries.node(addr);
            std::mem::swap(&mut previous_key, &mut encoded_key);
            encode_internal_key(node, &mut encoded_key);
            debug_assert!(
                visited == 0 || key::compare_internal_keys(&previous_key, &encoded_key).is_lt(),
                "memtable entries out of order"
            );
            value.clear();
            node.append_value(&mut value);
            visit(&encoded_key, &value)?;
            visited += 1;
            at = self.entries.next(addr);
        }
        // Only a frozen memtable is walked: no insert races the count.
        debug_assert_eq!(
            visited,
            self.len(),
            "entries walked against entries inserted"
        );
        Ok(())
    }

    /// A cursor over the point entries.
    pub fn iter(self: &Arc<Self>) -> MemTableIterator {
        MemTableIterator {
            table: Arc::clone(self),
            current: None,
            key: Vec::new(),
            value: Vec::new(),
            #[cfg(debug_assertions)]
            left: Vec::new(),
        }
    }
}

/// Replaces `out` with the node's encoded internal key (user key + trailer).
fn encode_internal_key(node: skiplist::Node<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(node.user_key_len() + TRAILER_LEN);
    node.append_user_key(out);
    out.extend_from_slice(&node.trailer().to_le_bytes());
}

/// A cursor over a memtable.
///
/// It holds the memtable (so the arena outlives it) and the address of its
/// node, with the key and value copied out: `next` follows the node's
/// level-0 link, `prev` searches for the last key before the current one
/// (the list has no back links), as LevelDB's memtable iterator does.
#[derive(Debug)]
pub struct MemTableIterator {
    table: Arc<MemTable>,
    current: Option<Addr>,
    /// The current key encoded as an internal key (what `key()` returns);
    /// reused across steps.
    key: Vec<u8>,
    /// The current value; reused across steps.
    value: Vec<u8>,
    /// The key a step leaves, to assert that it moved (debug builds only).
    #[cfg(debug_assertions)]
    left: Vec<u8>,
}

impl MemTableIterator {
    fn set(&mut self, at: Option<Addr>) {
        self.current = at;
        self.value.clear();
        match at {
            Some(addr) => {
                let node = self.table.entries.node(addr);
                encode_internal_key(node, &mut self.key);
                node.append_value(&mut self.value);
            }
            None => self.key.clear(),
        }
    }
}

impl InternalIterator for MemTableIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let at = self.table.entries.first();
        self.set(at);
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let at = self.table.entries.last();
        self.set(at);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let at = self
            .table
            .entries
            .first_at_or_after(&SearchKey::from_encoded(target));
        self.set(at);
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let at = self
            .table
            .entries
            .last_at_or_before(&SearchKey::from_encoded(target));
        self.set(at);
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(addr) = self.current {
            #[cfg(debug_assertions)]
            self.left.clone_from(&self.key);
            let at = self.table.entries.next(addr);
            self.set(at);
            #[cfg(debug_assertions)]
            debug_assert!(
                self.current.is_none() || key::compare_internal_keys(&self.left, &self.key).is_lt(),
                "next did not move forward"
            );
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        if self.current.is_some() {
            let at = self
                .table
                .entries
                .last_less_than(&SearchKey::from_encoded(&self.key));
            #[cfg(debug_assertions)]
            self.left.clone_from(&self.key);
            self.set(at);
            #[cfg(debug_assertions)]
            debug_assert!(
                self.current.is_none() || key::compare_internal_keys(&self.key, &self.left).is_lt(),
                "prev did not move back"
            );
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> &[u8] {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_newest_visible_version() {
        let m = MemTable::new(1);
        m.insert(b"k", 1, ValueKind::Value, b"v1").unwrap();
        m.insert(b"k", 3, ValueKind::Value, b"v3").unwrap();
        m.insert(b"k", 5, ValueKind::Deletion, b"").unwrap();
        m.insert(b"l", 2, ValueKind::Value, b"l2").unwrap();
        assert_eq!(m.get(b"k", 0).unwrap(), None);
        assert_eq!(m.get(b"k", 2).unwrap().unwrap().value, b"v1");
        assert_eq!(m.get(b"k", 4).unwrap().unwrap().value, b"v3");
        assert_eq!(m.get(b"k", 9).unwrap().unwrap().kind, ValueKind::Deletion);
        assert_eq!(m.get(b"j", 9).unwrap(), None);
        assert_eq!(m.largest_sequence_number(), 5);
    }

    #[test]
    fn iterator_walks_both_ways() {
        let m = Arc::new(MemTable::new(1));
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            m.insert(*k, i as u64 + 1, ValueKind::Value, *k).unwrap();
        }
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut forward = Vec::new();
        while it.valid() {
            forward.push(key::user_key(it.key()).to_vec());
            it.next().unwrap();
        }
        assert_eq!(forward, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        it.seek_to_last().unwrap();
        assert_eq!(key::user_key(it.key()), b"c");
        it.prev().unwrap();
        assert_eq!(key::user_key(it.key()), b"b");
        it.seek_for_prev(&key::seek_key(b"bb", 100)).unwrap();
        assert_eq!(key::user_key(it.key()), b"b");
    }

    #[test]
    fn tombstones_respect_snapshots() {
        let m = MemTable::new(1);
        m.insert_range_tombstone(b"a", b"m", 10);
        assert_eq!(m.max_covering_tombstone(b"c", 9), 0);
        assert_eq!(m.max_covering_tombstone(b"c", 10), 10);
        assert_eq!(m.max_covering_tombstone(b"m", 10), 0);
    }

    #[test]
    fn gets_at_a_published_sequence_number_see_whole_batches() {
        // One writer inserts batches of three keys with one round number;
        // readers load the published sequence number and read the three
        // keys at it: they must agree (what the Db's snapshots rely on).
        let m = Arc::new(MemTable::new(1));
        let published = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, published, stop) =
                    (Arc::clone(&m), Arc::clone(&published), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut checks = 0u64;
                    while !stop.load(AtomicOrdering::Relaxed) || checks == 0 {
                        let snapshot = published.load(AtomicOrdering::Acquire);
                        for writer in 0..3 {
                            let read = |part: &str| {
                                m.get(format!("w{writer}/{part}").as_bytes(), snapshot)
                                    .unwrap()
                                    .map(|f| f.value)
                            };
                            let (a, b, c) = (read("a"), read("b"), read("c"));
                            assert!(
                                a == b && b == c,
                                "torn batch at {snapshot}: {a:?} {b:?} {c:?}"
                            );
                        }
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        let mut sequence_number = 0;
        for round in 0..3000u64 {
            for writer in 0..3 {
                let value = format!("{round:08}");
                for part in ["a", "b", "c"] {
                    sequence_number += 1;
                    m.insert(
                        format!("w{writer}/{part}").as_bytes(),
                        sequence_number,
                        ValueKind::Value,
                        value.as_bytes(),
                    )
                    .unwrap();
                }
                published.store(sequence_number, AtomicOrdering::Release);
            }
        }
        stop.store(true, AtomicOrdering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    }

    #[test]
    fn a_memtable_on_recycled_chunks_shows_none_of_the_old_entries() {
        let pool = Arc::new(ChunkPool::new(8 << 20));
        let old = MemTable::with_chunk_pool(1, Some(Arc::clone(&pool)));
        for i in 0..100_000u64 {
            let key = format!("old{i:08}");
            old.insert(key.as_bytes(), i + 1, ValueKind::Value, &[7u8; 100])
                .unwrap();
        }
        drop(old);
        assert_eq!(pool.len(), 2, "the old memtable's chunks were not pooled");
        let new = Arc::new(MemTable::with_chunk_pool(2, Some(Arc::clone(&pool))));
        // Reverse order: every insert searches, over nodes in reused memory.
        for i in (0..100_000u64).rev() {
            let key = format!("new{i:08}");
            let value = key.repeat(4);
            new.insert(key.as_bytes(), i + 1, ValueKind::Value, value.as_bytes())
                .unwrap();
        }
        assert!(pool.len() < 2, "the new memtable took no pooled chunk");
        assert_eq!(new.get(b"old00000005", 1 << 40).unwrap(), None);
        let mut it = new.iter();
        it.seek_to_first().unwrap();
        let mut count = 0u64;
        while it.valid() {
            let expected = format!("new{count:08}");
            assert_eq!(key::user_key(it.key()), expected.as_bytes());
            assert_eq!(it.value(), expected.repeat(4).as_bytes());
            count += 1;
            it.next().unwrap();
        }
        assert_eq!(count, 100_000);
    }

    #[test]
    fn a_memtable_whose_arena_used_most_slots_is_full_but_takes_the_batch_in_hand() {
        let m = MemTable::new(1);
        m.insert(b"a", 1, ValueKind::Value, b"1").unwrap();
        assert!(!m.is_full(64 << 20));
        m.writer.lock().skip_arena_slots(arena::SLOTS_BEFORE_FULL);
        // A large value takes a dedicated chunk: one more slot.
        m.insert(b"b", 2, ValueKind::Value, &vec![7u8; 2 << 20])
            .unwrap();
        assert!(
            m.is_full(64 << 20),
            "full by slots, far below the byte limit"
        );
        // The rest of the batch still fits.
        m.insert(b"c", 3, ValueKind::Value, &vec![8u8; 2 << 20])
            .unwrap();
        assert_eq!(m.get(b"c", 3).unwrap().unwrap().value.len(), 2 << 20);
        // Past every slot, an insert fails with an error, not a panic.
        m.writer.lock().skip_arena_slots(4096);
        assert!(
            m.insert(b"d", 4, ValueKind::Value, &vec![9u8; 2 << 20])
                .is_err()
        );
    }
}
