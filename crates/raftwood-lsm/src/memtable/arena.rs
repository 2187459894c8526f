//! [`Arena`]: the memtable's memory — an append-only store of 64-bit words
//! that one writer fills while any number of readers read, without locks
//! and without unsafe code.
//!
//! Why words of `AtomicU64`: a reader may look at a node while the writer
//! is filling the next one in the same chunk, so every word must be an
//! atomic for that to be defined behaviour in safe Rust. The writer stores
//! a node's words with `Relaxed` and then publishes the node by storing its
//! address with `Release` (see `skiplist.rs`); a reader that loaded the
//! address with `Acquire` sees every word. On x86-64 and AArch64 a relaxed
//! atomic load or store is an ordinary `mov`/`ldr`/`str`, so the words cost
//! what plain memory costs.
//!
//! Memory comes in chunks that never move or shrink: a chunk is allocated
//! once (its slot is a `OnceLock`), lives until the arena is dropped, and
//! an address is `(slot << 32) | word offset`. Chunks start small (a
//! memtable in a test holds a few entries) and double up to
//! [`MAX_CHUNK_WORDS`]; an entry too large for a regular chunk gets a chunk
//! of its own, so a 64 MiB value wastes nothing.
//!
//! Chunks of the regular size are recycled through a [`ChunkPool`] that a
//! database shares among its memtables: a flushed memtable's chunks go to
//! the next one instead of back to the allocator. Fresh chunks cost a page
//! fault and a kernel page clear per 4 KiB on first touch (in the server's
//! put profile, about 5 % of all CPU before the pool). A recycled chunk
//! still holds the old memtable's words; that is harmless because a reader
//! only reads words of published nodes, and the writer stores every one of
//! those words before it publishes the node (`skiplist.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// The address of a word: chunk slot in the high 32 bits, word offset in
/// the low 32. [`NULL`] (slot 0, offset 0) is never handed out.
pub(crate) type Addr = u64;

/// The address that names nothing (the end of a skiplist level).
pub(crate) const NULL: Addr = 0;

/// Chunk slots per arena. Every regular chunk (up to 4 MiB) and every
/// dedicated chunk (one entry over 1 MiB) takes one.
const CHUNK_SLOTS: usize = 4096;

/// Once this many slots are used, the memtable counts as full (see
/// `MemTable::is_full`) and is frozen before the next write batch, whatever
/// its size in bytes. A batch may then still take up to
/// `CHUNK_SLOTS - SLOTS_BEFORE_FULL` slots: with write batches limited to
/// `MAX_BATCH_BYTES` (2 GiB; `db/write.rs`), at most 2048 dedicated chunks
/// of over 1 MiB and 512 regular ones, so an insert never finds the arena
/// full.
pub(crate) const SLOTS_BEFORE_FULL: usize = 1024;

/// Words of the first chunk (4 KiB).
const FIRST_CHUNK_WORDS: usize = 512;

/// Regular chunks stop doubling at 4 MiB.
const MAX_CHUNK_WORDS: usize = 512 * 1024;

/// An allocation larger than this gets a chunk of its own rather than
/// leaving the rest of a regular chunk unused.
const DEDICATED_CHUNK_THRESHOLD_WORDS: usize = MAX_CHUNK_WORDS / 4;

/// Words in a 64-byte cache line.
const WORDS_PER_LINE: usize = 8;

/// The chunks. Shared by the writer and the readers.
#[derive(Debug)]
pub(crate) struct Arena {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// Where regular chunks come from and go back to (None: allocate
    /// fresh ones and free them).
    pool: Option<Arc<ChunkPool>>,
}

/// Regular-size chunks of dropped arenas, kept for the next ones.
#[derive(Debug)]
pub struct ChunkPool {
    chunks: Mutex<Vec<Box<[AtomicU64]>>>,
    /// At most this many chunks are kept; the rest are freed.
    max_chunks: usize,
}

