//! The framing of records in a segment file and the naming of segments.
//! The byte layout is documented in `docs/raft-log-format.md` ("Segment
//! files" and "Record framing").

/// Bytes of a record header.
pub(crate) const HEADER_BYTES: usize = 22;

/// The largest payload a record may carry. A header claiming more is
/// damaged; the writer splits entries into records well below it.
pub(crate) const MAX_PAYLOAD_BYTES: u32 = 1 << 30;

/// Entries are split into records of about this many payload bytes, so
/// one huge write does not make one huge record.
pub(crate) const ENTRIES_RECORD_TARGET_BYTES: usize = 4 << 20;

/// Flag: this record ends a write. Recovery applies the records of a write
/// only when it has read the record that ends it, so every write is atomic.
pub(crate) const FLAG_END_OF_WRITE: u8 = 0x01;

const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC so that the checksum of bytes that contain checksums has no
/// trivial relation to them.
pub(crate) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordType {
    /// First record of every segment: identity, the previous segment's
    /// valid length, and the hard state and snapshot point at its start.
    SegmentHeader = 1,
    /// Consecutive entries appended after the last one.
    Entries = 2,
    /// A new hard state.
    HardState = 3,
    /// A snapshot installed from the leader: the whole log is replaced.
    InstallSnapshot = 4,
    /// Entries from an index on are removed (a conflict was resolved).
    Truncate = 5,
    /// The log now starts after a local snapshot: earlier entries are no
    /// longer needed, later ones stay.
    Compact = 6,
    /// The first record of every write (format version 2): how many bytes
    /// of the segment were durable when the write was made. Recovery uses
    /// it to tell a torn write from damage to synced bytes.
    Synced = 7,
}

impl RecordType {
    pub(crate) fn from_byte(byte: u8) -> Option<RecordType> {
        Some(match byte {
            1 => RecordType::SegmentHeader,
            2 => RecordType::Entries,
            3 => RecordType::HardState,
            4 => RecordType::InstallSnapshot,
            5 => RecordType::Truncate,
            6 => RecordType::Compact,
            7 => RecordType::Synced,
            _ => return None,
        })
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) offset: u64,
    pub(crate) payload_len: u32,
    pub(crate) payload_crc: u32,
    pub(crate) record_type: RecordType,
    pub(crate) flags: u8,
}

/// Appends one framed record to `out`, which will be written at `offset`
/// of its segment.
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    offset: u64,
    record_type: RecordType,
    flags: u8,
    payload: &[u8],
) {
    let payload_len = raftwood_lsm::length::len_u32(payload.len(), "raft log record payload");
    assert!(
        payload_len <= MAX_PAYLOAD_BYTES,
        "record payloads are limited to {MAX_PAYLOAD_BYTES} bytes"
    );
    // `read_record` refuses any other flag.
    debug_assert_eq!(
        flags & !FLAG_END_OF_WRITE,
        0,
        "unknown record flags {flags:#04x}"
    );
    let mut header = [0u8; HEADER_BYTES];
    header[4..12].copy_from_slice(&offset.to_le_bytes());
    header[12..16].copy_from_slice(&payload_len.to_le_bytes());
    header[16..20].copy_from_slice(&mask_crc(crc32c::crc32c(payload)).to_le_bytes());
    header[20] = record_type as u8;
    header[21] = flags;
    let header_crc = mask_crc(crc32c::crc32c(&header[4..]));
    header[0..4].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// Why bytes at a position are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes remain than a header or its payload needs.
    Incomplete,
    /// The bytes fail a check; the string says which.
    Bad(String),
}

/// Reads the record at `position` of `segment`: its header and payload,
/// every checksum and field verified.
pub(crate) fn read_record(
    segment: &[u8],
    position: usize,
) -> Result<(RecordHeader, &[u8]), FrameError> {
    let Some(header) = segment.get(position..position + HEADER_BYTES) else {
        return Err(FrameError::Incomplete);
    };
    let stored_crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if stored_crc != mask_crc(crc32c::crc32c(&header[4..])) {
        return Err(FrameError::Bad("header checksum mismatch".to_owned()));
    }
    let mut offset_bytes = [0u8; 8];
    offset_bytes.copy_from_slice(&header[4..12]);
    let offset = u64::from_le_bytes(offset_bytes);
    if offset != position as u64 {
        return Err(FrameError::Bad(format!(
            "record says it is at byte {offset}"
        )));
    }
    let payload_len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let payload_crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(FrameError::Bad(format!("payload length {payload_len}")));
    }
    let Some(record_type) = RecordType::from_byte(header[20]) else {
        return Err(FrameError::Bad(format!(
            "unknown record type {}",
            header[20]
        )));
    };
    let flags = header[21];
    if flags & !FLAG_END_OF_WRITE != 0 {
        return Err(FrameError::Bad(format!("unknown flags {flags:#04x}")));
    }
    let start = position + HEADER_BYTES;
    let Some(payload) = segment.get(start..start + payload_len as usize) else {
        return Err(FrameError::Incomplete);
    };
    if payload_crc != mask_crc(crc32c::crc32c(payload)) {
        return Err(FrameError::Bad("payload checksum mismatch".to_owned()));
    }
    Ok((
        RecordHeader {
            offset,
            payload_len,
            payload_crc,
            record_type,
            flags,
        },
        payload,
    ))
}

/// The file name of segment `sequence`: 16 lowercase hex digits, `.log`.
pub(crate) fn segment_file_name(sequence: u64) -> String {
    format!("{sequence:016x}.log")
}

/// The sequence number a segment file name stands for, or `None` if the
/// name is not a segment's.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 16
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The lock file's name.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_strangers() {
        for sequence in [0, 1, 0xabc, u64::MAX] {
            let name = segment_file_name(sequence);
            assert_eq!(name.len(), 20);
            assert_eq!(parse_segment_file_name(&name), Some(sequence));
        }
        for name in [
            "000001.log",
            "000000000000000A.log",
            "0000000000000001.sst",
            "LOCK",
        ] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_record_reads_back_and_every_damage_is_seen() {
        let mut segment = vec![0u8; 5];
        put_record(
            &mut segment,
            5,
            RecordType::Truncate,
            FLAG_END_OF_WRITE,
            b"payload!",
        );
        let (header, payload) = read_record(&segment, 5).unwrap();
        assert_eq!(payload, &b"payload!"[..]);
        assert_eq!(header.record_type, RecordType::Truncate);
        assert_eq!(header.flags, FLAG_END_OF_WRITE);
        // Every truncation is incomplete; every bit flip is bad.
        for len in 5..segment.len() {
            assert_eq!(
                read_record(&segment[..len], 5).err(),
                Some(FrameError::Incomplete)
            );
        }
        for byte in 5..segment.len() {
            for bit in 0..8 {
                let mut flipped = segment.clone();
                flipped[byte] ^= 1 << bit;
                assert!(
                    read_record(&flipped, 5).is_err(),
                    "flip at {byte}.{bit} accepted"
                );
            }
        }
        // A record moved to another offset is refused.
        let moved = segment[1..].to_vec();
        assert!(matches!(read_record(&moved, 4), Err(FrameError::Bad(_))));
    }
}
