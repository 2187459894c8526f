//! Reads framed records back from a whole log file (format and recovery
//! rules: `docs/wal-format.md`).

use std::fmt;

use super::format::{self, HEADER_LEN};
use crate::error::{Error, Result};
use crate::options::WalRecovery;

/// Reads the records of a log held in memory, verifying every checksum.
///
/// The log ends cleanly at end of file or at a torn tail: a damaged or
/// incomplete record after which no valid record follows. What happens when
/// a valid record *does* follow damage depends on [`WalRecovery`]:
/// `TolerateTornTail` returns [`Error::Corruption`], `PointInTime` ends the
/// log at the damage. After the end, [`LogReader::valid_prefix_len`] says how
/// many bytes hold good records and [`LogReader::dropped_tail_bytes`] how
/// many were ignored.
pub struct LogReader {
    data: Vec<u8>,
    recovery: WalRecovery,
    /// Names the file in corruption errors.
    file_name: String,
    /// Start of the next record. Invariant: `position <= data.len()`, and
    /// every byte before it belongs to a verified record.
    position: usize,
    /// Records returned so far.
    records_read: u64,
    state: ReadState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Reading,
    /// The log ended at `position`; the bytes after it are dropped.
    Ended,
    /// A damaged record was followed by a valid one (`TolerateTornTail`).
    Failed {
        damaged_at: usize,
        valid_at: usize,
    },
}

/// What lies at a position of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A verified record; its payload is `payload_start..end`.
    Record { payload_start: usize, end: usize },
    /// Fewer bytes than a header remain, or the payload runs past the end.
    Incomplete(&'static str),
    /// Something the writer cannot have produced here.
    Damaged(&'static str),
}

/// Classifies the bytes at `position`. Never allocates and never trusts a
/// length before checking it against the bytes that remain.
fn slot_at(data: &[u8], position: usize) -> Slot {
    let Some(header_bytes) = data
        .get(position..)
        .and_then(|rest| rest.get(..HEADER_LEN))
        .and_then(|bytes| <&[u8; HEADER_LEN]>::try_from(bytes).ok())
    else {
        return Slot::Incomplete("header cut off by end of file");
    };
    let Some(header) = format::decode_header(header_bytes) else {
        return Slot::Damaged("header checksum mismatch");
    };
    if header.offset != position as u64 {
        // A verified header in the wrong place: stale or copied bytes, or a
        // log embedded in a payload.
        return Slot::Damaged("header names another offset");
    }
    let payload_start = position + HEADER_LEN;
    let remaining = data.len() - payload_start;
    let payload_len = header.payload_len as usize;
    if payload_len > remaining {
        return Slot::Incomplete("payload cut off by end of file");
    }
    let end = payload_start + payload_len;
    if format::payload_checksum(&data[payload_start..end]) != header.payload_crc {
        return Slot::Damaged("payload checksum mismatch");
    }
    Slot::Record { payload_start, end }
}

/// The first position after `damaged_at` holding a complete, verified
/// record, if any. A candidate must store its own position in its header
/// before its checksums are computed, so the scan costs about one 8-byte
/// comparison per byte of tail.
fn find_valid_record_after(data: &[u8], damaged_at: usize) -> Option<usize> {
    let last_candidate = data.len().checked_sub(HEADER_LEN)?;
    (damaged_at + 1..=last_candidate).find(|&candidate| {
        let offset_matches = data
            .get(candidate..candidate + HEADER_LEN)
            .and_then(|bytes| <&[u8; HEADER_LEN]>::try_from(bytes).ok())
            .is_some_and(|bytes| format::stored_offset(bytes) == candidate as u64);
        offset_matches && matches!(slot_at(data, candidate), Slot::Record { .. })
    })
}

impl LogReader {
    /// Reads the log whose whole content is `data`.
    pub fn new(data: Vec<u8>, recovery: WalRecovery) -> LogReader {
        LogReader {
            data,
            recovery,
            file_name: "log".to_string(),
            position: 0,
            records_read: 0,
            state: ReadState::Reading,
        }
    }

    /// Names the file in corruption errors.
    pub fn with_file_name(mut self, file_name: impl Into<String>) -> LogReader {
        self.file_name = file_name.into();
        self
    }

    /// The next record's payload, `None` at the end of the log (clean or
    /// torn). After an error every call returns an error again.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>> {
        match self.state {
            ReadState::Reading => {}
            ReadState::Ended => return Ok(None),
            ReadState::Failed {
                damaged_at,
                valid_at,
            } => return Err(self.corruption(damaged_at, valid_at, "see the first error")),
        }
        if self.position == self.data.len() {
            self.state = ReadState::Ended;
            return Ok(None);
        }
        match slot_at(&self.data, self.position) {
            Slot::Record { payload_start, end } => {
                debug_assert!(end <= self.data.len() && payload_start <= end);
                debug_assert_eq!(payload_start, self.position + HEADER_LEN);
                // A verified header is within the writer's limit.
                debug_assert!(end - payload_start <= format::MAX_PAYLOAD_LEN_BYTES);
                self.position = end;
                self.records_read += 1;
                Ok(Some(&self.data[payload_start..end]))
            }
            Slot::Incomplete(reason) | Slot::Damaged(reason) => self.end_at_damage(reason),
        }
    }

    fn end_at_damage(&mut self, reason: &'static str) -> Result<Option<&[u8]>> {
        let damaged_at = self.position;
        // Point-in-time recovery keeps the prefix whatever follows, so only
        // the strict mode pays for the scan.
        if self.recovery == WalRecovery::TolerateTornTail
            && let Some(valid_at) = find_valid_record_after(&self.data, damaged_at)
        {
            self.state = ReadState::Failed {
                damaged_at,
                valid_at,
            };
            return Err(self.corruption(damaged_at, valid_at, reason));
        }
        tracing::debug!(
            file = %self.file_name,
            valid_prefix_len = damaged_at,
            dropped_tail_bytes = self.data.len() - damaged_at,
            reason,
            "log ends at a damaged or incomplete record"
        );
        self.state = ReadState::Ended;
        Ok(None)
    }

    fn corruption(&self, damaged_at: usize, valid_at: usize, reason: &str) -> Error {
        Error::corruption(
            self.file_name.clone(),
            format!(
                "record at offset {damaged_at} is damaged ({reason}) but a valid record follows \
                 at offset {valid_at}; refusing to drop records from the middle of the log \
                 (point-in-time recovery would keep the first {damaged_at} bytes)"
            ),
        )
    }

    /// Bytes of the file occupied by the records returned so far. Once the
    /// log has ended, the caller may keep exactly this prefix.
    pub fn valid_prefix_len(&self) -> u64 {
        self.position as u64
    }

    /// Bytes after the valid prefix that the reader ignored: zero until the
    /// log has ended (or failed), then `file length - valid_prefix_len`.
    pub fn dropped_tail_bytes(&self) -> u64 {
        match self.state {
            ReadState::Reading => 0,
            ReadState::Ended | ReadState::Failed { .. } => (self.data.len() - self.position) as u64,
        }
    }

    /// Records returned so far.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// True once `next_record` has returned `None` or an error.
    pub fn is_finished(&self) -> bool {
        self.state != ReadState::Reading
    }
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("file_name", &self.file_name)
            .field("len_bytes", &self.data.len())
            .field("recovery", &self.recovery)
            .field("position", &self.position)
            .field("records_read", &self.records_read)
            .field("state", &self.state)
            .finish()
    }
}
