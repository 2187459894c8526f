//! [`SkipList`]: the memtable's ordered map of internal keys to values —
//! a skiplist whose nodes live inline in an [`Arena`], written by one
//! writer and read by any number of readers without locks.
//!
//! Why not a general concurrent skiplist: the memtable has exactly one
//! writer at a time (the leader of a write group, or recovery), entries
//! are never removed (the whole memtable is dropped after its flush), and
//! keys never repeat (sequence numbers are unique). Under those rules a
//! node needs no reference count, no removal mark and no per-node heap
//! allocation: the key and value sit in the node itself, in the arena, and
//! the memory of the whole list is freed at once. A general lock-free map
//! (crossbeam's `SkipMap`, which this replaced) pays two allocations per
//! insert, and the flush thread paid for freeing them one by one.
//!
//! Node layout, in 64-bit words from the node's address:
//!
//! ```text
//! 0                trailer: (sequence_number << 8) | kind
//! 1                user_key_len (low 32 bits) | height << 32
//! 2 .. 2+height    next node at levels 0 .. height-1 (arena address, NULL at the end)
//! then             the user key as big-endian words, zero-padded (see `search_key.rs`)
//! then             value_len
//! then             the value as little-endian words, zero-padded
//! ```
//!
//! What a search reads (header, tower, key) comes first and is placed
//! within one cache line when it fits (`Arena::allocate`); the value's
//! length is read only with the value.
//!
//! Publication (the one ordering rule): the writer stores every word of a
//! new node, including its own next pointers, with `Relaxed`, then links
//! it into each level bottom-up by storing its address into the
//! predecessor's next pointer with `Release`. Readers load next pointers
//! with `Acquire`, so a reader that reaches a node sees all of it. A reader
//! racing an insert finds the list with or without the new node at each
//! level; both are valid skiplists, because the node is linked at level 0
//! (the level that holds every node) before any level above.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use super::arena::{Addr, Arena, ArenaCursor, ArenaFull, ChunkPool, NULL};
use super::search_key::{SearchKey, compare_stored, key_word};

/// Tallest tower. With a branching factor of 2, 24 levels keep searches
/// logarithmic up to 2^24 (16 M) entries, more than a memtable holds.
///
/// Why a branching factor of 2 and not LevelDB's 4: a memtable of tens of
/// MiB does not fit in the CPU caches, and the nodes a search touches on
/// the lowest levels are the ones that miss. A search visits about
/// 1/p nodes per level: with p = 1/4 about four on level 0, with p = 1/2
/// about two. The extra towers cost 5 bytes per entry on average.
pub(crate) const MAX_HEIGHT: usize = 24;

const TRAILER_WORD: usize = 0;
const META_WORD: usize = 1;
const HEADER_WORDS: usize = 2;

/// The list, shared by the writer and the readers.
#[derive(Debug)]
pub(crate) struct SkipList {
    arena: Arena,
    /// A node with a tower of `MAX_HEIGHT` and no key, before every node;
    /// never compared and never returned.
    head: Addr,
    /// Levels in use. Invariant: `1 <= height <= MAX_HEIGHT`; only grows.
    /// A reader that sees a stale value searches from a lower level, which
    /// is still correct; one that sees a new value before the head's next
    /// pointer at that level finds NULL there, also correct.
    height: AtomicUsize,
}

/// What only the writer may touch; the memtable keeps it behind a lock.
#[derive(Debug)]
pub(crate) struct SkipListWriter {
    cursor: ArenaCursor,
    /// State of the xorshift generator that draws tower heights; seeded
    /// with a constant so that a run is reproducible.
    rng: u64,
    /// The node inserted last (NULL before the first insert).
    last: Addr,
    /// For each level, the node after which a key that sorts right after
    /// `last` would be linked: `last` on the levels its tower reaches,
    /// `last`'s own predecessor above them. Lets an insert in ascending
    /// key order (a sequential fill; the revision log of the kv layer)
    /// skip the search.
    predecessors_after_last: [Addr; MAX_HEIGHT],
}