impl ChunkPool {
    /// A pool that keeps up to `max_bytes` of chunks (rounded down to
    /// whole chunks). A database sizes it to one memtable.
    pub fn new(max_bytes: usize) -> ChunkPool {
        ChunkPool {
            chunks: Mutex::new(Vec::new()),
            max_chunks: max_bytes / (MAX_CHUNK_WORDS * 8),
        }
    }

    fn take(&self) -> Option<Box<[AtomicU64]>> {
        self.chunks.lock().pop()
    }

    fn give_back(&self, chunk: Box<[AtomicU64]>) {
        debug_assert_eq!(chunk.len(), MAX_CHUNK_WORDS);
        let mut chunks = self.chunks.lock();
        if chunks.len() < self.max_chunks {
            chunks.push(chunk);
        }
    }

    /// Chunks waiting for reuse.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.chunks.lock().len()
    }
}

/// The writer's allocation state; only the one writer holds it (the
/// memtable keeps it behind its writer lock).
///
/// Invariant: `used <= capacity`, and `capacity` is the length of the chunk
/// in slot `current` (0 before the first chunk).
#[derive(Debug)]
pub(crate) struct ArenaCursor {
    /// Slot of the regular chunk being filled.
    current: usize,
    /// Words of that chunk handed out.
    used: usize,
    /// Words of that chunk.
    capacity: usize,
    /// The next unused slot.
    next_slot: usize,
    /// Size of the next regular chunk.
    next_chunk_words: usize,
    /// Words allocated in all chunks (what the arena costs in memory).
    allocated_words: usize,
    /// Word offset of chunk `current`'s first word within its cache line.
    line_phase_words: usize,
}

/// The arena has no slot left for another chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArenaFull;

impl Arena {
    /// An arena with no chunk allocated yet, taking regular chunks from
    /// `pool` when it has some.
    pub(crate) fn new(pool: Option<Arc<ChunkPool>>) -> (Arena, ArenaCursor) {
        let arena = Arena {
            chunks: (0..CHUNK_SLOTS).map(|_| OnceLock::new()).collect(),
            pool,
        };
        let cursor = ArenaCursor {
            current: 0,
            used: 0,
            capacity: 0,
            // Slot 0's first word is never handed out, so that NULL names
            // nothing; the first chunk goes into slot 0 all the same.
            next_slot: 0,
            next_chunk_words: FIRST_CHUNK_WORDS,
            allocated_words: 0,
            line_phase_words: 0,
        };
        (arena, cursor)
    }

    /// Allocates `words` words that do not cross a chunk boundary,
    /// placed so that their first `hot_words` do not cross a 64-byte cache
    /// line when they fit in one (a skiplist search reads a node's header,
    /// tower and key: one cache miss instead of two).
    ///
    /// The words are not zeroed: a chunk recycled from the pool holds an
    /// old arena's words. The caller stores every word it will let a reader
    /// read.
    ///
    /// Returns the address and the words skipped before it to align it.
    ///
    /// Only the writer calls this (it holds the only `ArenaCursor`).
    pub(crate) fn allocate(
        &self,
        cursor: &mut ArenaCursor,
        words: usize,
        hot_words: usize,
    ) -> Result<(Addr, usize), ArenaFull> {
        assert!(words > 0, "an allocation of no words");
        assert!(hot_words <= words);
        if words > DEDICATED_CHUNK_THRESHOLD_WORDS {
            // Word 0 of slot 0 is NULL, so a dedicated chunk in slot 0
            // starts one word in.
            let skip = usize::from(cursor.next_slot == 0);
            let (slot, _) = self.new_chunk(cursor, words + skip)?;
            return Ok((address(slot, skip), 0));
        }
        let padding = |cursor: &ArenaCursor| {
            let line_offset = (cursor.line_phase_words + cursor.used) % WORDS_PER_LINE;
            if hot_words <= WORDS_PER_LINE && line_offset + hot_words > WORDS_PER_LINE {
                WORDS_PER_LINE - line_offset
            } else {
                0
            }
        };
        if cursor.capacity - cursor.used < words + padding(cursor) {
            // Double until the allocation and any padding fit (that is at
            // most a quarter of the largest regular chunk, so this ends).
            let mut chunk_words = cursor.next_chunk_words;
            while chunk_words < words + WORDS_PER_LINE {
                chunk_words *= 2;
            }
            cursor.next_chunk_words = (chunk_words * 2).min(MAX_CHUNK_WORDS);
            let (slot, line_phase_words) = self.new_chunk(cursor, chunk_words)?;
            cursor.current = slot;
            cursor.line_phase_words = line_phase_words;
            cursor.capacity = chunk_words;
            // Word 0 of slot 0 stays unused: its address is NULL.
            cursor.used = usize::from(slot == 0);
        }
        let padding_words = padding(cursor);
        cursor.used += padding_words;
        let addr = address(cursor.current, cursor.used);
        cursor.used += words;
        assert!(
            cursor.used <= cursor.capacity,
            "allocated past the end of a chunk"
        );
        Ok((addr, padding_words))
    }

