//! Rebuilding the log from its segment files. Read-only: it decides what the
//! log holds and what the store must do to the directory, and the store
//! does it (see `RaftLogStore::open`). The rules, and why they are safe, are
//! in `docs/raft-log-format.md` ("Recovery" and "Crash analysis").

use std::path::{Path, PathBuf};

use raftwood_lsm::fs::FileSystem;

use crate::error::LogError;
use crate::format::{FLAG_END_OF_WRITE, FrameError, HEADER_BYTES, read_record};
use crate::options::RecoveryMode;
use crate::record::{
    FIRST_VERSION_WITH_SYNCED, PayloadError, Record, SegmentHeader, decode_payload,
};
use crate::segment::SegmentInfo;
use crate::state::LogState;

/// What recovery found, and what the store must do before it accepts writes.
#[derive(Debug)]
pub(crate) struct RecoveredLog {
    pub(crate) state: LogState,
    /// The replayed segments, oldest first.
    pub(crate) segments: Vec<SegmentInfo>,
    /// The sequence number of the segment the store starts next.
    pub(crate) next_sequence: u64,
    /// The valid length of segment `next_sequence - 1`, for the new
    /// segment's header.
    pub(crate) previous_valid_bytes: u64,
    /// Sequence of the segment holding the last `InstallSnapshot` record.
    pub(crate) last_reset_sequence: Option<u64>,
    /// Segments older than a gap in the sequence numbers: left over from a
    /// compaction a crash interrupted. Deleted once the new segment is
    /// durable.
    pub(crate) obsolete: Vec<PathBuf>,
    /// Segments after damage that `TruncateAtFirstDamage` gave up, newest
    /// first: deleted, in that order, before the new segment is created.
    pub(crate) discarded: Vec<PathBuf>,
}

fn corruption(path: &Path, offset: u64, detail: impl Into<String>) -> LogError {
    LogError::Corruption {
        file: path.to_path_buf(),
        offset,
        detail: detail.into(),
    }
}

fn payload_error(path: &Path, offset: u64, error: PayloadError, dir: &Path) -> LogError {
    match error {
        PayloadError::NotALog => LogError::NotALog {
            path: dir.to_path_buf(),
            detail: format!(
                "{} does not start with a raftwood log segment header",
                path.display()
            ),
        },
        PayloadError::UnsupportedVersion(found) => LogError::UnsupportedVersion {
            file: path.to_path_buf(),
            found,
            supported: crate::record::FORMAT_VERSION,
        },
        PayloadError::Invalid(detail) => corruption(path, offset, detail),
    }
}

/// True if a valid record starts anywhere after `position`: the damage at
/// `position` is then not a torn tail.
fn valid_record_after(bytes: &[u8], position: usize) -> Option<usize> {
    (position + 1..bytes.len().saturating_sub(HEADER_BYTES - 1))
        .find(|&candidate| read_record(bytes, candidate).is_ok())
}

/// Whether any valid `Synced` record from `position` on says that bytes
/// past `damaged_at` were durable when it was written: then the damage at
/// `damaged_at` is to synced bytes, not a torn write. Reads every record it
/// can parse from `position` on, skipping over further damage.
fn synced_past(bytes: &[u8], mut position: usize, damaged_at: usize) -> bool {
    while position < bytes.len() {
        match read_record(bytes, position) {
            Ok((header, payload)) => {
                if let Ok(Record::Synced { durable_bytes }) =
                    decode_payload(header.record_type, payload)
                    && durable_bytes > damaged_at as u64
                {
                    return true;
                }
                position += HEADER_BYTES + header.payload_len as usize;
            }
            Err(_) => match valid_record_after(bytes, position) {
                Some(next) => position = next,
                None => return false,
            },
        }
    }
    false
}

/// Where replaying one segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentEnd {
    /// Every byte up to the limit was valid records ending a write.
    Clean { valid_bytes: u64 },
    /// A torn tail (last segment) or, in lenient mode, damage: the log ends
    /// after `valid_bytes` of this segment.
    Cut { valid_bytes: u64 },
}

/// The first record of a segment, if it is a valid header. `Ok(None)` if
/// the record is damaged or incomplete (the caller decides whether that is
/// a torn segment or corruption).
fn read_header(bytes: &[u8], path: &Path, dir: &Path) -> Result<Option<SegmentHeader>, LogError> {
    match read_record(bytes, 0) {
        Ok((header, payload)) => match decode_payload(header.record_type, payload) {
            Ok(Record::SegmentHeader(segment_header)) => Ok(Some(segment_header)),
            Ok(_) => Err(corruption(
                path,
                0,
                "a segment does not start with its header",
            )),
            Err(error) => Err(payload_error(path, 0, error, dir)),
        },
        Err(_) => Ok(None),
    }
}