/// A node of the list, read through its words in the arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    words: &'a [AtomicU64],
}

impl SkipList {
    /// An empty list and its writer, its arena drawing on `pool`.
    pub(crate) fn new(pool: Option<Arc<ChunkPool>>) -> (SkipList, SkipListWriter) {
        let (arena, mut cursor) = Arena::new(pool);
        // The first allocation of a fresh arena cannot fail.
        let head = match arena.allocate(&mut cursor, HEADER_WORDS + MAX_HEIGHT, 1) {
            Ok((addr, _)) => addr,
            Err(ArenaFull) => unreachable!("a fresh arena is full"),
        };
        // Every word a reader can read is stored explicitly: a recycled
        // chunk is not zeroed.
        let head_words = arena.words_from(head);
        head_words[TRAILER_WORD].store(0, AtomicOrdering::Relaxed);
        head_words[META_WORD].store((MAX_HEIGHT as u64) << 32, AtomicOrdering::Relaxed);
        for next in &head_words[HEADER_WORDS..HEADER_WORDS + MAX_HEIGHT] {
            next.store(NULL, AtomicOrdering::Relaxed);
        }
        let list = SkipList {
            arena,
            head,
            height: AtomicUsize::new(1),
        };
        let writer = SkipListWriter {
            cursor,
            rng: 0x9E37_79B9_7F4A_7C15,
            last: NULL,
            predecessors_after_last: [head; MAX_HEIGHT],
        };
        (list, writer)
    }

