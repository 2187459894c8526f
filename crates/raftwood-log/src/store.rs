//! `RaftLogStore`: the Raft log on disk. The format is in
//! `docs/raft-log-format.md`; recovery is in `recovery.rs`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftwood_lsm::fs::{FileLock, FileSystem, WritableFile};
use raftwood_raft::{Entry, HardState, Index, PersistRequest, SnapshotMeta, Term};

use crate::error::LogError;
use crate::format::{
    ENTRIES_RECORD_TARGET_BYTES, FLAG_END_OF_WRITE, LOCK_FILE_NAME, MAX_PAYLOAD_BYTES,
    parse_segment_file_name, put_record, segment_file_name,
};
use crate::options::LogOptions;
use crate::record::{FORMAT_VERSION, Record, SegmentHeader, encode_payload};
use crate::recovery::{RecoveredLog, recover};
use crate::segment::SegmentInfo;
use crate::state::LogState;

/// What a store found on disk when it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last hard state written by a complete write.
    pub hard_state: HardState,
    /// The point the log starts after, if a snapshot was ever installed or
    /// the log compacted.
    pub snapshot: Option<SnapshotMeta>,
    /// The entries after the snapshot point, consecutive, starting at the
    /// snapshot index + 1 (or 1).
    pub entries: Vec<Entry>,
}

/// The Raft log of one member on disk: segmented, checksummed, append-only
/// files holding entries, the hard state and the snapshot point.
///
/// One thread drives it: `write` each persist request in the order the core
/// issued them, then `sync` once for the whole group, then report the
/// tickets to the core. Every write is atomic on recovery: all of its
/// records are replayed or none.
///
/// The store keeps the log's entries in memory as well (their payloads are
/// `Bytes`, shared with the copies the core holds), so `entries` never reads
/// the disk.
#[derive(Debug)]
pub struct RaftLogStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    options: LogOptions,
    _lock: Box<dyn FileLock>,
    /// The log as written (not necessarily synced).
    state: LogState,
    /// Closed segments, oldest first. Invariant: consecutive sequence
    /// numbers ending just below the active segment's.
    closed: VecDeque<SegmentInfo>,
    active: SegmentInfo,
    active_file: Box<dyn WritableFile>,
    /// The active segment's size: it holds zeros from the append position
    /// (`active_file.len()`) up to here, once they are synced.
    active_zeroed_to: u64,
    /// Bytes of the active segment known durable: its length at the last
    /// sync. Every write starts with it (`Record::Synced`). Invariant:
    /// at most `active_file.len()`; below it exactly when something was
    /// appended since the last successful sync.
    active_durable_bytes: u64,
    /// The segment holding the newest `InstallSnapshot` record; every
    /// segment before it is obsolete.
    last_reset_sequence: Option<u64>,
    /// Set by the first failed write, sync or deletion: the reason every
    /// later change is refused.
    poisoned: Option<String>,
    /// Reused encoding buffers.
    buffer: Vec<u8>,
    payload: Vec<u8>,
}