    /// Allocates a chunk in the next slot; returns the slot and the word
    /// offset of the chunk's start within its cache line.
    fn new_chunk(
        &self,
        cursor: &mut ArenaCursor,
        words: usize,
    ) -> Result<(usize, usize), ArenaFull> {
        let slot = cursor.next_slot;
        if slot >= CHUNK_SLOTS {
            return Err(ArenaFull);
        }
        // Word offsets are 32 bits; no chunk comes near that (the largest
        // is one entry, and keys and values are limited far below 32 GiB).
        assert!(words <= u32::MAX as usize, "a chunk of {words} words");
        let recycled = match &self.pool {
            Some(pool) if words == MAX_CHUNK_WORDS => pool.take(),
            _ => None,
        };
        let chunk: Box<[AtomicU64]> =
            recycled.unwrap_or_else(|| (0..words).map(|_| AtomicU64::new(0)).collect());
        debug_assert_eq!(chunk.len(), words);
        let line_phase_words = (chunk.as_ptr() as usize / 8) % WORDS_PER_LINE;
        // Only the writer sets slots, each once, in order.
        let set = self.chunks[slot].set(chunk);
        assert!(set.is_ok(), "arena slot {slot} set twice");
        cursor.next_slot = slot + 1;
        cursor.allocated_words += words;
        Ok((slot, line_phase_words))
    }

    /// The words from `addr` to the end of its chunk.
    ///
    /// Panics if `addr` was never allocated: addresses come only from
    /// `allocate` and from nodes published after their chunk was set.
    #[inline]
    pub(crate) fn words_from(&self, addr: Addr) -> &[AtomicU64] {
        let (slot, offset) = ((addr >> 32) as usize, (addr & 0xffff_ffff) as usize);
        let Some(chunk) = self.chunks[slot].get() else {
            panic!("arena address {addr:#x} names a chunk that was never allocated");
        };
        &chunk[offset..]
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            for slot in self.chunks.iter_mut() {
                if let Some(chunk) = slot.take()
                    && chunk.len() == MAX_CHUNK_WORDS
                {
                    pool.give_back(chunk);
                }
            }
        }
    }
}

impl ArenaCursor {
    /// Bytes of all chunks allocated so far.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.allocated_words * 8
    }

    /// Chunk slots taken so far.
    pub(crate) fn slots_used(&self) -> usize {
        self.next_slot
    }

    /// Pretends `slots` more slots were taken (tests of the full arena).
    #[cfg(test)]
    pub(crate) fn skip_slots(&mut self, slots: usize) {
        self.next_slot += slots;
    }
}