    /// The node at `addr`, which must have been published.
    #[inline]
    pub(crate) fn node(&self, addr: Addr) -> Node<'_> {
        debug_assert_ne!(addr, NULL);
        Node {
            words: self.arena.words_from(addr),
        }
    }

    /// Inserts `user_key` with `trailer` and `value`. Internal keys must be
    /// unique (sequence numbers are); returns the bytes the node took.
    /// The padding that aligned it is left out: it depends on where the
    /// allocator placed the chunk, and a memtable's size decides when it is
    /// flushed, which must be a function of the writes alone (the
    /// simulator replays a run from its seed; with the padding counted,
    /// flushes moved from run to run).
    pub(crate) fn insert(
        &self,
        writer: &mut SkipListWriter,
        user_key: &[u8],
        trailer: u64,
        value: &[u8],
    ) -> Result<usize, ArenaFull> {
        // Batches encode lengths as u32, so nothing longer reaches here.
        assert!(
            user_key.len() <= u32::MAX as usize,
            "a user key of {} bytes",
            user_key.len()
        );
        let key = SearchKey::new(user_key, trailer);
        let predecessors = if self.sorts_right_after_last(writer, &key) {
            // The shortcut must find what the search would.
            debug_assert_eq!(
                writer.predecessors_after_last,
                self.find_predecessors(&key),
                "the recorded predecessors of an ascending insert are stale"
            );
            writer.predecessors_after_last
        } else {
            self.find_predecessors(&key)
        };

        let height = random_height(&mut writer.rng);
        let key_words = user_key.len().div_ceil(8);
        let value_words = value.len().div_ceil(8);
        let node_words = HEADER_WORDS + height + key_words + 1 + value_words;
        // A search reads the header, the tower and the key.
        let hot_words = HEADER_WORDS + height + key_words;
        let (addr, padding_words) =
            self.arena
                .allocate(&mut writer.cursor, node_words, hot_words)?;
        let words = &self.arena.words_from(addr)[..node_words];

        // Fill the node; nobody can reach it yet, so Relaxed suffices.
        words[TRAILER_WORD].store(trailer, AtomicOrdering::Relaxed);
        words[META_WORD].store(
            user_key.len() as u64 | (height as u64) << 32,
            AtomicOrdering::Relaxed,
        );
        let (tower, payload) = words[HEADER_WORDS..].split_at(height);
        let (key_slots, value_part) = payload.split_at(key_words);
        let (value_len_slot, value_slots) = value_part.split_at(1);
        value_len_slot[0].store(value.len() as u64, AtomicOrdering::Relaxed);
        for (slot, chunk) in key_slots.iter().zip(user_key.chunks(8)) {
            slot.store(key_word(chunk), AtomicOrdering::Relaxed);
        }
        for (slot, chunk) in value_slots.iter().zip(value.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            slot.store(u64::from_le_bytes(bytes), AtomicOrdering::Relaxed);
        }
        for (level, slot) in tower.iter().enumerate() {
            slot.store(
                self.node(predecessors[level]).next(level),
                AtomicOrdering::Relaxed,
            );
        }
        #[cfg(debug_assertions)]
        for (level, &predecessor) in predecessors.iter().enumerate().take(height) {
            // Invariant: predecessor < key < its successor, on every level.
            if predecessor != self.head {
                debug_assert_eq!(self.node(predecessor).compare(&key), Ordering::Less);
            }
            let successor = self.node(predecessor).next(level);
            if successor != NULL {
                debug_assert_eq!(self.node(successor).compare(&key), Ordering::Greater);
            }
        }

        if height > self.height.load(AtomicOrdering::Relaxed) {
            // The predecessors above the old height are the head, whose
            // next pointers there are NULL until the links below.
            self.height.store(height, AtomicOrdering::Relaxed);
        }
        // Publish: level 0 first, so that a node reachable at any level is
        // reachable at level 0.
        for (level, &predecessor) in predecessors.iter().enumerate().take(height) {
            self.node(predecessor).words[HEADER_WORDS + level].store(addr, AtomicOrdering::Release);
        }

        writer.last = addr;
        writer.predecessors_after_last = predecessors;
        for slot in &mut writer.predecessors_after_last[..height] {
            *slot = addr;
        }
        debug_assert!(padding_words < 8, "padding stays within a cache line");
        Ok(node_words * 8)
    }

    /// True if `key` belongs immediately after the last inserted node, so
    /// that node's recorded predecessors are `key`'s: nothing lies between
    /// them on level 0, hence on no level.
    fn sorts_right_after_last(&self, writer: &SkipListWriter, key: &SearchKey) -> bool {
        if writer.last == NULL {
            return false;
        }
        let last = self.node(writer.last);
        if last.compare(key) != Ordering::Less {
            return false;
        }
        let next = last.next(0);
        next == NULL || self.node(next).compare(key) == Ordering::Greater
    }

    /// For each level, the last node whose key is less than `key` (the head
    /// where there is none). Only the writer calls this, so the list does
    /// not change under it.
    fn find_predecessors(&self, key: &SearchKey) -> [Addr; MAX_HEIGHT] {
        let mut predecessors = [self.head; MAX_HEIGHT];
        let mut current = self.head;
        for level in (0..self.height.load(AtomicOrdering::Relaxed)).rev() {
            (current, _) = self.last_less_on_level(current, level, key);
            predecessors[level] = current;
        }
        predecessors
    }

    /// Walks right on `level` from `start` (less than `key`, or the head)
    /// to the last node less than `key`; returns it and the successor it
    /// saw there (NULL, or a node at or after `key`).
    ///
    /// The successor must be the one the walk compared, not a second load
    /// of the next pointer: the writer may have linked a newer entry of the
    /// same user key in between, which sorts before `key`.
    #[inline]
    fn last_less_on_level(&self, start: Addr, level: usize, key: &SearchKey) -> (Addr, Addr) {
        let mut current = start;
        loop {
            let next = self.node(current).next(level);
            if next != NULL && self.node(next).compare(key) == Ordering::Less {
                current = next;
            } else {
                return (current, next);
            }
        }
    }

    /// The last node less than `key` (the head if there is none) and, as
    /// the same search saw it, the first node at or after `key` (NULL if
    /// there is none).
    fn search(&self, key: &SearchKey) -> (Addr, Addr) {
        let mut current = self.head;
        let mut successor = NULL;
        for level in (0..self.height.load(AtomicOrdering::Relaxed)).rev() {
            (current, successor) = self.last_less_on_level(current, level, key);
        }
        (current, successor)
    }

    /// The last node less than `key`, or None if there is none.
    pub(crate) fn last_less_than(&self, key: &SearchKey) -> Option<Addr> {
        let (predecessor, _) = self.search(key);
        (predecessor != self.head).then_some(predecessor)
    }

    /// The first node at or after `key`, or None.
    pub(crate) fn first_at_or_after(&self, key: &SearchKey) -> Option<Addr> {
        let (_, successor) = self.search(key);
        (successor != NULL).then_some(successor)
    }

    /// The last node at or before `key`, or None.
    pub(crate) fn last_at_or_before(&self, key: &SearchKey) -> Option<Addr> {
        let (predecessor, successor) = self.search(key);
        if successor != NULL && self.node(successor).compare(key) == Ordering::Equal {
            return Some(successor);
        }
        (predecessor != self.head).then_some(predecessor)
    }

    /// The first node, or None if the list is empty.
    pub(crate) fn first(&self) -> Option<Addr> {
        let next = self.node(self.head).next(0);
        (next != NULL).then_some(next)
    }

    /// The last node, or None if the list is empty.
    pub(crate) fn last(&self) -> Option<Addr> {
        let mut current = self.head;
        for level in (0..self.height.load(AtomicOrdering::Relaxed)).rev() {
            loop {
                let next = self.node(current).next(level);
                if next == NULL {
                    break;
                }
                current = next;
            }
        }
        (current != self.head).then_some(current)
    }

    /// The node after `addr` on level 0, or None.
    #[inline]
    pub(crate) fn next(&self, addr: Addr) -> Option<Addr> {
        let next = self.node(addr).next(0);
        (next != NULL).then_some(next)
    }
}

