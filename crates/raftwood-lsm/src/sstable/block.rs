//! A block: the unit of reading, caching and checksumming in an SSTable.
//!
//! Layout of an uncompressed block (see `docs/sstable-format.md`, "Blocks"):
//!
//! ```text
//! entry*                    each: shared varint32 | unshared varint32 |
//!                                 value_len varint32 | key suffix | value
//! restart offset: u32 LE    one per restart point, strictly increasing
//! num_restarts:   u32 LE    >= 1
//! ```
//!
//! Keys are encoded internal keys in `compare_internal_keys` order. A key at a
//! restart point is stored whole (`shared == 0`), so a reader can binary
//! search the restart array without decoding the entries in between.
//!
//! [`Block`] validates the restart array once when it is built from bytes, so
//! the iterator can trust restart offsets; entries themselves are checked as
//! they are decoded.

mod builder;
mod iterator;
mod search_hint;

pub use builder::BlockBuilder;
pub use iterator::BlockIterator;
pub use search_hint::SearchHint;

use std::fmt;
use std::sync::{Arc, Weak};

use super::coding::read_u32_le;
use crate::error::{Error, Result};

/// Size of the `num_restarts` field at the end of a block.
const NUM_RESTARTS_LEN: usize = 4;

/// A decoded (decompressed, checksum-verified) block, cheap to clone.
#[derive(Clone)]
pub struct Block {
    /// The whole block: entries, restart array and restart count.
    /// An `Arc<Vec>` rather than an `Arc<[u8]>`: the block arrives as a
    /// `Vec` from a read (or decompression), and `Arc<[u8]>::from` would
    /// copy it; a block-cache miss is common enough for the copy to show.
    data: Arc<Vec<u8>>,
    /// Where the restart array begins; entries occupy `data[..restarts_offset]`.
    /// Invariant: `restarts_offset + 4 * num_restarts + 4 == data.len()`.
    restarts_offset: usize,
    /// Invariant: `num_restarts >= 1`; restart 0 is at offset 0; offsets are
    /// strictly increasing and each lies inside the entry region (restart 0
    /// may equal `restarts_offset` only when the block holds no entries).
    num_restarts: usize,
    /// Built on request for blocks with many restarts (index blocks).
    search_hint: Option<Arc<SearchHint>>,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("size_bytes", &self.data.len())
            .field("num_restarts", &self.num_restarts)
            .finish()
    }
}

/// A [`Block`] that is not kept alive by this reference (see
/// [`Block::downgrade`]): the block cache stays the owner, and so the only
/// thing that charges the block to the memory budget.
#[derive(Debug, Clone)]
pub struct WeakBlock {
    data: Weak<Vec<u8>>,
    restarts_offset: usize,
    num_restarts: usize,
    search_hint: Option<Weak<SearchHint>>,
}

impl WeakBlock {
    /// The block, if something (normally the block cache) still holds it.
    pub fn upgrade(&self) -> Option<Block> {
        // The fields were validated by `Block::new` for this very data.
        // The hint lives exactly as long as the data (the cached `Block`
        // holds both); if it were gone, the block is served without it.
        self.data.upgrade().map(|data| Block {
            data,
            restarts_offset: self.restarts_offset,
            num_restarts: self.num_restarts,
            search_hint: self.search_hint.as_ref().and_then(Weak::upgrade),
        })
    }
}

fn block_corruption(detail: String) -> Error {
    Error::corruption("sstable block", detail)
}

