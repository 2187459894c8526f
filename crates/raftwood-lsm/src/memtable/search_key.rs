//! [`SearchKey`]: an internal key in the form the skiplist compares — the
//! user key as big-endian words, its length, and the trailer as an integer.
//!
//! A random insert into a memtable of a few hundred thousand entries makes
//! a few dozen key comparisons, almost all on nodes that are not in the CPU
//! cache. The skiplist stores each user key inside its node as big-endian
//! 64-bit words, zero-padded, and a search key holds the same words, so a
//! comparison is a few integer comparisons on the cache line the search
//! already loaded, then the trailer as an integer.
//!
//! Why comparing the padded words, then the lengths, is bytewise order: the
//! words compare the keys' bytes lexicographically, except where one key
//! has ended and its zero padding stands in for bytes. If the word
//! sequences (up to the shorter one) differ at byte `i`, either both keys
//! have byte `i` (a real difference), or the shorter key ends before `i`,
//! is a prefix of the other, and the other's byte `i` is non-zero (it
//! differs from the padding): the shorter key is smaller both ways. If they
//! are equal up to the shorter one's words, the shorter key's bytes (and
//! its padding) match the longer key's, so it is a prefix of it, or they
//! are equal: comparing the lengths decides, as bytewise order does.

use std::cmp::Ordering;

use crate::key::TRAILER_LEN;

/// Keys up to this many words (64 bytes) are held without allocating.
const INLINE_WORDS: usize = 8;

/// An internal key prepared for comparison with skiplist nodes.
///
/// Order: [`crate::key::compare_internal_keys`] on the encoded key — user
/// key ascending (bytewise), then trailer descending.
#[derive(Debug, Clone)]
pub(crate) struct SearchKey {
    inline: [u64; INLINE_WORDS],
    /// The words, when there are more than `INLINE_WORDS`.
    heap: Vec<u64>,
    /// Number of words (`user_key_len` rounded up to whole words).
    word_count: usize,
    user_key_len: usize,
    /// `(sequence_number << 8) | kind`, as in the encoded key.
    trailer: u64,
}

impl SearchKey {
    /// The key for `user_key` with `trailer`.
    pub(crate) fn new(user_key: &[u8], trailer: u64) -> SearchKey {
        let word_count = user_key.len().div_ceil(8);
        let mut key = SearchKey {
            inline: [0; INLINE_WORDS],
            heap: Vec::new(),
            word_count,
            user_key_len: user_key.len(),
            trailer,
        };
        if word_count <= INLINE_WORDS {
            for (word, chunk) in key.inline.iter_mut().zip(user_key.chunks(8)) {
                *word = key_word(chunk);
            }
        } else {
            key.heap = user_key.chunks(8).map(key_word).collect();
        }
        key
    }

    /// Parses an encoded internal key (as seek targets arrive). Like
    /// `compare_internal_keys`, a key shorter than the trailer is read as an
    /// empty user key with a zero-padded trailer; callers pass well-formed keys.
    pub(crate) fn from_encoded(encoded: &[u8]) -> SearchKey {
        debug_assert!(encoded.len() >= TRAILER_LEN);
        let split = encoded.len().saturating_sub(TRAILER_LEN);
        let (user_key, trailer_bytes) = encoded.split_at(split);
        let mut trailer = [0u8; TRAILER_LEN];
        trailer[..trailer_bytes.len()].copy_from_slice(trailer_bytes);
        SearchKey::new(user_key, u64::from_le_bytes(trailer))
    }

    /// The user key as big-endian words, zero-padded.
    #[inline]
    pub(crate) fn words(&self) -> &[u64] {
        if self.word_count <= INLINE_WORDS {
            &self.inline[..self.word_count]
        } else {
            &self.heap
        }
    }
}

/// One word of a user key: up to 8 bytes, zero-padded, big-endian.
#[inline]
pub(crate) fn key_word(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..chunk.len()].copy_from_slice(chunk);
    u64::from_be_bytes(bytes)
}

/// Compares a stored key (its words, length and trailer) with `key`, in
/// internal-key order. `stored_words` yields the stored key's words;
/// `stored_trailer` is called only if the user keys are equal.
#[inline]
pub(crate) fn compare_stored(
    stored_words: impl Iterator<Item = u64>,
    stored_user_key_len: usize,
    stored_trailer: impl FnOnce() -> u64,
    key: &SearchKey,
) -> Ordering {
    for (stored, wanted) in stored_words.zip(key.words()) {
        match stored.cmp(wanted) {
            Ordering::Equal => {}
            decided => return decided,
        }
    }
    stored_user_key_len
        .cmp(&key.user_key_len)
        .then_with(|| key.trailer.cmp(&stored_trailer()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, compare_internal_keys, internal_key};
    use proptest::prelude::*;

    fn user_keys() -> impl Strategy<Value = Vec<u8>> {
        // Small alphabets with zero bytes and lengths around word and
        // inline boundaries exercise the padding argument above.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
            0..80,
        )
    }

    fn compare(a: &SearchKey, b: &SearchKey) -> Ordering {
        compare_stored(a.words().iter().copied(), a.user_key_len, || a.trailer, b)
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
            let sa = SearchKey::from_encoded(&ea);
            let sb = SearchKey::from_encoded(&eb);
            prop_assert_eq!(compare(&sa, &sb), compare_internal_keys(&ea, &eb));
            prop_assert_eq!(compare(&sb, &sa), compare_internal_keys(&eb, &ea));
        }
    }

    #[test]
    fn prefix_of_a_key_sorts_first_even_with_zero_bytes() {
        let key = |bytes: &[u8]| SearchKey::new(bytes, 0);
        assert_eq!(compare(&key(b"a"), &key(b"a\0")), Ordering::Less);
        assert_eq!(compare(&key(&[0u8; 30]), &key(&[0u8; 31])), Ordering::Less);
        assert_eq!(
            compare(&key(&[0u8; 72]), &key(&[0u8; 64])),
            Ordering::Greater
        );
        assert_eq!(compare(&key(&[0u8; 8]), &key(&[0u8; 8])), Ordering::Equal);
    }
}