impl SkipListWriter {
    /// Bytes the arena has allocated.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.cursor.allocated_bytes()
    }

    /// Chunk slots the arena has taken.
    pub(crate) fn arena_slots_used(&self) -> usize {
        self.cursor.slots_used()
    }

    /// Pretends the arena took `slots` more slots (tests of the full arena).
    #[cfg(test)]
    pub(crate) fn skip_arena_slots(&mut self, slots: usize) {
        self.cursor.skip_slots(slots);
    }
}

impl<'a> Node<'a> {
    #[inline]
    fn meta(&self) -> u64 {
        self.words[META_WORD].load(AtomicOrdering::Relaxed)
    }

    #[inline]
    fn height(&self) -> usize {
        (self.meta() >> 32) as usize
    }

    /// Length of the user key in bytes.
    #[inline]
    pub(crate) fn user_key_len(&self) -> usize {
        (self.meta() & 0xffff_ffff) as usize
    }

    /// `(sequence_number << 8) | kind`.
    #[inline]
    pub(crate) fn trailer(&self) -> u64 {
        self.words[TRAILER_WORD].load(AtomicOrdering::Relaxed)
    }

    /// The next node on `level` (NULL at the end). `level` must be below
    /// the node's height.
    #[inline]
    fn next(&self, level: usize) -> Addr {
        debug_assert!(level < self.height());
        self.words[HEADER_WORDS + level].load(AtomicOrdering::Acquire)
    }

