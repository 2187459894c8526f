//! The whole-table Bloom filter over user keys.
//!
//! Filter block layout (see `docs/sstable-format.md`, "Filter block"):
//!
//! ```text
//! bit array: N bytes, N >= 8; bit j is (byte[j / 8] >> (j % 8)) & 1
//! num_probes: u8, 1..=30
//! ```
//!
//! Each user key is hashed once with [`bloom_hash`]; probe `i` (0-based) sets
//! bit `(h1 + i * h2) mod (8 * N)` where `h1` is the low 32 bits of the hash
//! and `h2` the high 32 bits with the lowest bit forced to 1 (Kirsch and
//! Mitzenmacher's double hashing; the odd step keeps probes distinct).

use crate::error::{Error, Result};

/// More bits per key than this buys no meaningful false-positive reduction
/// and only inflates the filter, so larger settings are clamped.
const MAX_BITS_PER_KEY: u64 = 64;
const MIN_FILTER_BITS: u64 = 64;
const MAX_PROBES: u32 = 30;

/// Multipliers of the hash: the 64-bit golden ratio and a large odd prime-like
/// constant, both commonly used for multiplicative mixing.
const MULTIPLIER_1: u64 = 0x9E37_79B9_7F4A_7C15;
const MULTIPLIER_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const SEED: u64 = 0x243F_6A88_85A3_08D3;

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn finalize(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    value ^= value >> 33;
    value = value.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    value ^ (value >> 33)
}

fn absorb(state: u64, word: u64) -> u64 {
    (state ^ word.wrapping_mul(MULTIPLIER_2))
        .rotate_left(31)
        .wrapping_mul(MULTIPLIER_1)
}

/// The filter's key hash. Part of the on-disk format: changing it makes every
/// existing filter answer "absent" for present keys.
///
/// `state = SEED ^ (len * MULTIPLIER_1)`; each 8-byte little-endian word `w`
/// (the last one zero-padded, and only if bytes remain) is absorbed as
/// `state = rotl(state ^ (w * MULTIPLIER_2), 31) * MULTIPLIER_1`; the result
/// is the MurmurHash3 `fmix64` of the state (all arithmetic wrapping).
pub fn bloom_hash(data: &[u8]) -> u64 {
    let mut state = SEED ^ (data.len() as u64).wrapping_mul(MULTIPLIER_1);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = absorb(state, u64::from_le_bytes(word));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        state = absorb(state, u64::from_le_bytes(word));
    }
    finalize(state)
}

/// Probes per key: `bits_per_key * ln 2` is optimal; 0.69 approximates ln 2.
fn num_probes_for(bits_per_key: u64) -> u32 {
    let probes = (bits_per_key * 69 + 50) / 100;
    u32::try_from(probes)
        .unwrap_or(MAX_PROBES)
        .clamp(1, MAX_PROBES)
}

/// Collects key hashes while a table is built; [`finish`](Self::finish)
/// sizes the filter from the final key count.
#[derive(Debug)]
pub struct BloomFilterBuilder {
    bits_per_key: u64,
    /// One hash per distinct user key (8 bytes per key while building).
    key_hashes: Vec<u64>,
}

impl BloomFilterBuilder {
    /// A builder for `bits_per_key` bits per key (must be > 0).
    pub fn new(bits_per_key: u32) -> BloomFilterBuilder {
        debug_assert!(bits_per_key > 0);
        BloomFilterBuilder {
            bits_per_key: u64::from(bits_per_key).clamp(1, MAX_BITS_PER_KEY),
            key_hashes: Vec::new(),
        }
    }

    /// Adds a user key. Adding the same key twice is harmless but wastes bits;
    /// the table builder adds each distinct user key once.
    pub fn add_user_key(&mut self, user_key: &[u8]) {
        self.key_hashes.push(bloom_hash(user_key));
    }

    /// Number of keys added.
    pub fn num_keys(&self) -> usize {
        self.key_hashes.len()
    }

    /// Encodes the filter block.
    pub fn finish(&self) -> Vec<u8> {
        let num_keys = self.key_hashes.len() as u64;
        let num_bits = num_keys
            .saturating_mul(self.bits_per_key)
            .max(MIN_FILTER_BITS)
            .div_ceil(8)
            * 8;
        let num_probes = num_probes_for(self.bits_per_key);
        let num_bytes = usize::try_from(num_bits / 8).unwrap_or(usize::MAX);
        let mut filter = vec![0u8; num_bytes];
        for &hash in &self.key_hashes {
            for bit in probe_positions(hash, num_bits, num_probes) {
                if let Some(byte) = filter.get_mut((bit / 8) as usize) {
                    *byte |= 1 << (bit % 8);
                }
            }
        }
        // What `BloomFilter::decode` accepts: whole bytes, at least the
        // minimum, and no more bits set than keys times probes.
        debug_assert!(num_bits >= MIN_FILTER_BITS && num_bits.is_multiple_of(8));
        debug_assert!(
            filter
                .iter()
                .map(|byte| u64::from(byte.count_ones()))
                .sum::<u64>()
                <= num_keys * u64::from(num_probes)
        );
        filter.push(num_probes as u8);
        // No false negatives: every key added reads as present.
        debug_assert!(BloomFilter::decode(filter.clone()).is_ok_and(|decoded| {
            self.key_hashes
                .iter()
                .all(|&hash| decoded.contains_hash(hash))
        }));
        filter
    }
}

