//! The payloads of records: what each kind of record says, encoded with
//! the raft crate's codec. Layouts in `docs/raft-log-format.md` ("Record
//! types and payloads").

use raftwood_raft::codec::{
    DecodeError, ENTRY_MIN_ENCODED_BYTES, decode_entry, decode_hard_state, decode_snapshot_meta,
    encode_entry, encode_hard_state, encode_snapshot_meta,
};
use raftwood_raft::{Entry, HardState, Index, SnapshotMeta};

use crate::format::RecordType;

/// Identifies a segment file as a raftwood Raft log segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RWRAFTLG";

/// The segment format this build writes. Version 2 added the `Synced`
/// record that starts every write.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The oldest segment format this build reads: version 1 segments (no
/// `Synced` records, written by appends only) are replayed as before.
pub(crate) const OLDEST_READABLE_VERSION: u32 = 1;

/// The first format version whose writes start with a `Synced` record (and
/// may overwrite the segment's zero tail).
pub(crate) const FIRST_VERSION_WITH_SYNCED: u32 = 2;

/// The first record of every segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The format version the segment was written in. Always
    /// `FORMAT_VERSION` for a segment this build writes (it encodes that).
    pub(crate) version: u32,
    /// Equals the sequence number in the file name.
    pub(crate) sequence: u64,
    /// How many bytes of segment `sequence - 1` hold the log: recovery reads
    /// that segment up to here and ignores what follows (a torn tail a
    /// previous recovery abandoned). Equal to its whole length when it was
    /// closed normally.
    pub(crate) previous_valid_bytes: u64,
    /// The hard state when the segment was started.
    pub(crate) hard_state: HardState,
    /// The snapshot point when the segment was started.
    pub(crate) snapshot: Option<SnapshotMeta>,
}

/// One decoded record payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    SegmentHeader(SegmentHeader),
    /// Invariant: non-empty, consecutive indexes.
    Entries(Vec<Entry>),
    HardState(HardState),
    InstallSnapshot(SnapshotMeta),
    Truncate {
        from_index: Index,
    },
    Compact(SnapshotMeta),
    /// Starts every write: bytes of the segment durable when it was made.
    Synced {
        durable_bytes: u64,
    },
}

impl Record {
    pub(crate) fn record_type(&self) -> RecordType {
        match self {
            Record::SegmentHeader(_) => RecordType::SegmentHeader,
            Record::Entries(_) => RecordType::Entries,
            Record::HardState(_) => RecordType::HardState,
            Record::InstallSnapshot(_) => RecordType::InstallSnapshot,
            Record::Truncate { .. } => RecordType::Truncate,
            Record::Compact(_) => RecordType::Compact,
            Record::Synced { .. } => RecordType::Synced,
        }
    }
}

/// Encodes a record's payload into `out` (cleared first).
pub(crate) fn encode_payload(record: &Record, out: &mut Vec<u8>) {
    out.clear();
    match record {
        Record::SegmentHeader(header) => {
            // The version written is always this build's: a header that says
            // otherwise would describe a segment this build did not write.
            debug_assert_eq!(header.version, FORMAT_VERSION);
            out.extend_from_slice(&SEGMENT_MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&header.sequence.to_le_bytes());
            out.extend_from_slice(&header.previous_valid_bytes.to_le_bytes());
            encode_hard_state(&header.hard_state, out);
            match &header.snapshot {
                None => out.push(0),
                Some(meta) => {
                    out.push(1);
                    encode_snapshot_meta(meta, out);
                }
            }
        }
        Record::Entries(entries) => {
            debug_assert!(!entries.is_empty());
            // Recovery refuses a record whose entries are not consecutive.
            debug_assert!(
                entries.windows(2).all(|w| w[0].index + 1 == w[1].index),
                "entries of one record are consecutive"
            );
            let count = raftwood_lsm::length::len_u32(entries.len(), "raft log record entry count");
            out.extend_from_slice(&count.to_le_bytes());
            for entry in entries {
                encode_entry(entry, out);
            }
        }
        Record::HardState(hard_state) => encode_hard_state(hard_state, out),
        Record::InstallSnapshot(meta) | Record::Compact(meta) => encode_snapshot_meta(meta, out),
        Record::Truncate { from_index } => out.extend_from_slice(&from_index.to_le_bytes()),
        Record::Synced { durable_bytes } => out.extend_from_slice(&durable_bytes.to_le_bytes()),
    }
    // What is written must read back as itself (entries excepted: their
    // records are large, and the codec checks each entry it encodes).
    debug_assert!(
        matches!(record, Record::Entries(_))
            || decode_payload(record.record_type(), out).as_ref() == Ok(record),
        "{record:?} does not decode from its own encoding"
    );
}