    #[inline]
    fn key_words(&self) -> &'a [AtomicU64] {
        self.key_words_of(self.meta())
    }

    /// The key's words, given the node's meta word (already loaded).
    #[inline]
    fn key_words_of(&self, meta: u64) -> &'a [AtomicU64] {
        let start = HEADER_WORDS + (meta >> 32) as usize;
        let user_key_len = (meta & 0xffff_ffff) as usize;
        &self.words[start..start + user_key_len.div_ceil(8)]
    }

    /// This node's key compared with `key`, in internal-key order.
    #[inline]
    pub(crate) fn compare(&self, key: &SearchKey) -> Ordering {
        // One load of the meta word (atomic loads are not merged by the
        // compiler); the trailer is loaded only if the user keys tie.
        let meta = self.meta();
        compare_stored(
            self.key_words_of(meta)
                .iter()
                .map(|w| w.load(AtomicOrdering::Relaxed)),
            (meta & 0xffff_ffff) as usize,
            || self.trailer(),
            key,
        )
    }

    /// True if the node's user key is `user_key`.
    pub(crate) fn has_user_key(&self, user_key: &[u8]) -> bool {
        self.user_key_len() == user_key.len()
            && self
                .key_words()
                .iter()
                .zip(user_key.chunks(8))
                .all(|(word, chunk)| word.load(AtomicOrdering::Relaxed) == key_word(chunk))
    }

    /// Appends the user key's bytes to `out`.
    pub(crate) fn append_user_key(&self, out: &mut Vec<u8>) {
        let len = self.user_key_len();
        let start = out.len();
        for word in self.key_words() {
            out.extend_from_slice(&word.load(AtomicOrdering::Relaxed).to_be_bytes());
        }
        out.truncate(start + len);
    }

    /// Appends the value's bytes to `out`.
    pub(crate) fn append_value(&self, out: &mut Vec<u8>) {
        let value_len_word = HEADER_WORDS + self.height() + self.user_key_len().div_ceil(8);
        let len = self.words[value_len_word].load(AtomicOrdering::Relaxed) as usize;
        let start = value_len_word + 1;
        let begin = out.len();
        out.reserve(len.next_multiple_of(8));
        for word in &self.words[start..start + len.div_ceil(8)] {
            out.extend_from_slice(&word.load(AtomicOrdering::Relaxed).to_le_bytes());
        }
        out.truncate(begin + len);
    }
}

