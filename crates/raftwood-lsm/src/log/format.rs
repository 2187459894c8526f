//! Constants and header encoding of the log framing. The byte-by-byte
//! description lives in `docs/wal-format.md`; keep the two in step.
//!
//! ```text
//! offset  size  field
//!      0     4  header_crc   masked crc32c of bytes 4..20 of this header
//!      4     8  offset       byte offset of this header in the file
//!     12     4  payload_len  length of the payload in bytes
//!     16     4  payload_crc  masked crc32c of the payload
//!     20     n  payload
//! ```
//!
//! All integers are little-endian.

/// Bytes of framing in front of every payload.
pub const HEADER_LEN: usize = 20;

/// Longest payload the writer accepts and the reader believes. Values may be
/// 64 MiB, and a WAL record carries a whole write batch, so the limit leaves
/// room for many of them; it also bounds what a verified header can ask the
/// reader to look at.
pub const MAX_PAYLOAD_LEN_BYTES: usize = 1 << 30;

/// Added to a rotated CRC so that a checksum of bytes that themselves embed
/// checksums (a log stored in a value, a header inside a payload) does not
/// verify trivially.
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC before it is stored.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Inverts [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(CRC_MASK_DELTA).rotate_left(15)
}

/// The stored (masked) checksum of a payload.
pub fn payload_checksum(payload: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c(payload))
}

/// A header whose own checksum verified. Its payload is not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Where the writer placed this header in the file.
    pub offset: u64,
    /// Length of the payload that follows the header.
    /// Invariant: `payload_len as usize <= MAX_PAYLOAD_LEN_BYTES`.
    pub payload_len: u32,
    /// Masked crc32c of the payload.
    pub payload_crc: u32,
}

fn u32_at(bytes: &[u8; HEADER_LEN], start: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[start..start + 4]);
    u32::from_le_bytes(field)
}

/// Reads the `offset` field of a candidate header without verifying it: the
/// reader's forward scan compares it with the candidate's position before
/// paying for a checksum.
pub fn stored_offset(bytes: &[u8; HEADER_LEN]) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[4..12]);
    u64::from_le_bytes(field)
}

/// Encodes the header of a record placed at `offset` in its file.
pub fn encode_header(offset: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN_BYTES,
        "callers reject oversized payloads before encoding"
    );
    let mut header = [0u8; HEADER_LEN];
    header[4..12].copy_from_slice(&offset.to_le_bytes());
    header[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[16..20].copy_from_slice(&payload_checksum(payload).to_le_bytes());
    let header_crc = mask_crc(crc32c::crc32c(&header[4..]));
    header[0..4].copy_from_slice(&header_crc.to_le_bytes());
    debug_assert_eq!(
        decode_header(&header).map(|h| h.offset),
        Some(offset),
        "a header must decode to what was encoded"
    );
    header
}

/// Appends one framed record, placed at `offset` in its file, to `out`.
pub fn encode_record(offset: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(offset, payload));
    out.extend_from_slice(payload);
}

/// Verifies a header's checksum and length limit. Returns `None` for
/// anything the writer cannot have produced.
pub fn decode_header(bytes: &[u8; HEADER_LEN]) -> Option<RecordHeader> {
    let stored_crc = u32_at(bytes, 0);
    if stored_crc != mask_crc(crc32c::crc32c(&bytes[4..])) {
        return None;
    }
    let payload_len = u32_at(bytes, 12);
    if payload_len as usize > MAX_PAYLOAD_LEN_BYTES {
        return None;
    }
    Some(RecordHeader {
        offset: stored_offset(bytes),
        payload_len,
        payload_crc: u32_at(bytes, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_and_changes_the_value() {
        for crc in [0u32, 1, 0xdead_beef, u32::MAX, crc32c::crc32c(b"abc")] {
            assert_eq!(unmask_crc(mask_crc(crc)), crc);
            assert_ne!(mask_crc(crc), crc);
        }
    }

    #[test]
    fn header_round_trips() {
        let header = encode_header(12345, b"payload");
        let decoded = decode_header(&header).unwrap();
        assert_eq!(decoded.offset, 12345);
        assert_eq!(decoded.payload_len, 7);
        assert_eq!(decoded.payload_crc, payload_checksum(b"payload"));
        assert_eq!(stored_offset(&header), 12345);
    }

    #[test]
    fn zero_filled_headers_never_verify() {
        // A zero-filled tail (a preallocated or half-written page) must read
        // as damage, even at offset 0 where the offset field matches.
        assert_eq!(decode_header(&[0u8; HEADER_LEN]), None);
        assert_eq!(decode_header(&[0xffu8; HEADER_LEN]), None);
    }

    #[test]
    fn every_single_bit_flip_in_a_header_is_detected() {
        let header = encode_header(7, b"x");
        for bit in 0..HEADER_LEN * 8 {
            let mut damaged = header;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_header(&damaged), None, "bit {bit}");
        }
    }

    #[test]
    fn oversized_lengths_are_rejected_even_with_a_valid_checksum() {
        let mut header = [0u8; HEADER_LEN];
        header[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = mask_crc(crc32c::crc32c(&header[4..]));
        header[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&header), None);
    }
}
