//! The properties block: counts and bounds that describe a table without
//! reading its data.
//!
//! ```text
//! num_entries               u64 LE   point entries (values and deletions)
//! num_deletions             u64 LE   point deletions among them
//! num_range_tombstones      u64 LE
//! num_data_blocks           u64 LE
//! smallest_sequence_number  u64 LE   over point entries and range tombstones
//! largest_sequence_number   u64 LE
//! raw_key_bytes             u64 LE   sum of internal key lengths
//! raw_value_bytes           u64 LE   sum of value lengths
//! smallest_key              u32 LE length + bytes (internal key)
//! largest_key               u32 LE length + bytes (internal key)
//! ```
//!
//! `smallest_key` and `largest_key` are the table's bounds as reported in
//! [`TableSummary`](super::TableSummary): they cover range tombstones too (see
//! `docs/sstable-format.md`, "Key bounds"). A table with neither entries nor
//! tombstones has empty bounds and zero sequence numbers.

use super::coding::{ByteReader, put_length_prefixed};
use crate::error::{Error, Result};
use crate::key::{MAX_SEQUENCE_NUMBER, compare_internal_keys, parse_internal_key};

/// What a table holds, recorded when it is written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableProperties {
    /// Point entries (values and point deletions).
    pub num_entries: u64,
    /// Point deletions among `num_entries`. Invariant: `<= num_entries`.
    pub num_deletions: u64,
    /// Range tombstones in the range-deletion block.
    pub num_range_tombstones: u64,
    /// Data blocks in the file.
    pub num_data_blocks: u64,
    /// Smallest sequence number of any entry or tombstone.
    pub smallest_sequence_number: u64,
    /// Largest sequence number of any entry or tombstone.
    /// Invariant: `smallest <= largest <= MAX_SEQUENCE_NUMBER` when non-empty.
    pub largest_sequence_number: u64,
    /// Total bytes of the internal keys of point entries.
    pub raw_key_bytes: u64,
    /// Total bytes of the values of point entries.
    pub raw_value_bytes: u64,
    /// Lower bound of the table (internal key), including range tombstones.
    pub smallest_key: Vec<u8>,
    /// Upper bound of the table (internal key), including range tombstones.
    pub largest_key: Vec<u8>,
}

impl TableProperties {
    /// True if the table holds neither point entries nor range tombstones.
    pub fn is_empty(&self) -> bool {
        self.num_entries == 0 && self.num_range_tombstones == 0
    }

    /// Encodes the properties block's contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 + self.smallest_key.len() + self.largest_key.len());
        for value in [
            self.num_entries,
            self.num_deletions,
            self.num_range_tombstones,
            self.num_data_blocks,
            self.smallest_sequence_number,
            self.largest_sequence_number,
            self.raw_key_bytes,
            self.raw_value_bytes,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        put_length_prefixed(&mut out, &self.smallest_key);
        put_length_prefixed(&mut out, &self.largest_key);
        out
    }

    /// Decodes and sanity-checks a properties block. `file` labels errors.
    pub fn decode(data: &[u8], file: &str) -> Result<TableProperties> {
        let corrupt = |detail: &str| Error::corruption(file, format!("properties block: {detail}"));
        let mut reader = ByteReader::new(data);
        let mut next = || reader.u64().ok_or_else(|| corrupt("truncated counters"));
        let mut properties = TableProperties {
            num_entries: next()?,
            num_deletions: next()?,
            num_range_tombstones: next()?,
            num_data_blocks: next()?,
            smallest_sequence_number: next()?,
            largest_sequence_number: next()?,
            raw_key_bytes: next()?,
            raw_value_bytes: next()?,
            ..TableProperties::default()
        };
        properties.smallest_key = reader
            .length_prefixed()
            .ok_or_else(|| corrupt("truncated smallest key"))?
            .to_vec();
        properties.largest_key = reader
            .length_prefixed()
            .ok_or_else(|| corrupt("truncated largest key"))?
            .to_vec();
        if !reader.is_at_end() {
            return Err(corrupt("trailing bytes"));
        }
        if properties.num_deletions > properties.num_entries {
            return Err(corrupt("more deletions than entries"));
        }
        if properties.is_empty() {
            if !properties.smallest_key.is_empty() || !properties.largest_key.is_empty() {
                return Err(corrupt("an empty table has key bounds"));
            }
        } else {
            let (Ok(_), Ok(_)) = (
                parse_internal_key(&properties.smallest_key),
                parse_internal_key(&properties.largest_key),
            ) else {
                return Err(corrupt("key bounds are not internal keys"));
            };
            if compare_internal_keys(&properties.smallest_key, &properties.largest_key).is_gt() {
                return Err(corrupt("smallest key sorts after largest key"));
            }
            if properties.smallest_sequence_number > properties.largest_sequence_number
                || properties.largest_sequence_number > MAX_SEQUENCE_NUMBER
            {
                return Err(corrupt("sequence number bounds are inconsistent"));
            }
        }
        Ok(properties)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};

    #[test]
    fn round_trips_and_rejects_truncation() {
        let properties = TableProperties {
            num_entries: 10,
            num_deletions: 2,
            num_range_tombstones: 1,
            num_data_blocks: 3,
            smallest_sequence_number: 5,
            largest_sequence_number: 50,
            raw_key_bytes: 200,
            raw_value_bytes: 1000,
            smallest_key: internal_key(b"a", 7, ValueKind::Value),
            largest_key: internal_key(b"z", 9, ValueKind::Deletion),
        };
        let encoded = properties.encode();
        assert_eq!(TableProperties::decode(&encoded, "t").unwrap(), properties);
        for cut in 0..encoded.len() {
            assert!(
                TableProperties::decode(&encoded[..cut], "t")
                    .unwrap_err()
                    .is_corruption()
            );
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(
            TableProperties::decode(&longer, "t")
                .unwrap_err()
                .is_corruption()
        );
        let swapped = TableProperties {
            smallest_key: properties.largest_key.clone(),
            largest_key: properties.smallest_key.clone(),
            ..properties
        };
        assert!(
            TableProperties::decode(&swapped.encode(), "t")
                .unwrap_err()
                .is_corruption()
        );
    }

    #[test]
    fn empty_table_properties_round_trip() {
        let empty = TableProperties::default();
        assert_eq!(
            TableProperties::decode(&empty.encode(), "t").unwrap(),
            empty
        );
    }
}