/// A tower height: 1 with probability 1/2, each further level with 1/2,
/// up to `MAX_HEIGHT`.
fn random_height(state: &mut u64) -> usize {
    // xorshift64: fast, and good enough to shape a skiplist.
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    let height = 1 + x.trailing_zeros() as usize;
    height.min(MAX_HEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    fn key_of(list: &SkipList, addr: Addr) -> (Vec<u8>, u64) {
        let node = list.node(addr);
        let mut user_key = Vec::new();
        node.append_user_key(&mut user_key);
        (user_key, node.trailer())
    }

    fn value_of(list: &SkipList, addr: Addr) -> Vec<u8> {
        let mut value = Vec::new();
        list.node(addr).append_value(&mut value);
        value
    }

    /// Model order: user key ascending, trailer descending.
    type ModelKey = (Vec<u8>, std::cmp::Reverse<u64>);

    fn model_key(user_key: &[u8], trailer: u64) -> ModelKey {
        (user_key.to_vec(), std::cmp::Reverse(trailer))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_like_an_ordered_map(
            entries in proptest::collection::vec(
                (
                    proptest::collection::vec(0u8..4, 0..20),
                    // Mostly small values, some larger than the first chunks.
                    prop_oneof![
                        9 => proptest::collection::vec(any::<u8>(), 0..40),
                        1 => proptest::collection::vec(any::<u8>(), 4000..20_000),
                    ],
                ),
                0..300,
            ),
            probes in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..20), 0u64..400), 0..50),
            ascending in any::<bool>(),
        ) {
            let mut entries = entries;
            if ascending {
                entries.sort();
            }
            let (list, mut writer) = SkipList::new(None);
            let mut model = BTreeMap::new();
            for (sequence_number, (user_key, value)) in entries.iter().enumerate() {
                let trailer = ((sequence_number as u64 + 1) << 8) | 1;
                list.insert(&mut writer, user_key, trailer, value).unwrap();
                model.insert(model_key(user_key, trailer), value.clone());
            }
            // Forward walk equals the model, keys and values.
            let mut walked = Vec::new();
            let mut at = list.first();
            while let Some(addr) = at {
                let (user_key, trailer) = key_of(&list, addr);
                walked.push((model_key(&user_key, trailer), value_of(&list, addr)));
                at = list.next(addr);
            }
            let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&walked, &expected);
            prop_assert_eq!(list.last().map(|a| key_of(&list, a)), model.keys().next_back().map(|(k, t)| (k.clone(), t.0)));
            for (user_key, trailer) in probes {
                let probe = SearchKey::new(&user_key, trailer);
                let target = model_key(&user_key, trailer);
                let at_or_after = model.range(target.clone()..).next().map(|(k, _)| k.clone());
                let at_or_before = model.range(..=target.clone()).next_back().map(|(k, _)| k.clone());
                let less = model.range(..target).next_back().map(|(k, _)| k.clone());
                let found = |addr: Option<Addr>| addr.map(|a| { let (k, t) = key_of(&list, a); model_key(&k, t) });
                prop_assert_eq!(found(list.first_at_or_after(&probe)), at_or_after);
                prop_assert_eq!(found(list.last_at_or_before(&probe)), at_or_before);
                prop_assert_eq!(found(list.last_less_than(&probe)), less);
            }
        }
    }

    #[test]
    fn readers_see_whole_nodes_while_the_writer_inserts() {
        // One writer inserts ascending and random keys while readers walk
        // the list: every node they reach must be complete (its value is
        // derived from its key) and the walk must be in order.
        let (list, mut writer) = SkipList::new(None);
        let list = Arc::new(list);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let list = Arc::clone(&list);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut walks = 0u64;
                    while !stop.load(AtomicOrdering::Relaxed) || walks == 0 {
                        let mut previous: Option<(Vec<u8>, u64)> = None;
                        let mut at = list.first();
                        while let Some(addr) = at {
                            let (user_key, trailer) = key_of(&list, addr);
                            let value = value_of(&list, addr);
                            assert_eq!(
                                value,
                                [user_key.as_slice(), &trailer.to_le_bytes()].concat()
                            );
                            if let Some((k, t)) = &previous {
                                assert!(
                                    (k, std::cmp::Reverse(*t))
                                        < (&user_key, std::cmp::Reverse(trailer))
                                );
                            }
                            previous = Some((user_key, trailer));
                            at = list.next(addr);
                        }
                        walks += 1;
                    }
                    walks
                })
            })
            .collect();
        let mut rng = 12345u64;
        for i in 0..20_000u64 {
            let user_key = if i % 2 == 0 {
                format!("seq{i:08}").into_bytes()
            } else {
                random_height(&mut rng);
                format!("rnd{:016x}", rng).into_bytes()
            };
            let trailer = ((i + 1) << 8) | 1;
            let value = [user_key.as_slice(), &trailer.to_le_bytes()].concat();
            list.insert(&mut writer, &user_key, trailer, &value)
                .unwrap();
        }
        stop.store(true, AtomicOrdering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        let mut count = 0;
        let mut at = list.first();
        while let Some(addr) = at {
            count += 1;
            at = list.next(addr);
        }
        assert_eq!(count, 20_000);
    }

    #[test]
    fn heights_follow_a_half_branching() {
        let mut rng = 1u64;
        let mut counts = [0usize; MAX_HEIGHT + 1];
        for _ in 0..100_000 {
            counts[random_height(&mut rng)] += 1;
        }
        // About 50 % at height 1 and 25 % at height 2.
        assert!((48_000..52_000).contains(&counts[1]), "{counts:?}");
        assert!((23_000..27_000).contains(&counts[2]), "{counts:?}");
        assert_eq!(counts[0], 0);
    }
}