/// Replays the segment files `files` (sorted by sequence) of `dir`.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    files: &[(u64, PathBuf)],
    mode: RecoveryMode,
) -> Result<RecoveredLog, LogError> {
    // Only the newest run of consecutive sequence numbers is the log: a
    // compaction deletes segments oldest first, so anything before a gap
    // was being deleted when a crash came.
    let run_start = files
        .windows(2)
        .rposition(|pair| pair[0].0.checked_add(1) != Some(pair[1].0))
        .map_or(0, |i| i + 1);
    let obsolete: Vec<PathBuf> = files[..run_start].iter().map(|(_, p)| p.clone()).collect();
    let mut run: Vec<(u64, PathBuf)> = files[run_start..].to_vec();

    let read = |path: &Path| {
        fs.read_file(path)
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))
    };

    // A newest segment whose header never became durable (a crash while it
    // was being created) holds nothing: it is abandoned and its number
    // reused. If valid records follow the bad header it is damage instead.
    let mut reuse_sequence = None;
    if let Some((sequence, path)) = run.last().cloned() {
        let bytes = read(&path)?;
        if read_header(&bytes, &path, dir)?.is_none() {
            if mode == RecoveryMode::Strict
                && let Some(at) = valid_record_after(&bytes, 0)
            {
                return Err(corruption(
                    &path,
                    0,
                    format!("damaged segment header, but a valid record follows at byte {at}"),
                ));
            }
            run.pop();
            reuse_sequence = Some(sequence);
        }
    }

    let mut state = LogState::default();
    let mut segments = Vec::new();
    let mut last_reset_sequence = None;
    let mut discarded = Vec::new();
    let mut next_sequence = reuse_sequence.unwrap_or(1);
    let mut previous_valid_bytes = 0;

    let mut next_bytes: Option<Vec<u8>> = None;
    for i in 0..run.len() {
        let (sequence, path) = &run[i];
        let bytes = match next_bytes.take() {
            Some(bytes) => bytes,
            None => read(path)?,
        };
        // A segment is read up to the valid length its successor's header
        // records; the newest segment is read to its end.
        let limit = match run.get(i + 1) {
            Some((next_sequence, next_path)) => {
                let following = read(next_path)?;
                let header = read_header(&following, next_path, dir)?.ok_or_else(|| {
                    corruption(
                        next_path,
                        0,
                        "damaged segment header in a segment that is not the newest",
                    )
                })?;
                if header.sequence != *next_sequence {
                    return Err(corruption(
                        next_path,
                        0,
                        format!("header names segment {}", header.sequence),
                    ));
                }
                next_bytes = Some(following);
                let limit = usize::try_from(header.previous_valid_bytes).unwrap_or(usize::MAX);
                if limit > bytes.len() {
                    return Err(corruption(
                        path,
                        bytes.len() as u64,
                        format!(
                            "the segment is {} bytes but its successor says {limit} are valid",
                            bytes.len()
                        ),
                    ));
                }
                Some(limit)
            }
            None => None,
        };
        let mut info = SegmentInfo {
            sequence: *sequence,
            path: path.clone(),
            max_entry_index: None,
        };
        let end = replay_segment(
            &bytes,
            limit,
            &mut info,
            &mut state,
            &mut last_reset_sequence,
            i == 0,
            mode,
            dir,
        )?;
        segments.push(info);
        next_sequence = sequence + 1;
        match end {
            SegmentEnd::Clean { valid_bytes } => previous_valid_bytes = valid_bytes,
            SegmentEnd::Cut { valid_bytes } => {
                previous_valid_bytes = valid_bytes;
                // Lenient mode gives up every later segment, newest first.
                discarded = run[i + 1..].iter().rev().map(|(_, p)| p.clone()).collect();
                break;
            }
        }
    }

    let last_path = segments
        .last()
        .map_or_else(|| dir.to_path_buf(), |s| s.path.clone());
    state
        .finish_replay()
        .map_err(|detail| corruption(&last_path, 0, detail))?;
    // The store takes these as its closed segments and numbers the next one
    // after them (`RaftLogStore::check_invariants`).
    debug_assert!(
        segments
            .windows(2)
            .all(|w| w[0].sequence + 1 == w[1].sequence),
        "replayed segments are consecutive"
    );
    debug_assert!(
        segments
            .last()
            .is_none_or(|s| s.sequence + 1 == next_sequence),
        "the next segment follows the last replayed one"
    );
    debug_assert!(
        last_reset_sequence.is_none_or(|reset| segments.iter().any(|s| s.sequence == reset)),
        "the last snapshot install is in a replayed segment"
    );
    Ok(RecoveredLog {
        state,
        segments,
        next_sequence,
        previous_valid_bytes,
        last_reset_sequence,
        obsolete,
        discarded,
    })
}