fn probe_positions(hash: u64, num_bits: u64, num_probes: u32) -> impl Iterator<Item = u64> {
    let h1 = hash & 0xFFFF_FFFF;
    let h2 = (hash >> 32) | 1;
    // h1 + i * h2 < 2^32 + 30 * 2^32, so no overflow in u64.
    (0..u64::from(num_probes)).map(move |i| (h1 + i * h2) % num_bits)
}

/// A decoded filter block, shared through the block cache.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    /// The bit array. Invariant: at least 8 bytes.
    bits: Vec<u8>,
    /// Invariant: `1..=MAX_PROBES`.
    num_probes: u32,
}

impl BloomFilter {
    /// Parses a filter block (already checksum-verified).
    pub fn decode(mut data: Vec<u8>) -> Result<BloomFilter> {
        let Some(num_probes) = data.pop().map(u32::from) else {
            return Err(Error::corruption(
                "sstable filter block",
                "empty filter block",
            ));
        };
        if data.len() < (MIN_FILTER_BITS / 8) as usize || !(1..=MAX_PROBES).contains(&num_probes) {
            return Err(Error::corruption(
                "sstable filter block",
                format!(
                    "{} filter bytes with {num_probes} probes is not a valid filter",
                    data.len()
                ),
            ));
        }
        Ok(BloomFilter {
            bits: data,
            num_probes,
        })
    }

    /// False only if `user_key` was certainly not added.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.contains_hash(bloom_hash(user_key))
    }

    /// False only if no key with this [`bloom_hash`] was added.
    fn contains_hash(&self, hash: u64) -> bool {
        // The fields' invariants, which `decode` checked.
        debug_assert!(self.bits.len() as u64 * 8 >= MIN_FILTER_BITS);
        debug_assert!((1..=MAX_PROBES).contains(&self.num_probes));
        let num_bits = self.bits.len() as u64 * 8;
        probe_positions(hash, num_bits, self.num_probes).all(|bit| {
            self.bits
                .get((bit / 8) as usize)
                .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
        })
    }

    /// Bytes the filter occupies in memory.
    pub fn size_bytes(&self) -> usize {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: impl Iterator<Item = Vec<u8>>, bits_per_key: u32) -> BloomFilter {
        let mut builder = BloomFilterBuilder::new(bits_per_key);
        for key in keys {
            builder.add_user_key(&key);
        }
        BloomFilter::decode(builder.finish()).unwrap()
    }

    #[test]
    fn no_false_negatives_and_false_positive_rate_near_theory() {
        let num_keys = 20_000u32;
        let filter = build(
            (0..num_keys).map(|i| format!("present-{i}").into_bytes()),
            10,
        );
        for i in 0..num_keys {
            assert!(filter.may_contain(format!("present-{i}").as_bytes()));
        }
        let trials = 100_000u32;
        let false_positives = (0..trials)
            .filter(|i| filter.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        let rate = false_positives as f64 / f64::from(trials);
        // Theory for 10 bits/key and 7 probes: about 0.8%.
        assert!(rate < 0.02, "false-positive rate {rate}");
        assert!(rate > 0.001, "suspiciously low false-positive rate {rate}");
    }

    #[test]
    fn tiny_and_empty_filters_work() {
        let empty = build(std::iter::empty(), 10);
        assert!(!empty.may_contain(b"anything"));
        let one = build(std::iter::once(b"k".to_vec()), 1);
        assert!(one.may_contain(b"k"));
    }

    #[test]
    fn hash_is_stable() {
        // Pinned values: the hash is part of the on-disk format.
        assert_eq!(bloom_hash(b""), bloom_hash(&[]));
        assert_ne!(bloom_hash(b"a"), bloom_hash(b"a\0"));
        assert_eq!(bloom_hash(b"raftwood"), 213_985_662_444_512_530);
        assert_eq!(
            bloom_hash(b"raftwood bloom filter"),
            13_370_586_845_349_448_092
        );
    }

    #[test]
    fn decode_rejects_bad_probe_counts() {
        assert!(BloomFilter::decode(vec![]).unwrap_err().is_corruption());
        assert!(BloomFilter::decode(vec![0; 9]).unwrap_err().is_corruption());
        let mut too_many = vec![0; 8];
        too_many.push(31);
        assert!(BloomFilter::decode(too_many).unwrap_err().is_corruption());
        assert!(BloomFilter::decode(vec![0; 7]).unwrap_err().is_corruption());
    }
}