impl RaftLogStore {
    /// Opens the log in `dir`, creating it if needed, and recovers what it
    /// holds. A directory holding anything but segment files and the lock
    /// file is refused with [`LogError::NotALog`] before anything in it is
    /// changed. Recovery never changes a byte of an existing segment: it
    /// starts a new segment and records there how much of the previous one
    /// is valid.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        options: LogOptions,
    ) -> Result<(RaftLogStore, Recovered), LogError> {
        let files = inspect_dir(fs.as_ref(), dir)?;
        let lock = fs
            .lock_file(&dir.join(LOCK_FILE_NAME))
            .map_err(|e| LogError::io(format!("locking {}", dir.display()), e))?;
        let RecoveredLog {
            state,
            segments,
            next_sequence,
            previous_valid_bytes,
            last_reset_sequence,
            obsolete,
            discarded,
        } = recover(fs.as_ref(), dir, &files, options.recovery_mode)?;

        // What recovery read may have come from the page cache of a process
        // that crashed before syncing it. It must be durable before the new
        // segment's header vouches for its length and before the caller acts
        // on it. Older segments were synced when they were closed.
        if let Some(last) = segments.last() {
            fs.sync_file(&last.path)
                .map_err(|e| LogError::io(format!("syncing {}", last.path.display()), e))?;
        }
        // Lenient recovery gave these up. Newest first, each deletion made
        // durable before the next, so a crash here never leaves a gap.
        for path in &discarded {
            fs.remove_file(path)
                .map_err(|e| LogError::io(format!("removing {}", path.display()), e))?;
            sync_dir(fs.as_ref(), dir)?;
        }
        let (active, active_file, active_zeroed_to) = create_segment(
            fs.as_ref(),
            dir,
            next_sequence,
            previous_valid_bytes,
            &state,
            &options,
        )?;
        // The new segment is durable; leftovers of an interrupted
        // compaction can go.
        for path in &obsolete {
            fs.remove_file(path)
                .map_err(|e| LogError::io(format!("removing {}", path.display()), e))?;
        }
        if !obsolete.is_empty() {
            sync_dir(fs.as_ref(), dir)?;
        }

        let recovered = Recovered {
            hard_state: state.hard_state,
            snapshot: state.snapshot.clone(),
            entries: state.entries.iter().cloned().collect(),
        };
        let store = RaftLogStore {
            fs,
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            state,
            closed: segments
                .into_iter()
                .filter(|s| s.sequence < active.sequence)
                .collect(),
            active_durable_bytes: active_file.len(),
            active,
            active_file,
            active_zeroed_to,
            last_reset_sequence,
            poisoned: None,
            buffer: Vec::new(),
            payload: Vec::new(),
        };
        store.check_invariants();
        Ok((store, recovered))
    }

    /// Appends `request` without syncing it, in the order the core's
    /// contract gives: the snapshot point (the log is replaced), then the
    /// entries (if the first one's index is at or below the last index, the
    /// log from there is truncated first: a conflict was resolved), then the
    /// hard state. A request that would break the log (a gap, entries at or
    /// below the snapshot point, terms going down) is refused with
    /// [`LogError::InvalidRequest`] and nothing is written.
    pub fn write(&mut self, request: &PersistRequest) -> Result<(), LogError> {
        self.check_not_poisoned()?;
        self.state
            .check_request(request)
            .map_err(LogError::InvalidRequest)?;
        if let Some(entry) = request
            .entries
            .iter()
            .find(|e| e.payload_size_bytes() + 64 > u64::from(MAX_PAYLOAD_BYTES))
        {
            return Err(LogError::InvalidRequest(format!(
                "entry {} is larger than a record can hold",
                entry.index
            )));
        }
        let mut records = Vec::new();
        if let Some(meta) = &request.snapshot {
            records.push(Record::InstallSnapshot(meta.clone()));
        }
        if let Some(first) = request.entries.first() {
            let last_index = match &request.snapshot {
                Some(meta) => meta.index,
                None => self.state.last_index(),
            };
            if first.index <= last_index {
                records.push(Record::Truncate {
                    from_index: first.index,
                });
            }
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0usize;
            for entry in &request.entries {
                let size = usize::try_from(entry.payload_size_bytes()).unwrap_or(usize::MAX);
                if !chunk.is_empty()
                    && chunk_bytes.saturating_add(size) > ENTRIES_RECORD_TARGET_BYTES
                {
                    records.push(Record::Entries(std::mem::take(&mut chunk)));
                    chunk_bytes = 0;
                }
                chunk_bytes = chunk_bytes.saturating_add(size + 32);
                chunk.push(entry.clone());
            }
            records.push(Record::Entries(chunk));
            debug_assert!(
                records
                    .iter()
                    .all(|r| !matches!(r, Record::Entries(chunk) if chunk.is_empty())),
                "an empty entries record"
            );
            debug_assert_eq!(
                records
                    .iter()
                    .map(|r| match r {
                        Record::Entries(chunk) => chunk.len(),
                        _ => 0,
                    })
                    .sum::<usize>(),
                request.entries.len(),
                "the chunks hold every entry once"
            );
        }
        if let Some(hard_state) = request.hard_state {
            records.push(Record::HardState(hard_state));
        }
        if records.is_empty() {
            return Ok(());
        }
        if self.active_file.len() >= self.options.segment_size_bytes {
            self.roll()?;
        }
        self.append_write(&records)?;
        for record in &records {
            self.apply(record);
        }
        // The request's last entry (or its snapshot point) is now the log's
        // last, and the active segment knows it holds it.
        if let Some(last) = request.entries.last() {
            debug_assert_eq!(self.state.last_index(), last.index);
            debug_assert!(self.active.max_entry_index >= Some(last.index));
        } else if let Some(meta) = &request.snapshot {
            debug_assert_eq!(self.state.last_index(), meta.index);
        }
        self.check_invariants();
        Ok(())
    }

    /// Makes everything written so far durable: one `fdatasync` of the active
    /// segment. (Closed segments were synced when they were closed, and a
    /// new segment's directory entry when it was created, so nothing else
    /// can be pending.)
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.check_not_poisoned()?;
        if self.active_durable_bytes == self.active_file.len() {
            return Ok(());
        }
        if let Err(error) = self.active_file.sync_data() {
            return Err(self.poison(format!("syncing {}", self.active.path.display()), error));
        }
        self.active_durable_bytes = self.active_file.len();
        self.check_invariants();
        Ok(())
    }

    /// Records that the log now starts after `snapshot` (a snapshot of the
    /// state machine was taken at `snapshot.index`: the core's
    /// `compact_log` returned it), makes that durable, and deletes the
    /// oldest segments whose entries are all at or below the snapshot point
    /// — never the active segment.
    ///
    /// The snapshot point is recorded before anything is deleted: otherwise
    /// a crash after the deletion would leave neither the entries nor the
    /// point that replaced them.
    ///
    /// It takes the snapshot's metadata rather than an index because
    /// recovery must return the term and configuration the deleted entries
    /// were replaced by.
    pub fn compact(&mut self, snapshot: &SnapshotMeta) -> Result<(), LogError> {
        self.check_not_poisoned()?;
        if snapshot.index > self.state.snapshot_index() {
            if snapshot.index > self.state.last_index() {
                return Err(LogError::InvalidRequest(format!(
                    "compaction to {} is past the last entry {}",
                    snapshot.index,
                    self.state.last_index()
                )));
            }
            let term = self.state.term_at(snapshot.index);
            if term != Some(snapshot.term) {
                return Err(LogError::InvalidRequest(format!(
                    "compaction to {} at term {}, but the entry there has term {term:?}",
                    snapshot.index, snapshot.term
                )));
            }
            let record = Record::Compact(snapshot.clone());
            self.append_write(std::slice::from_ref(&record))?;
            self.apply(&record);
        }
        self.sync()?;

        let snapshot_index = self.state.snapshot_index();
        let mut deleted = 0;
        while let Some(oldest) = self.closed.front() {
            let obsolete = oldest.max_entry_index.is_none_or(|m| m <= snapshot_index)
                || self
                    .last_reset_sequence
                    .is_some_and(|reset| oldest.sequence < reset);
            if !obsolete {
                break;
            }
            let path = oldest.path.clone();
            if let Err(error) = self.fs.remove_file(&path) {
                return Err(self.poison(format!("removing {}", path.display()), error));
            }
            self.closed.pop_front();
            deleted += 1;
        }
        if deleted > 0
            && let Err(error) = self.fs.sync_dir(&self.dir)
        {
            return Err(self.poison(format!("syncing directory {}", self.dir.display()), error));
        }
        debug_assert!(self.state.snapshot_index() >= snapshot.index);
        self.check_invariants();
        Ok(())
    }

    /// The entries with indexes in `lo..hi`, which must lie after the
    /// snapshot point and at or below the last index.
    pub fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, LogError> {
        let first = self.first_index();
        let last = self.last_index();
        if lo > hi || lo < first || hi > last.saturating_add(1) {
            return Err(LogError::InvalidRequest(format!(
                "entries {lo}..{hi} are not in the log, which holds {first}..={last}"
            )));
        }
        let skip = usize::try_from(lo - first).unwrap_or(usize::MAX);
        let take = usize::try_from(hi - lo).unwrap_or(usize::MAX);
        let entries: Vec<Entry> = self
            .state
            .entries
            .range(skip..skip + take)
            .cloned()
            .collect();
        debug_assert!(
            entries.first().is_none_or(|e| e.index == lo)
                && entries.last().is_none_or(|e| e.index + 1 == hi),
            "entries {lo}..{hi} read from the wrong place"
        );
        Ok(entries)
    }

    /// The term of the entry at `index` (the snapshot point included), if
    /// the log holds it.
    pub fn term(&self, index: Index) -> Option<Term> {
        self.state.term_at(index)
    }

    /// The index of the first entry the log holds (the snapshot index + 1).
    pub fn first_index(&self) -> Index {
        self.state.snapshot_index() + 1
    }

    /// The index of the last entry, or the snapshot index if there is none.
    pub fn last_index(&self) -> Index {
        self.state.last_index()
    }

    /// The last hard state written.
    pub fn hard_state(&self) -> HardState {
        self.state.hard_state
    }

    /// The snapshot point the log starts after.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.state.snapshot.as_ref()
    }

    /// How many segment files the log has, the active one included.
    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_not_poisoned(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(reason) => Err(LogError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, context: String, error: raftwood_lsm::Error) -> LogError {
        self.poisoned = Some(format!("{context}: {error}"));
        LogError::io(context, error)
    }

    /// Frames `records` as one write, after the `Synced` record that starts
    /// every write (the last record carries the end-of-write flag), and
    /// appends them with one call.
    fn append_write(&mut self, records: &[Record]) -> Result<(), LogError> {
        debug_assert!(!records.is_empty());
        debug_assert!(self.poisoned.is_none(), "a poisoned store never writes");
        self.buffer.clear();
        let base = self.active_file.len();
        let synced = Record::Synced {
            durable_bytes: self.active_durable_bytes,
        };
        debug_assert!(self.active_durable_bytes <= base);
        let with_mark = std::iter::once(&synced).chain(records);
        for (i, record) in with_mark.enumerate() {
            encode_payload(record, &mut self.payload);
            let flags = if i == records.len() {
                FLAG_END_OF_WRITE
            } else {
                0
            };
            let offset = base + self.buffer.len() as u64;
            put_record(
                &mut self.buffer,
                offset,
                record.record_type(),
                flags,
                &self.payload,
            );
        }
        self.zero_ahead(base + self.buffer.len() as u64)?;
        if let Err(error) = self.active_file.append(&self.buffer) {
            return Err(self.poison(
                format!("appending to {}", self.active.path.display()),
                error,
            ));
        }
        // The offsets framed into the records assumed the write lands at
        // `base`, and the next write's at the end of this one.
        debug_assert_eq!(self.active_file.len(), base + self.buffer.len() as u64);
        Ok(())
    }

    /// Before a write that ends at byte `end` of the active segment: if it
    /// would run past the zeros, writes `zero_ahead_bytes` more past its end
    /// (see `LogOptions::zero_ahead_bytes`). They become durable with the
    /// write's sync, which is then the one sync in `zero_ahead_bytes` of
    /// log that commits a new file size.
    fn zero_ahead(&mut self, end: u64) -> Result<(), LogError> {
        debug_assert!(end > self.active_file.len(), "a write of no bytes");
        if end <= self.active_zeroed_to {
            return Ok(());
        }
        let target = zero_target(end, &self.options);
        if target <= end {
            return Ok(());
        }
        if let Err(error) = self.active_file.zero_extend(target) {
            return Err(self.poison(
                format!("zero-extending {}", self.active.path.display()),
                error,
            ));
        }
        self.active_zeroed_to = target;
        Ok(())
    }

    fn apply(&mut self, record: &Record) {
        match record {
            Record::SegmentHeader(_) => {}
            Record::Entries(entries) => {
                if let Some(last) = entries.last() {
                    self.active.note_entries(last.index);
                }
                let appended = self.state.append(entries);
                debug_assert!(appended.is_ok(), "checked by check_request: {appended:?}");
            }
            Record::HardState(hard_state) => self.state.hard_state = *hard_state,
            Record::InstallSnapshot(meta) => {
                self.state.install_snapshot(meta);
                self.last_reset_sequence = Some(self.active.sequence);
            }
            Record::Truncate { from_index } => self.state.truncate_from(*from_index),
            Record::Compact(meta) => self.state.compact(meta),
            Record::Synced { .. } => {}
        }
    }

    /// Closes the active segment and starts the next. The active segment is
    /// synced first, so a later segment never holds data whose predecessor
    /// could still be lost.
    fn roll(&mut self) -> Result<(), LogError> {
        if let Err(error) = self.active_file.sync_data() {
            return Err(self.poison(format!("syncing {}", self.active.path.display()), error));
        }
        self.active_durable_bytes = self.active_file.len();
        let created = create_segment(
            self.fs.as_ref(),
            &self.dir,
            self.active.sequence + 1,
            self.active_file.len(),
            &self.state,
            &self.options,
        );
        let (segment, file, zeroed_to) = match created {
            Ok(created) => created,
            Err(error) => {
                self.poisoned = Some(error.to_string());
                return Err(error);
            }
        };
        let previous = std::mem::replace(&mut self.active, segment);
        self.active_file = file;
        self.active_zeroed_to = zeroed_to;
        self.active_durable_bytes = self.active_file.len();
        self.closed.push_back(previous);
        self.check_invariants();
        Ok(())
    }

    fn check_invariants(&self) {
        debug_assert!(
            self.active_durable_bytes <= self.active_file.len(),
            "durable bytes never run ahead of the append position"
        );
        debug_assert!(
            self.closed
                .iter()
                .map(|s| s.sequence)
                .chain([self.active.sequence])
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[0] + 1 == w[1]),
            "segments are consecutive"
        );
        debug_assert!(
            self.state
                .entries
                .front()
                .is_none_or(|e| e.index == self.state.snapshot_index() + 1),
            "entries start right after the snapshot point"
        );
        // Appends are checked to follow the last entry, so first and last
        // spanning exactly the length means every index is in place.
        debug_assert!(
            match (self.state.entries.front(), self.state.entries.back()) {
                (Some(first), Some(last)) =>
                    last.index - first.index + 1 == self.state.entries.len() as u64,
                _ => true,
            },
            "entries are consecutive"
        );
        debug_assert!(
            self.state
                .entries
                .front()
                .is_none_or(|e| e.term >= self.state.snapshot.as_ref().map_or(0, |s| s.term)),
            "no entry has a term below the snapshot point's"
        );
        debug_assert!(
            self.last_reset_sequence
                .is_none_or(|reset| reset <= self.active.sequence),
            "the newest snapshot install is in a segment that exists"
        );
    }
}