/// Replays the records of one segment into `state`, a write at a time.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all of recovery's state"
)]
fn replay_segment(
    bytes: &[u8],
    limit: Option<usize>,
    info: &mut SegmentInfo,
    state: &mut LogState,
    last_reset_sequence: &mut Option<u64>,
    first_in_run: bool,
    mode: RecoveryMode,
    dir: &Path,
) -> Result<SegmentEnd, LogError> {
    let path = info.path.clone();
    let end_of_data = limit.unwrap_or(bytes.len());
    let data = &bytes[..end_of_data];
    let mut position = 0usize;
    // Records of the write being read; applied when its last record is.
    let mut pending: Vec<Record> = Vec::new();
    let mut valid_bytes = 0usize;
    // The segment's format version, from its header.
    let mut version = None;

    while position < data.len() {
        let (header, payload) = match read_record(data, position) {
            Ok(record) => record,
            // The newest segment is kept zero-filled ahead of its writes
            // (`LogOptions::zero_ahead_bytes`): zeros to its end are where
            // the log ends, not damage. (A segment with a successor is read
            // only up to the length the successor vouches for.)
            Err(_) if limit.is_none() && data[position..].iter().all(|&b| b == 0) => break,
            Err(error) => {
                let detail = match error {
                    FrameError::Incomplete => "incomplete record".to_owned(),
                    FrameError::Bad(detail) => detail,
                };
                if mode == RecoveryMode::TruncateAtFirstDamage {
                    return Ok(SegmentEnd::Cut {
                        valid_bytes: valid_bytes as u64,
                    });
                }
                if limit.is_some() {
                    return Err(corruption(
                        &path,
                        position as u64,
                        format!("{detail} in a segment that is not the newest"),
                    ));
                }
                if let Some(at) = valid_record_after(data, position) {
                    // Since format version 2 a write may overwrite the
                    // segment's zero tail, and a power cut during its sync
                    // can keep a later block of it and lose an earlier one
                    // (nothing orders them, unlike an append whose new size
                    // is committed after its data): valid records after
                    // damage are then a torn write too — unless a later
                    // write's `Synced` record says the damaged bytes were
                    // already durable.
                    let torn_is_possible = version.is_some_and(|v| v >= FIRST_VERSION_WITH_SYNCED);
                    if !torn_is_possible || synced_past(data, at, position) {
                        return Err(corruption(
                            &path,
                            position as u64,
                            format!("{detail}, but a valid record follows at byte {at}"),
                        ));
                    }
                }
                // A torn tail: the crash came during a write nobody was told
                // was durable.
                return Ok(SegmentEnd::Cut {
                    valid_bytes: valid_bytes as u64,
                });
            }
        };
        let record = decode_payload(header.record_type, payload)
            .map_err(|error| payload_error(&path, position as u64, error, dir))?;
        match (&record, position) {
            (Record::SegmentHeader(segment_header), 0) => {
                version = Some(segment_header.version);
                if segment_header.sequence != info.sequence {
                    return Err(corruption(
                        &path,
                        0,
                        format!("header names segment {}", segment_header.sequence),
                    ));
                }
                if !first_in_run
                    && (segment_header.hard_state != state.hard_state
                        || segment_header.snapshot != state.snapshot)
                {
                    return Err(corruption(
                        &path,
                        0,
                        "segment header disagrees with the log before it",
                    ));
                }
            }
            (Record::SegmentHeader(_), _) => {
                return Err(corruption(
                    &path,
                    position as u64,
                    "segment header inside a segment",
                ));
            }
            (_, 0) => {
                return Err(corruption(
                    &path,
                    0,
                    "a segment does not start with its header",
                ));
            }
            _ => {}
        }
        pending.push(record);
        position += HEADER_BYTES + header.payload_len as usize;
        debug_assert!(
            position <= data.len(),
            "read_record returned bytes past the end"
        );
        if header.flags & FLAG_END_OF_WRITE != 0 {
            for record in pending.drain(..) {
                apply(&record, state, info, last_reset_sequence)
                    .map_err(|detail| corruption(&path, header.offset, detail))?;
            }
            valid_bytes = position;
        }
    }
    if !pending.is_empty() {
        // The segment ends inside a write.
        if limit.is_some() && mode == RecoveryMode::Strict {
            return Err(corruption(
                &path,
                valid_bytes as u64,
                "a segment that is not the newest ends inside a write",
            ));
        }
        return Ok(SegmentEnd::Cut {
            valid_bytes: valid_bytes as u64,
        });
    }
    // Only the newest segment may end early, at its zero tail: one with a
    // successor is valid exactly up to the length the successor vouches for.
    debug_assert!(limit.is_none_or(|limit| valid_bytes == limit));
    Ok(SegmentEnd::Clean {
        valid_bytes: valid_bytes as u64,
    })
}

/// Applies one record of a complete write.
fn apply(
    record: &Record,
    state: &mut LogState,
    info: &mut SegmentInfo,
    last_reset_sequence: &mut Option<u64>,
) -> Result<(), String> {
    match record {
        Record::SegmentHeader(header) => {
            state.hard_state = header.hard_state;
            state.snapshot = header.snapshot.clone();
        }
        Record::Entries(entries) => {
            state.append(entries)?;
            if let Some(last) = entries.last() {
                info.note_entries(last.index);
            }
        }
        Record::HardState(hard_state) => state.hard_state = *hard_state,
        Record::InstallSnapshot(meta) => {
            state.install_snapshot(meta);
            *last_reset_sequence = Some(info.sequence);
        }
        Record::Truncate { from_index } => state.truncate_from(*from_index),
        Record::Compact(meta) => state.compact(meta),
        Record::Synced { .. } => {}
    }
    Ok(())
}
