//! Which key a request touches: request `i` takes key number `i mod n`
//! (`--sequential-keys`) or a uniformly random one of the `n` keys of
//! `--key-space-size`, written as `--key-size` bytes.

use rand::Rng;

/// The keys a workload draws from.
///
/// Invariant: `key_size >= 1`, `key_space_size >= 1`, and every key number
/// below `key_space_size` fits in `key_size` bytes, so distinct numbers
/// give distinct keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    key_size: usize,
    key_space_size: u64,
    sequential: bool,
}

impl KeySpace {
    /// Checks that `key_space_size` distinct keys fit in `key_size` bytes.
    pub fn new(key_size: usize, key_space_size: u64, sequential: bool) -> Result<Self, String> {
        if key_size == 0 {
            return Err("--key-size must be at least 1 (etcd refuses empty keys)".into());
        }
        if key_space_size == 0 {
            return Err("--key-space-size must be at least 1".into());
        }
        // Key numbers are at most key_space_size - 1; count the bytes it needs.
        let largest = key_space_size - 1;
        let bytes_needed = (u64::BITS - largest.leading_zeros()).div_ceil(8) as usize;
        if bytes_needed > key_size {
            return Err(format!(
                "--key-space-size {key_space_size} needs keys of at least {bytes_needed} bytes, \
                 --key-size is {key_size}"
            ));
        }
        Ok(Self {
            key_size,
            key_space_size,
            sequential,
        })
    }

    /// The number of the key request `request_index` touches.
    pub fn key_number(&self, request_index: u64, rng: &mut impl Rng) -> u64 {
        if self.sequential {
            request_index % self.key_space_size
        } else {
            rng.random_range(0..self.key_space_size)
        }
    }

    /// Key number `number` as bytes: big-endian in the last bytes, zeros
    /// before, so keys sort as their numbers do.
    pub fn key_bytes(&self, number: u64) -> Vec<u8> {
        debug_assert!(number < self.key_space_size);
        let mut key = vec![0u8; self.key_size];
        let be = number.to_be_bytes();
        let n = self.key_size.min(be.len());
        let key_len = key.len();
        key[key_len - n..].copy_from_slice(&be[be.len() - n..]);
        key
    }

    /// Number of distinct keys.
    pub fn size(&self) -> u64 {
        self.key_space_size
    }

    /// The key request `request_index` touches.
    pub fn key(&self, request_index: u64, rng: &mut impl Rng) -> Vec<u8> {
        let number = self.key_number(request_index, rng);
        self.key_bytes(number)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::BTreeSet;

    #[test]
    fn sequential_keys_cycle_through_the_space() {
        let space = KeySpace::new(8, 3, true).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let numbers: Vec<u64> = (0..7).map(|i| space.key_number(i, &mut rng)).collect();
        assert_eq!(numbers, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_keys_stay_in_the_space_and_cover_it() {
        let space = KeySpace::new(8, 10, false).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let seen: BTreeSet<u64> = (0..1000).map(|i| space.key_number(i, &mut rng)).collect();
        assert_eq!(seen, (0..10).collect());
    }

    #[test]
    fn keys_have_the_requested_size_and_sort_by_number() {
        let space = KeySpace::new(8, 100_000, true).unwrap();
        let a = space.key_bytes(255);
        let b = space.key_bytes(256);
        assert_eq!(a.len(), 8);
        assert_eq!(a, [0, 0, 0, 0, 0, 0, 0, 255]);
        assert!(a < b);
        let long = KeySpace::new(12, 2, true).unwrap();
        assert_eq!(long.key_bytes(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_key_space_that_does_not_fit_the_key_size_is_refused() {
        assert!(KeySpace::new(1, 256, true).is_ok());
        assert!(KeySpace::new(1, 257, true).is_err());
        assert!(KeySpace::new(2, 65_537, false).is_err());
        assert!(KeySpace::new(0, 1, false).is_err());
        assert!(KeySpace::new(8, 0, false).is_err());
        assert!(KeySpace::new(8, u64::MAX, false).is_ok());
    }
}