impl Block {
    /// Parses a block's bytes, validating its restart array.
    pub fn new(data: Vec<u8>) -> Result<Block> {
        let len = data.len();
        let count_offset = len.checked_sub(NUM_RESTARTS_LEN).ok_or_else(|| {
            block_corruption(format!("{len} bytes is too short to hold a restart count"))
        })?;
        let num_restarts = read_u32_le(&data, count_offset)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| block_corruption("unreadable restart count".to_string()))?;
        if num_restarts == 0 {
            return Err(block_corruption("block has no restart points".to_string()));
        }
        let restarts_offset = num_restarts
            .checked_mul(4)
            .and_then(|array_len| count_offset.checked_sub(array_len))
            .ok_or_else(|| {
                block_corruption(format!(
                    "{num_restarts} restart points do not fit in a {len}-byte block"
                ))
            })?;
        let mut previous: Option<usize> = None;
        for index in 0..num_restarts {
            let point = read_u32_le(&data, restarts_offset + 4 * index)
                .and_then(|p| usize::try_from(p).ok())
                .ok_or_else(|| block_corruption("unreadable restart point".to_string()))?;
            let in_range = point < restarts_offset || (index == 0 && point == 0);
            let ordered = match previous {
                None => point == 0,
                Some(previous) => point > previous,
            };
            if !in_range || !ordered {
                return Err(block_corruption(format!(
                    "restart point {index} at offset {point} is out of order or outside \
                     the {restarts_offset}-byte entry region"
                )));
            }
            previous = Some(point);
        }
        debug_assert_eq!(restarts_offset + 4 * num_restarts + NUM_RESTARTS_LEN, len);
        Ok(Block {
            data: Arc::new(data),
            restarts_offset,
            num_restarts,
            search_hint: None,
        })
    }

    /// Adds a [`SearchHint`] if the block has enough restarts to profit
    /// (index blocks): seeks then decode few entries.
    pub fn with_search_hint(mut self) -> Block {
        self.search_hint =
            SearchHint::build(self.num_restarts, |index| self.restart_key(index)).map(Arc::new);
        self
    }

    pub(super) fn search_hint(&self) -> Option<&SearchHint> {
        self.search_hint.as_deref()
    }

    /// The whole key stored at restart point `index` (where `shared == 0`),
    /// or `None` if that entry is malformed.
    fn restart_key(&self, index: usize) -> Option<&[u8]> {
        let offset = self.restart_point(index);
        let entries = self.entries();
        BlockIterator::decode_header(entries, offset)
            .filter(|header| header.shared == 0)
            .and_then(|header| entries.get(header.suffix_start..header.suffix_end))
            .filter(|key| key.len() >= crate::key::TRAILER_LEN)
    }

    /// A reference to this block that does not keep it in memory.
    pub fn downgrade(&self) -> WeakBlock {
        WeakBlock {
            data: Arc::downgrade(&self.data),
            restarts_offset: self.restarts_offset,
            num_restarts: self.num_restarts,
            search_hint: self.search_hint.as_ref().map(Arc::downgrade),
        }
    }

    /// Size of the decoded block in bytes (what it costs in the cache).
    pub fn size_bytes(&self) -> usize {
        self.data.len()
            + self
                .search_hint
                .as_ref()
                .map_or(0, |hint| hint.size_bytes())
    }

    /// A cursor over this block's entries, initially unpositioned.
    pub fn iter(&self) -> BlockIterator {
        BlockIterator::new(self.clone())
    }

    /// The entry region (everything before the restart array).
    fn entries(&self) -> &[u8] {
        self.data.get(..self.restarts_offset).unwrap_or_default()
    }

    fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// Offset of restart point `index`. Validated in [`Block::new`]; an
    /// out-of-range index (a bug) maps to the end of the entries, which reads
    /// as "no entry" rather than panicking.
    fn restart_point(&self, index: usize) -> usize {
        debug_assert!(index < self.num_restarts);
        read_u32_le(&self.data, self.restarts_offset + 4 * index)
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(self.restarts_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iterator::InternalIterator;
    use crate::key::{ValueKind, internal_key};

    fn build(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Block {
        let mut builder = BlockBuilder::new(restart_interval);
        for (key, value) in entries {
            builder.add(key, value);
        }
        Block::new(builder.finish().to_vec()).unwrap()
    }

    fn sample_entries(count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..count)
            .map(|i| {
                let user_key = format!("key{:05}", i * 3);
                let key = internal_key(user_key.as_bytes(), 1000 - i as u64, ValueKind::Value);
                (key, format!("value-{i}").into_bytes())
            })
            .collect()
    }

    #[test]
    fn round_trip_forward_and_backward_at_several_restart_intervals() {
        for restart_interval in [1, 2, 16] {
            for count in [0, 1, 2, 15, 16, 17, 100] {
                let entries = sample_entries(count);
                let block = build(&entries, restart_interval);
                let mut iter = block.iter();
                iter.seek_to_first().unwrap();
                let mut forward = Vec::new();
                while iter.valid() {
                    forward.push((iter.key().to_vec(), iter.value().to_vec()));
                    iter.next().unwrap();
                }
                assert_eq!(
                    forward, entries,
                    "interval {restart_interval} count {count}"
                );

                iter.seek_to_last().unwrap();
                let mut backward = Vec::new();
                while iter.valid() {
                    backward.push((iter.key().to_vec(), iter.value().to_vec()));
                    iter.prev().unwrap();
                }
                backward.reverse();
                assert_eq!(
                    backward, entries,
                    "interval {restart_interval} count {count}"
                );
            }
        }
    }

    #[test]
    fn seek_and_seek_for_prev_match_a_sorted_model() {
        for restart_interval in [1, 2, 16] {
            let entries = sample_entries(50);
            let block = build(&entries, restart_interval);
            let mut iter = block.iter();
            // Targets between, on and around the stored keys.
            for i in 0..160u64 {
                let user_key = format!("key{:05}", i);
                for seq in [0, 1000 - i, 2000] {
                    let target = internal_key(user_key.as_bytes(), seq, ValueKind::Value);
                    iter.seek(&target).unwrap();
                    let expected = entries
                        .iter()
                        .find(|(k, _)| crate::key::compare_internal_keys(k, &target).is_ge());
                    assert_eq!(
                        iter.valid().then(|| iter.key().to_vec()),
                        expected.map(|e| e.0.clone())
                    );

                    iter.seek_for_prev(&target).unwrap();
                    let expected = entries
                        .iter()
                        .rev()
                        .find(|(k, _)| crate::key::compare_internal_keys(k, &target).is_le());
                    assert_eq!(
                        iter.valid().then(|| iter.key().to_vec()),
                        expected.map(|e| e.0.clone())
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn seek_with_a_search_hint_matches_a_sorted_model(
            suffixes in proptest::collection::btree_set(
                proptest::collection::vec(proptest::prop_oneof![
                    proptest::strategy::Just(0u8), proptest::strategy::Just(1u8),
                    proptest::strategy::Just(b'a'), proptest::num::u8::ANY,
                ], 0..12),
                64..300,
            ),
            targets in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..14), 0u64..3),
                1..60,
            ),
            restart_interval in 1usize..3,
        ) {
            // Keys share a prefix, then differ in bytes that include zeros
            // and in length: the cases the hint's padding must get right.
            let entries: Vec<(Vec<u8>, Vec<u8>)> = suffixes
                .iter()
                .flat_map(|suffix| {
                    let mut user_key = b"shared/prefix/".to_vec();
                    user_key.extend_from_slice(suffix);
                    [2u64, 1].map(|seq| {
                        (internal_key(&user_key, seq, ValueKind::Value), user_key.clone())
                    })
                })
                .collect();
            let mut entries = entries;
            // Index blocks end with a short successor and may begin with a
            // short separator: keys outside the shared prefix at both ends.
            entries.insert(0, (internal_key(b"shared/", 1, ValueKind::Value), b"shared/".to_vec()));
            entries.push((internal_key(b"t", 1, ValueKind::Value), b"t".to_vec()));
            let plain = build(&entries, restart_interval);
            let hinted = plain.clone().with_search_hint();
            proptest::prop_assert!(hinted.search_hint().is_some());
            let user_keys = entries.iter().map(|(_, user_key)| user_key.clone());
            let candidates = targets
                .iter()
                .map(|(suffix, seq)| {
                    let mut user_key = b"shared/prefix/".to_vec();
                    user_key.extend_from_slice(suffix);
                    (user_key, *seq)
                })
                .chain(user_keys.map(|user_key| (user_key, 1)))
                .chain([(b"a".to_vec(), 0), (b"z".to_vec(), 0), (Vec::new(), 0)]);
            for (user_key, seq) in candidates {
                let target = internal_key(&user_key, seq, ValueKind::Value);
                let expected = entries
                    .iter()
                    .find(|(k, _)| crate::key::compare_internal_keys(k, &target).is_ge())
                    .map(|e| e.0.clone());
                for block in [&plain, &hinted] {
                    let mut iter = block.iter();
                    iter.seek(&target).unwrap();
                    proptest::prop_assert_eq!(
                        iter.valid().then(|| iter.key().to_vec()),
                        expected.clone()
                    );
                }
            }
        }
    }

    #[test]
    fn search_hint_handles_long_runs_of_tied_words() {
        // Every key is the prefix, eight equal bytes, then a counter: all
        // words tie, so the hint must fall back to comparing keys.
        let user_key = |i: u16| {
            let mut key = b"p".to_vec();
            key.extend_from_slice(&[7u8; 8]);
            key.extend_from_slice(&i.to_be_bytes());
            key
        };
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..200u16)
            .map(|i| {
                (
                    internal_key(&user_key(i * 2), 1, ValueKind::Value),
                    Vec::new(),
                )
            })
            .collect();
        let hinted = build(&entries, 1).with_search_hint();
        assert!(hinted.search_hint().is_some());
        let mut iter = hinted.iter();
        for i in 0..401u16 {
            let target = internal_key(&user_key(i), 1, ValueKind::Value);
            iter.seek(&target).unwrap();
            let expected = entries
                .iter()
                .find(|(k, _)| crate::key::compare_internal_keys(k, &target).is_ge());
            assert_eq!(
                iter.valid().then(|| iter.key().to_vec()),
                expected.map(|e| e.0.clone()),
                "target {i}"
            );
        }
    }

    #[test]
    fn rejects_malformed_restart_arrays() {
        assert!(Block::new(vec![]).unwrap_err().is_corruption());
        assert!(Block::new(vec![0, 0, 0, 0]).unwrap_err().is_corruption());
        // One restart claimed, but no room for its offset.
        assert!(Block::new(vec![1, 0, 0, 0]).unwrap_err().is_corruption());
        // Empty block: one restart at 0.
        assert!(Block::new(vec![0, 0, 0, 0, 1, 0, 0, 0]).is_ok());
        // Two restarts in an empty block.
        assert!(
            Block::new(vec![0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
                .unwrap_err()
                .is_corruption()
        );
        // A huge restart count must not overflow.
        assert!(Block::new(vec![0xff; 8]).unwrap_err().is_corruption());
    }
}
