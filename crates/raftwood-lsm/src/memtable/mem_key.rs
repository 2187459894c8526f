//! [`MemKey`]: how the memtable's skiplist stores an internal key.
//!
//! A random insert into a memtable of a few hundred thousand entries makes
//! about twenty key comparisons, almost all on nodes that are not in the CPU
//! cache. Storing the encoded internal key as a `Vec<u8>` made each of them
//! chase a second pointer to the heap, call `memcmp` and decode the trailer.
//! `MemKey` instead keeps the first [`PREFIX_LEN`] bytes of the user key
//! inside the node as big-endian words, so most comparisons are a few integer
//! comparisons on the cache line the skiplist already loaded, and the
//! trailer as an integer. Only the bytes past the prefix of a long key live
//! on the heap, and they are looked at only when two prefixes are equal.

use std::cmp::Ordering;

use crate::key::TRAILER_LEN;

/// Words of the inline prefix.
const PREFIX_WORDS: usize = 3;

/// Bytes of the user key kept inline in the node.
pub(crate) const PREFIX_LEN: usize = PREFIX_WORDS * 8;

/// An internal key (user key + trailer) in a form that compares cheaply.
///
/// Order: the same as [`crate::key::compare_internal_keys`] on the encoded
/// key — user key ascending (bytewise), then trailer descending.
///
/// Why comparing the prefix words first is bytewise order: the words hold the
/// first `PREFIX_LEN` bytes zero-padded, in big-endian, so comparing them
/// compares those bytes lexicographically. If the padded prefixes differ at
/// byte `i`, either both keys have byte `i` (a real difference) or the
/// shorter one ends before `i` and is a prefix of the other, whose byte `i`
/// is then non-zero (it differs from the zero padding): the shorter key is
/// smaller both ways. If the padded prefixes are equal, comparing the bytes
/// past the prefix, then the lengths, finishes the bytewise comparison by the
/// same argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemKey {
    /// The first `PREFIX_LEN` bytes of the user key, zero-padded, as
    /// big-endian words.
    prefix: [u64; PREFIX_WORDS],
    /// Bytes of the user key past `PREFIX_LEN`. Invariant: empty unless the
    /// user key is longer than `PREFIX_LEN` (an empty box does not allocate).
    rest: Box<[u8]>,
    /// Length of the user key in bytes.
    user_key_len: usize,
    /// `(sequence_number << 8) | kind`, as in the encoded key.
    trailer: u64,
}

impl MemKey {
    /// The key for `user_key` with `trailer`.
    pub fn new(user_key: &[u8], trailer: u64) -> MemKey {
        let mut prefix = [0u64; PREFIX_WORDS];
        for (word, chunk) in prefix.iter_mut().zip(user_key.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_be_bytes(bytes);
        }
        MemKey {
            prefix,
            rest: user_key.get(PREFIX_LEN..).unwrap_or_default().into(),
            user_key_len: user_key.len(),
            trailer,
        }
    }

    /// Parses an encoded internal key (as seek targets arrive). Like
    /// `compare_internal_keys`, a key shorter than the trailer is read as an
    /// empty user key with a zero-padded trailer; callers pass well-formed keys.
    pub fn from_encoded(encoded: &[u8]) -> MemKey {
        debug_assert!(encoded.len() >= TRAILER_LEN);
        let split = encoded.len().saturating_sub(TRAILER_LEN);
        let (user_key, trailer_bytes) = encoded.split_at(split);
        let mut trailer = [0u8; TRAILER_LEN];
        trailer[..trailer_bytes.len()].copy_from_slice(trailer_bytes);
        MemKey::new(user_key, u64::from_le_bytes(trailer))
    }

    /// The trailer: `(sequence_number << 8) | kind`.
    pub fn trailer(&self) -> u64 {
        self.trailer
    }

    /// Length of the user key in bytes.
    pub fn user_key_len(&self) -> usize {
        self.user_key_len
    }

    /// Appends the user key's bytes to `out`.
    pub fn append_user_key(&self, out: &mut Vec<u8>) {
        let inline_len = self.user_key_len.min(PREFIX_LEN);
        let mut inline = [0u8; PREFIX_LEN];
        for (bytes, word) in inline.chunks_exact_mut(8).zip(self.prefix) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&inline[..inline_len]);
        out.extend_from_slice(&self.rest);
    }

    /// Replaces `out` with the encoded internal key (user key + trailer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.user_key_len + TRAILER_LEN);
        self.append_user_key(out);
        out.extend_from_slice(&self.trailer.to_le_bytes());
    }

    /// True if the user key equals `user_key`.
    pub fn has_user_key(&self, user_key: &[u8]) -> bool {
        // With equal lengths the zero padding cannot hide a difference, so
        // comparing each word with the bytes it holds suffices.
        self.user_key_len == user_key.len()
            && self
                .prefix
                .iter()
                .zip(user_key.chunks(8))
                .all(|(word, chunk)| word.to_be_bytes()[..chunk.len()] == *chunk)
            && *self.rest == *user_key.get(PREFIX_LEN..).unwrap_or_default()
    }

    fn compare_user_key(&self, other: &MemKey) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.rest.cmp(&other.rest))
            .then_with(|| self.user_key_len.cmp(&other.user_key_len))
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare_user_key(other)
            .then_with(|| other.trailer.cmp(&self.trailer))
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, compare_internal_keys, internal_key};
    use proptest::prelude::*;

    fn user_keys() -> impl Strategy<Value = Vec<u8>> {
        // Small alphabets with zero bytes and lengths around the prefix
        // boundary exercise the padding argument above.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn orders_like_encoded_internal_keys(
            a in user_keys(), b in user_keys(),
            sa in 0u64..4, sb in 0u64..4,
            ka in any::<bool>(), kb in any::<bool>(),
        ) {
            let kind = |value: bool| if value { ValueKind::Value } else { ValueKind::Deletion };
            let ea = internal_key(&a, sa, kind(ka));
            let eb = internal_key(&b, sb, kind(kb));
            let ma = MemKey::from_encoded(&ea);
            let mb = MemKey::from_encoded(&eb);
            prop_assert_eq!(ma.cmp(&mb), compare_internal_keys(&ea, &eb));
            prop_assert_eq!(ma.has_user_key(&b), a == b);
            let mut round_trip = Vec::new();
            ma.encode_into(&mut round_trip);
            prop_assert_eq!(round_trip, ea);
        }
    }

    #[test]
    fn prefix_of_a_key_sorts_first_even_with_zero_bytes() {
        let short = MemKey::new(b"a", 0);
        let zero_extended = MemKey::new(b"a\0", 0);
        assert_eq!(short.cmp(&zero_extended), Ordering::Less);
        let long = MemKey::new(&[0u8; 30], 0);
        let longer = MemKey::new(&[0u8; 31], 0);
        assert_eq!(long.cmp(&longer), Ordering::Less);
        assert_eq!(MemKey::new(&[0u8; 24], 0).cmp(&long), Ordering::Less);
    }
}
