//! The range-deletion block: every range tombstone of the table, kept in
//! memory by the reader.
//!
//! ```text
//! count: u64 LE
//! per tombstone, sorted by start ascending, then sequence number descending:
//!   start:           u32 LE length + bytes (user key)
//!   end:             u32 LE length + bytes (user key, exclusive, > start)
//!   sequence_number: u64 LE (<= MAX_SEQUENCE_NUMBER)
//! ```

use std::cmp::Ordering;

use super::coding::{ByteReader, put_length_prefixed};
use crate::error::{Error, Result};
use crate::key::{MAX_SEQUENCE_NUMBER, RangeTombstone};

/// Sorts tombstones into the order the block stores them in.
pub fn sort_for_block(tombstones: &mut [RangeTombstone]) {
    tombstones.sort_by(|a, b| match a.start.cmp(&b.start) {
        Ordering::Equal => b.sequence_number.cmp(&a.sequence_number),
        unequal => unequal,
    });
}

/// Encodes the block contents. `tombstones` must already be sorted.
pub fn encode(tombstones: &[RangeTombstone]) -> Vec<u8> {
    // Readers take the block's order as given (`Table::range_tombstones`).
    debug_assert!(tombstones.is_sorted_by(|a, b| {
        (a.start.as_slice(), std::cmp::Reverse(a.sequence_number))
            <= (b.start.as_slice(), std::cmp::Reverse(b.sequence_number))
    }));
    let mut out = Vec::new();
    out.extend_from_slice(&(tombstones.len() as u64).to_le_bytes());
    for tombstone in tombstones {
        debug_assert!(tombstone.start < tombstone.end);
        put_length_prefixed(&mut out, &tombstone.start);
        put_length_prefixed(&mut out, &tombstone.end);
        out.extend_from_slice(&tombstone.sequence_number.to_le_bytes());
    }
    out
}

/// Decodes and validates the block contents. `file` labels errors.
pub fn decode(data: &[u8], file: &str) -> Result<Vec<RangeTombstone>> {
    let corrupt =
        |detail: String| Error::corruption(file, format!("range-deletion block: {detail}"));
    let mut reader = ByteReader::new(data);
    let count = reader
        .u64()
        .ok_or_else(|| corrupt("missing count".to_string()))?;
    // Each tombstone takes at least 16 bytes, which bounds a corrupt count
    // before it sizes an allocation.
    if count > (data.len() / 16) as u64 {
        return Err(corrupt(format!(
            "count {count} cannot fit in {} bytes",
            data.len()
        )));
    }
    let mut tombstones = Vec::with_capacity(count as usize);
    for index in 0..count {
        let fields = (|| {
            let start = reader.length_prefixed()?;
            let end = reader.length_prefixed()?;
            let sequence_number = reader.u64()?;
            Some((start, end, sequence_number))
        })();
        let Some((start, end, sequence_number)) = fields else {
            return Err(corrupt(format!("tombstone {index} is truncated")));
        };
        if start >= end || sequence_number > MAX_SEQUENCE_NUMBER {
            return Err(corrupt(format!("tombstone {index} is malformed")));
        }
        tombstones.push(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            sequence_number,
        });
    }
    if !reader.is_at_end() {
        return Err(corrupt("trailing bytes".to_string()));
    }
    Ok(tombstones)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstone(start: &[u8], end: &[u8], sequence_number: u64) -> RangeTombstone {
        RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            sequence_number,
        }
    }

    #[test]
    fn round_trips_sorted_and_rejects_damage() {
        let mut tombstones = vec![
            tombstone(b"m", b"p", 3),
            tombstone(b"a", b"c", 1),
            tombstone(b"m", b"n", 9),
        ];
        sort_for_block(&mut tombstones);
        assert_eq!(tombstones[0].start, b"a");
        assert_eq!(tombstones[1].sequence_number, 9);
        let encoded = encode(&tombstones);
        assert_eq!(decode(&encoded, "t").unwrap(), tombstones);
        for cut in 0..encoded.len() {
            assert!(decode(&encoded[..cut], "t").unwrap_err().is_corruption());
        }
        let inverted = encode(&[tombstone(b"a", b"b", 1)])
            .iter()
            .map(|&b| if b == b'a' { b'z' } else { b })
            .collect::<Vec<_>>();
        assert!(decode(&inverted, "t").unwrap_err().is_corruption());
        assert!(
            decode(&u64::MAX.to_le_bytes(), "t")
                .unwrap_err()
                .is_corruption()
        );
        assert_eq!(decode(&encode(&[]), "t").unwrap(), vec![]);
    }
}
