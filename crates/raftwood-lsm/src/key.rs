//! Internal keys: a user key tagged with the sequence number of the write that
//! produced it and the kind of entry.
//!
//! Encoding (used in memtables, SSTable blocks and WAL-replayed entries):
//!
//! ```text
//! +----------------+--------------------------------------------+
//! | user key bytes | trailer: u64 little-endian                 |
//! |                |   = (sequence_number << 8) | kind as u8    |
//! +----------------+--------------------------------------------+
//! ```
//!
//! Order: user key ascending (bytewise), then sequence number *descending*,
//! so that a forward scan meets the newest version of a key first.

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// Sequence numbers occupy 56 bits of the trailer.
pub const MAX_SEQUENCE_NUMBER: u64 = (1 << 56) - 1;

/// Length of the trailer appended to every user key.
pub const TRAILER_LEN: usize = 8;

/// What an internal entry records about its user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A point tombstone: the key was deleted at this sequence number.
    Deletion = 0,
    /// A value: the key was set at this sequence number.
    Value = 1,
}

impl ValueKind {
    /// Decodes a kind byte, rejecting unknown values.
    pub fn from_u8(byte: u8) -> Option<ValueKind> {
        match byte {
            0 => Some(ValueKind::Deletion),
            1 => Some(ValueKind::Value),
            _ => None,
        }
    }

    /// The kind used in seek targets: the largest kind, so that a target with
    /// sequence number `s` sorts before every entry of the same user key with
    /// sequence number <= `s`.
    pub const FOR_SEEK: ValueKind = ValueKind::Value;
}

/// Packs a sequence number and kind into a trailer.
pub fn pack_trailer(sequence_number: u64, kind: ValueKind) -> u64 {
    debug_assert!(sequence_number <= MAX_SEQUENCE_NUMBER);
    (sequence_number << 8) | kind as u64
}

/// Appends the encoded internal key to `out`.
pub fn encode_internal_key(
    user_key: &[u8],
    sequence_number: u64,
    kind: ValueKind,
    out: &mut Vec<u8>,
) {
    out.reserve(user_key.len() + TRAILER_LEN);
    out.extend_from_slice(user_key);
    out.extend_from_slice(&pack_trailer(sequence_number, kind).to_le_bytes());
}

/// Returns a newly allocated encoded internal key.
pub fn internal_key(user_key: &[u8], sequence_number: u64, kind: ValueKind) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal_key(user_key, sequence_number, kind, &mut out);
    out
}

/// The seek target that finds the newest entry of `user_key` visible at
/// `snapshot_sequence_number`.
pub fn seek_key(user_key: &[u8], snapshot_sequence_number: u64) -> Vec<u8> {
    internal_key(user_key, snapshot_sequence_number, ValueKind::FOR_SEEK)
}

/// An internal key split into its parts, borrowing the user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The key the user wrote.
    pub user_key: &'a [u8],
    /// The sequence number of the write.
    pub sequence_number: u64,
    /// Value or tombstone.
    pub kind: ValueKind,
}

/// Splits an internal key, validating its trailer.
pub fn parse_internal_key(encoded: &[u8]) -> Result<ParsedKey<'_>> {
    if encoded.len() < TRAILER_LEN {
        return Err(Error::corruption(
            "internal key",
            format!("{} bytes is shorter than the 8-byte trailer", encoded.len()),
        ));
    }
    let (user_key, trailer_bytes) = encoded.split_at(encoded.len() - TRAILER_LEN);
    let mut trailer = [0u8; TRAILER_LEN];
    trailer.copy_from_slice(trailer_bytes);
    let trailer = u64::from_le_bytes(trailer);
    let kind = ValueKind::from_u8((trailer & 0xff) as u8).ok_or_else(|| {
        Error::corruption(
            "internal key",
            format!("unknown kind byte {}", trailer & 0xff),
        )
    })?;
    Ok(ParsedKey {
        user_key,
        sequence_number: trailer >> 8,
        kind,
    })
}

/// The user-key part of an encoded internal key. The caller guarantees the
/// key is well formed (it came from a verified block or from the memtable).
pub fn user_key(encoded: &[u8]) -> &[u8] {
    debug_assert!(encoded.len() >= TRAILER_LEN);
    &encoded[..encoded.len().saturating_sub(TRAILER_LEN)]
}

fn trailer(encoded: &[u8]) -> u64 {
    let start = encoded.len().saturating_sub(TRAILER_LEN);
    let mut bytes = [0u8; TRAILER_LEN];
    let tail = &encoded[start..];
    bytes[..tail.len()].copy_from_slice(tail);
    u64::from_le_bytes(bytes)
}

/// Orders encoded internal keys: user key ascending, then trailer descending.
pub fn compare_internal_keys(a: &[u8], b: &[u8]) -> Ordering {
    match user_key(a).cmp(user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        unequal => unequal,
    }
}

/// A range tombstone: every key in `[start, end)` written with a sequence
/// number below `sequence_number` is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeTombstone {
    /// First deleted user key (inclusive).
    pub start: Vec<u8>,
    /// End of the deleted range (exclusive).
    pub end: Vec<u8>,
    /// Sequence number of the `delete_range` that wrote it.
    pub sequence_number: u64,
}

impl RangeTombstone {
    /// True if the tombstone covers `user_key` at all (ignoring sequence numbers).
    pub fn contains(&self, user_key: &[u8]) -> bool {
        self.start.as_slice() <= user_key && user_key < self.end.as_slice()
    }
}

/// The largest sequence number among `tombstones` that covers `user_key`
/// and is visible at `snapshot_sequence_number` (0 if none).
pub fn max_covering_sequence_number(
    tombstones: &[RangeTombstone],
    user_key: &[u8],
    snapshot_sequence_number: u64,
) -> u64 {
    tombstones
        .iter()
        .filter(|t| t.sequence_number <= snapshot_sequence_number && t.contains(user_key))
        .map(|t| t.sequence_number)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first() {
        let old = internal_key(b"k", 1, ValueKind::Value);
        let new = internal_key(b"k", 2, ValueKind::Deletion);
        assert_eq!(compare_internal_keys(&new, &old), Ordering::Less);
    }

    #[test]
    fn user_key_order_dominates_even_with_prefixes() {
        let a = internal_key(b"a", 1, ValueKind::Value);
        let ab = internal_key(b"ab", 100, ValueKind::Value);
        assert_eq!(compare_internal_keys(&a, &ab), Ordering::Less);
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_trailers() {
        let k = internal_key(b"key", 42, ValueKind::Deletion);
        let parsed = parse_internal_key(&k).unwrap();
        assert_eq!(parsed.user_key, b"key");
        assert_eq!(parsed.sequence_number, 42);
        assert_eq!(parsed.kind, ValueKind::Deletion);
        assert!(parse_internal_key(b"short").unwrap_err().is_corruption());
        let mut bad = k.clone();
        let last_kind_byte = bad.len() - TRAILER_LEN;
        bad[last_kind_byte] = 7;
        assert!(parse_internal_key(&bad).unwrap_err().is_corruption());
    }

    #[test]
    fn seek_key_lands_on_newest_visible_version() {
        let target = seek_key(b"k", 5);
        let v6 = internal_key(b"k", 6, ValueKind::Value);
        let v5 = internal_key(b"k", 5, ValueKind::Value);
        let d5 = internal_key(b"k", 5, ValueKind::Deletion);
        assert_eq!(compare_internal_keys(&v6, &target), Ordering::Less);
        assert_ne!(compare_internal_keys(&v5, &target), Ordering::Less);
        assert_ne!(compare_internal_keys(&d5, &target), Ordering::Less);
    }
}