/// Checks that `dir` is a raftwood log (or absent or empty, and then
/// creates it) and lists its segments, sorted by sequence number.
fn inspect_dir(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let exists = fs
        .exists(dir)
        .map_err(|e| LogError::io(format!("inspecting {}", dir.display()), e))?;
    if !exists {
        // Create the directory, and make its entry durable in every parent
        // that had to be created too.
        let mut first_existing = dir.parent();
        while let Some(parent) = first_existing {
            if parent.as_os_str().is_empty()
                || fs
                    .exists(parent)
                    .map_err(|e| LogError::io(format!("inspecting {}", parent.display()), e))?
            {
                break;
            }
            first_existing = parent.parent();
        }
        fs.create_dir_all(dir)
            .map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        let mut child = dir;
        while let Some(parent) = child.parent() {
            if parent.as_os_str().is_empty() {
                break;
            }
            sync_dir(fs, parent)?;
            if Some(parent) == first_existing {
                break;
            }
            child = parent;
        }
        return Ok(Vec::new());
    }
    let is_dir = fs
        .is_dir(dir)
        .map_err(|e| LogError::io(format!("inspecting {}", dir.display()), e))?;
    if !is_dir {
        return Err(LogError::NotALog {
            path: dir.to_path_buf(),
            detail: "it is not a directory".to_owned(),
        });
    }
    let names = fs
        .list_dir(dir)
        .map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for name in names {
        if name == LOCK_FILE_NAME {
            continue;
        }
        match parse_segment_file_name(&name) {
            Some(sequence) => segments.push((sequence, dir.join(&name))),
            None => {
                return Err(LogError::NotALog {
                    path: dir.to_path_buf(),
                    detail: format!("it holds {name}, which is not a log segment"),
                });
            }
        }
    }
    segments.sort();
    Ok(segments)
}

fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), LogError> {
    fs.sync_dir(dir)
        .map_err(|e| LogError::io(format!("syncing directory {}", dir.display()), e))
}

/// How far to zero the active segment for a write ending at `end`:
/// `zero_ahead_bytes` past it, but not past the segment size. At or below
/// `end` means "do not zero".
fn zero_target(end: u64, options: &LogOptions) -> u64 {
    end.saturating_add(options.zero_ahead_bytes)
        .min(options.segment_size_bytes)
}

/// Creates segment `sequence` holding only its header (and the first zeros
/// ahead of it), and makes both its content and its directory entry
/// durable before anything else is written to it. Returns the segment, its
/// file and the file's size.
fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    sequence: u64,
    previous_valid_bytes: u64,
    state: &LogState,
    options: &LogOptions,
) -> Result<(SegmentInfo, Box<dyn WritableFile>, u64), LogError> {
    let path = dir.join(segment_file_name(sequence));
    let mut file = fs
        .create_file(&path)
        .map_err(|e| LogError::io(format!("creating {}", path.display()), e))?;
    let header = Record::SegmentHeader(SegmentHeader {
        version: FORMAT_VERSION,
        sequence,
        previous_valid_bytes,
        hard_state: state.hard_state,
        snapshot: state.snapshot.clone(),
    });
    let mut payload = Vec::new();
    encode_payload(&header, &mut payload);
    let mut framed = Vec::new();
    put_record(
        &mut framed,
        0,
        header.record_type(),
        FLAG_END_OF_WRITE,
        &payload,
    );
    file.append(&framed)
        .map_err(|e| LogError::io(format!("appending to {}", path.display()), e))?;
    let zeroed_to = zero_target(file.len(), options).max(file.len());
    file.zero_extend(zeroed_to)
        .map_err(|e| LogError::io(format!("zero-extending {}", path.display()), e))?;
    file.sync_data()
        .map_err(|e| LogError::io(format!("syncing {}", path.display()), e))?;
    sync_dir(fs, dir)?;
    Ok((
        SegmentInfo {
            sequence,
            path,
            max_entry_index: None,
        },
        file,
        zeroed_to,
    ))
}