fn address(slot: usize, offset: usize) -> Addr {
    ((slot as u64) << 32) | offset as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn allocations_are_disjoint_and_never_null() {
        let (arena, mut cursor) = Arena::new(None);
        let mut seen = Vec::new();
        for words in [
            1,
            3,
            500,
            8,
            FIRST_CHUNK_WORDS,
            DEDICATED_CHUNK_THRESHOLD_WORDS + 1,
            2,
        ] {
            let (addr, _) = arena.allocate(&mut cursor, words, 1).unwrap();
            assert_ne!(addr, NULL);
            assert!(arena.words_from(addr).len() >= words);
            for word in &arena.words_from(addr)[..words] {
                assert_eq!(word.load(Ordering::Relaxed), 0, "allocations overlap");
                word.store(u64::MAX, Ordering::Relaxed);
            }
            seen.push(addr);
        }
        // The dedicated chunk did not take over the regular one.
        assert_eq!(seen[6] >> 32, seen[4] >> 32);
        assert!(cursor.allocated_bytes() >= (DEDICATED_CHUNK_THRESHOLD_WORDS + 1) * 8);
    }

    #[test]
    fn an_allocation_larger_than_the_next_chunk_gets_a_chunk_that_fits() {
        let (arena, mut cursor) = Arena::new(None);
        for words in [2051, 10, 40_000, DEDICATED_CHUNK_THRESHOLD_WORDS, 3] {
            let (addr, _) = arena.allocate(&mut cursor, words, 1).unwrap();
            assert!(
                arena.words_from(addr).len() >= words,
                "{words} words do not fit"
            );
        }
    }

    #[test]
    fn hot_words_that_fit_a_cache_line_do_not_cross_one() {
        let (arena, mut cursor) = Arena::new(None);
        for (words, hot_words) in [(3, 3), (20, 6), (7, 7), (12, 8), (30, 5), (9, 9), (2, 2)] {
            for _ in 0..10 {
                let (addr, _) = arena.allocate(&mut cursor, words, hot_words).unwrap();
                let start = arena.words_from(addr).as_ptr() as usize;
                let end = start + hot_words * 8 - 1;
                if hot_words <= WORDS_PER_LINE {
                    assert_eq!(start / 64, end / 64, "{hot_words} hot words cross a line");
                }
            }
        }
    }

    #[test]
    fn regular_chunks_of_a_dropped_arena_are_reused() {
        let pool = Arc::new(ChunkPool::new(3 * MAX_CHUNK_WORDS * 8));
        let (arena, mut cursor) = Arena::new(Some(Arc::clone(&pool)));
        // Enough to reach several regular chunks, and one dedicated chunk.
        for _ in 0..40 {
            arena
                .allocate(&mut cursor, DEDICATED_CHUNK_THRESHOLD_WORDS / 2, 1)
                .unwrap();
        }
        arena
            .allocate(&mut cursor, DEDICATED_CHUNK_THRESHOLD_WORDS + 1, 1)
            .unwrap();
        let regular = arena
            .chunks
            .iter()
            .filter_map(|slot| slot.get())
            .filter(|chunk| chunk.len() == MAX_CHUNK_WORDS)
            .count();
        assert!(regular > 3, "only {regular} regular chunks");
        drop(arena);
        assert_eq!(pool.len(), 3, "the pool keeps at most its budget");

        let (arena, mut cursor) = Arena::new(Some(Arc::clone(&pool)));
        for _ in 0..40 {
            arena
                .allocate(&mut cursor, DEDICATED_CHUNK_THRESHOLD_WORDS / 2, 1)
                .unwrap();
        }
        assert_eq!(pool.len(), 0, "the next arena took the pooled chunks");
    }

    #[test]
    fn a_full_arena_says_so() {
        let (arena, mut cursor) = Arena::new(None);
        cursor.next_slot = CHUNK_SLOTS;
        assert_eq!(arena.allocate(&mut cursor, 1, 1), Err(ArenaFull));
    }
}