/// Why a payload whose checksum matched still does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// The segment header's magic is not ours: not a raftwood log.
    NotALog,
    /// A newer format version.
    UnsupportedVersion(u32),
    /// Anything else.
    Invalid(String),
}

impl From<DecodeError> for PayloadError {
    fn from(error: DecodeError) -> Self {
        PayloadError::Invalid(error.to_string())
    }
}

fn take<'a>(input: &mut &'a [u8], len: usize, what: &str) -> Result<&'a [u8], PayloadError> {
    if input.len() < len {
        return Err(PayloadError::Invalid(format!("truncated {what}")));
    }
    let (head, tail) = input.split_at(len);
    *input = tail;
    Ok(head)
}

fn take_u64(input: &mut &[u8], what: &str) -> Result<u64, PayloadError> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(take(input, 8, what)?);
    Ok(u64::from_le_bytes(bytes))
}

fn take_u32(input: &mut &[u8], what: &str) -> Result<u32, PayloadError> {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(take(input, 4, what)?);
    Ok(u32::from_le_bytes(bytes))
}

fn finish(input: &[u8], what: &str) -> Result<(), PayloadError> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(PayloadError::Invalid(format!(
            "{} trailing bytes after {what}",
            input.len()
        )))
    }
}

/// Decodes the payload of a record of type `record_type`. The payload
/// must be consumed exactly.
pub(crate) fn decode_payload(
    record_type: RecordType,
    mut input: &[u8],
) -> Result<Record, PayloadError> {
    let record = match record_type {
        RecordType::SegmentHeader => {
            if take(&mut input, 8, "magic")? != SEGMENT_MAGIC {
                return Err(PayloadError::NotALog);
            }
            let version = take_u32(&mut input, "format version")?;
            if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
                return Err(PayloadError::UnsupportedVersion(version));
            }
            let sequence = take_u64(&mut input, "sequence")?;
            let previous_valid_bytes = take_u64(&mut input, "previous valid bytes")?;
            let (hard_state, used) = decode_hard_state(input)?;
            input = &input[used..];
            let snapshot = match take(&mut input, 1, "snapshot presence")?[0] {
                0 => None,
                1 => {
                    let (meta, used) = decode_snapshot_meta(input)?;
                    input = &input[used..];
                    Some(meta)
                }
                other => {
                    return Err(PayloadError::Invalid(format!(
                        "snapshot presence byte {other}"
                    )));
                }
            };
            Record::SegmentHeader(SegmentHeader {
                version,
                sequence,
                previous_valid_bytes,
                hard_state,
                snapshot,
            })
        }
        RecordType::Entries => {
            let count = take_u32(&mut input, "entry count")? as usize;
            if count == 0 || count > input.len() / ENTRY_MIN_ENCODED_BYTES {
                return Err(PayloadError::Invalid(format!(
                    "entry count {count} for {} bytes",
                    input.len()
                )));
            }
            let mut entries: Vec<Entry> = Vec::with_capacity(count);
            for _ in 0..count {
                let (entry, used) = decode_entry(input)?;
                input = &input[used..];
                if let Some(previous) = entries.last()
                    && previous.index.checked_add(1) != Some(entry.index)
                {
                    return Err(PayloadError::Invalid(format!(
                        "entry {} follows entry {} in one record",
                        entry.index, previous.index
                    )));
                }
                entries.push(entry);
            }
            Record::Entries(entries)
        }
        RecordType::HardState => {
            let (hard_state, used) = decode_hard_state(input)?;
            input = &input[used..];
            Record::HardState(hard_state)
        }
        RecordType::InstallSnapshot | RecordType::Compact => {
            let (meta, used) = decode_snapshot_meta(input)?;
            input = &input[used..];
            if record_type == RecordType::Compact {
                Record::Compact(meta)
            } else {
                Record::InstallSnapshot(meta)
            }
        }
        RecordType::Truncate => Record::Truncate {
            from_index: take_u64(&mut input, "truncation index")?,
        },
        RecordType::Synced => Record::Synced {
            durable_bytes: take_u64(&mut input, "durable bytes")?,
        },
    };
    finish(input, "record payload")?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use raftwood_raft::ConfState;

    use super::*;

    #[test]
    fn payloads_round_trip() {
        let meta = SnapshotMeta {
            index: 7,
            term: 2,
            conf_state: ConfState::with_voters([1, 2]),
        };
        let records = [
            Record::SegmentHeader(SegmentHeader {
                version: FORMAT_VERSION,
                sequence: 3,
                previous_valid_bytes: 99,
                hard_state: HardState {
                    term: 2,
                    vote: Some(1),
                    commit: 5,
                },
                snapshot: Some(meta.clone()),
            }),
            Record::Entries(vec![Entry {
                term: 2,
                index: 8,
                payload: raftwood_raft::EntryPayload::Empty,
            }]),
            Record::HardState(HardState::default()),
            Record::InstallSnapshot(meta.clone()),
            Record::Truncate { from_index: 4 },
            Record::Compact(meta),
            Record::Synced { durable_bytes: 77 },
        ];
        let mut payload = Vec::new();
        for record in records {
            encode_payload(&record, &mut payload);
            assert_eq!(
                decode_payload(record.record_type(), &payload),
                Ok(record.clone())
            );
            payload.push(0);
            assert!(decode_payload(record.record_type(), &payload).is_err());
        }
    }

    #[test]
    fn a_foreign_header_is_not_a_log_and_a_newer_one_is_unsupported() {
        let header = Record::SegmentHeader(SegmentHeader {
            version: FORMAT_VERSION,
            sequence: 1,
            previous_valid_bytes: 0,
            hard_state: HardState::default(),
            snapshot: None,
        });
        let mut payload = Vec::new();
        encode_payload(&header, &mut payload);
        let mut foreign = payload.clone();
        foreign[0] ^= 0x20;
        assert_eq!(
            decode_payload(RecordType::SegmentHeader, &foreign),
            Err(PayloadError::NotALog)
        );
        let mut newer = payload.clone();
        newer[8] = 3;
        assert_eq!(
            decode_payload(RecordType::SegmentHeader, &newer),
            Err(PayloadError::UnsupportedVersion(3))
        );
        // Version 1 (before `Synced` records) is still read.
        let mut older = payload.clone();
        older[8] = 1;
        assert!(matches!(
            decode_payload(RecordType::SegmentHeader, &older),
            Ok(Record::SegmentHeader(SegmentHeader { version: 1, .. }))
        ));
    }

    #[test]
    fn entries_records_must_be_consecutive_and_non_empty() {
        let entry = |index| Entry {
            term: 1,
            index,
            payload: raftwood_raft::EntryPayload::Empty,
        };
        // Framed by hand: `encode_payload` asserts the invariant.
        let mut payload = 2u32.to_le_bytes().to_vec();
        encode_entry(&entry(1), &mut payload);
        encode_entry(&entry(3), &mut payload);
        assert!(decode_payload(RecordType::Entries, &payload).is_err());
        assert!(decode_payload(RecordType::Entries, &0u32.to_le_bytes()).is_err());
        assert!(decode_payload(RecordType::Entries, &u32::MAX.to_le_bytes()).is_err());
    }
}
