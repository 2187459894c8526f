//! [`VersionSet`]: the current [`Version`] plus the counters that must
//! survive a restart (next file number, last sequence number, live WAL,
//! applied index), all persisted through the manifest.
//!
//! Durability order (see docs/manifest-format.md, "Crash analysis"):
//! a new table file and its directory entry are synced by the caller before
//! `log_and_apply` appends the edit naming it; the edit is synced before the
//! new version is installed; a new manifest is complete and synced before
//! `CURRENT` is switched to it by an atomic rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{MANIFEST_FORMAT_VERSION, Version, VersionEdit};
use crate::error::{Error, Result};
use crate::filename;
use crate::fs::FileSystem;
use crate::log::{LogReader, LogWriter};
use crate::options::WalRecovery;

/// Once the manifest grows past this, the next edit starts a fresh one.
const MANIFEST_ROLL_BYTES: u64 = 64 << 20;

/// The version set. Not internally synchronised: the Db serialises edits.
#[derive(Debug)]
pub struct VersionSet {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    num_levels: usize,
    current: Arc<Version>,
    /// The version before the last edit, and its log number. Their files
    /// and WALs are kept on disk: if the manifest's last record is lost
    /// (torn by a crash, or damaged later), recovery falls back to this
    /// version and must find everything it names.
    previous: Arc<Version>,
    previous_log_number: u64,
    manifest: Option<LogWriter>,
    manifest_number: u64,
    /// Invariant: greater than every file number in use.
    next_file_number: u64,
    /// Largest sequence number made durable in a table (or the WAL).
    last_sequence_number: u64,
    /// WALs below this number hold nothing that is not in a table.
    log_number: u64,
    /// The caller's applied-index marker, as of the last durable edit.
    applied_index: u64,
}

/// Reads `CURRENT` and returns the manifest number it names.
pub fn read_current(fs: &dyn FileSystem, dir: &Path) -> Result<u64> {
    let bytes = fs.read_file(&filename::current_path(dir))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::NotADatabase {
        path: dir.to_path_buf(),
        detail: "CURRENT is not UTF-8".into(),
    })?;
    let name = text.strip_suffix('\n').ok_or_else(|| Error::NotADatabase {
        path: dir.to_path_buf(),
        detail: "CURRENT does not end in a newline".into(),
    })?;
    match filename::parse_file_name(name) {
        Some(filename::FileKind::Manifest(number)) => Ok(number),
        _ => Err(Error::NotADatabase {
            path: dir.to_path_buf(),
            detail: format!("CURRENT names {name:?}, not a manifest"),
        }),
    }
}

/// Points `CURRENT` at manifest `number`: write a temp file, sync it, rename
/// it over `CURRENT`, sync the directory.
pub fn write_current(fs: &dyn FileSystem, dir: &Path, number: u64) -> Result<()> {
    let temp = filename::current_temp_path(dir);
    let mut file = fs.create_file(&temp)?;
    file.append(format!("{}\n", filename::manifest_name(number)).as_bytes())?;
    file.sync_data()?;
    drop(file);
    fs.rename(&temp, &filename::current_path(dir))?;
    fs.sync_dir(dir)
}

impl VersionSet {
    /// A brand-new database: an empty version, and a first manifest.
    pub fn create(fs: Arc<dyn FileSystem>, dir: &Path, num_levels: usize) -> Result<VersionSet> {
        let empty = Arc::new(Version::empty(num_levels));
        let mut set = VersionSet {
            fs,
            dir: dir.to_path_buf(),
            num_levels,
            previous: Arc::clone(&empty),
            previous_log_number: 0,
            current: empty,
            manifest: None,
            manifest_number: 0,
            next_file_number: 1,
            last_sequence_number: 0,
            log_number: 0,
            applied_index: 0,
        };
        set.roll_manifest()?;
        set.check_invariants();
        Ok(set)
    }

    /// Rebuilds the version set from `CURRENT` and the manifest it names,
    /// then starts a fresh manifest holding one snapshot edit.
    pub fn recover(fs: Arc<dyn FileSystem>, dir: &Path, num_levels: usize) -> Result<VersionSet> {
        let manifest_number = read_current(fs.as_ref(), dir)?;
        let manifest_path = filename::manifest_path(dir, manifest_number);
        let bytes = fs.read_file(&manifest_path)?;
        // A torn last record is an edit whose flush or compaction never
        // completed (its caller never saw success), so dropping it is right.
        let mut reader = LogReader::new(bytes, WalRecovery::TolerateTornTail);
        let mut version = Version::empty(num_levels);
        let mut next_file_number = None;
        let mut last_sequence_number = 0;
        let mut log_number = 0;
        let mut applied_index = 0;
        let mut first = true;
        while let Some(record) = reader.next_record()? {
            let edit = VersionEdit::decode(record)?;
            if first {
                match edit.format_version {
                    Some(v) if v > MANIFEST_FORMAT_VERSION => {
                        return Err(Error::UnsupportedFormatVersion {
                            what: "manifest",
                            found: v,
                            supported: MANIFEST_FORMAT_VERSION,
                        });
                    }
                    Some(_) => {}
                    None => {
                        return Err(Error::corruption(
                            manifest_path.display().to_string(),
                            "first edit carries no format version",
                        ));
                    }
                }
                first = false;
            }
            if edit
                .added_files
                .iter()
                .any(|(level, _)| *level >= num_levels)
            {
                return Err(Error::InvalidArgument(format!(
                    "the database uses more levels than Options::num_levels = {num_levels}"
                )));
            }
            version = version.apply(&edit)?;
            next_file_number = edit.next_file_number.or(next_file_number);
            last_sequence_number = edit.last_sequence_number.unwrap_or(last_sequence_number);
            log_number = edit.log_number.unwrap_or(log_number);
            applied_index = edit.applied_index.unwrap_or(applied_index);
        }
        if first {
            return Err(Error::corruption(
                manifest_path.display().to_string(),
                "manifest holds no edit",
            ));
        }
        let next_file_number = next_file_number.ok_or_else(|| {
            Error::corruption(
                manifest_path.display().to_string(),
                "manifest never records the next file number",
            )
        })?;
        // The counters cover every live file, whatever the manifest says:
        // a number is never handed out twice, and a new write never gets a
        // sequence number a table already holds.
        let mut next_file_number = next_file_number.max(manifest_number.saturating_add(1));
        for level in 0..version.num_levels() {
            for file in version.files(level) {
                next_file_number = next_file_number.max(file.number.saturating_add(1));
                last_sequence_number = last_sequence_number.max(file.largest_sequence_number);
            }
        }
        let current = Arc::new(version);
        // Nothing is written here: a failed open must leave the directory
        // as it found it. The first `log_and_apply` starts a new manifest.
        let set = VersionSet {
            fs,
            dir: dir.to_path_buf(),
            num_levels,
            previous: Arc::clone(&current),
            previous_log_number: log_number,
            current,
            manifest: None,
            manifest_number,
            next_file_number,
            last_sequence_number,
            log_number,
            applied_index,
        };
        set.check_invariants();
        Ok(set)
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current)
    }

    /// Allocates a file number.
    pub fn new_file_number(&mut self) -> u64 {
        let number = self.next_file_number;
        self.next_file_number += 1;
        number
    }

    /// Makes sure `number`, the number of a file found on disk, is never
    /// allocated again. Recovery calls it for every numbered file: files
    /// started after the manifest's last edit (a WAL begun by a memtable
    /// switch, a compaction's outputs) carry numbers its counter does not
    /// cover.
    pub fn mark_file_number_used(&mut self, number: u64) {
        self.next_file_number = self.next_file_number.max(number.saturating_add(1));
    }

    /// The manifest file in use.
    pub fn manifest_number(&self) -> u64 {
        self.manifest_number
    }

    /// WALs below this number are obsolete.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Last sequence number recorded in the manifest.
    pub fn last_sequence_number(&self) -> u64 {
        self.last_sequence_number
    }

    /// The durable applied-index marker.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.num_levels
    }

    fn snapshot_edit(&self) -> VersionEdit {
        let mut edit = VersionEdit {
            format_version: Some(MANIFEST_FORMAT_VERSION),
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            last_sequence_number: Some(self.last_sequence_number),
            applied_index: Some(self.applied_index),
            ..Default::default()
        };
        for level in 0..self.current.num_levels() {
            for file in self.current.files(level) {
                edit.added_files.push((level, Arc::clone(file)));
            }
        }
        edit
    }

    /// Starts a new manifest holding the whole current state, then points
    /// `CURRENT` at it. The old manifest is left for obsolete-file cleanup.
    fn roll_manifest(&mut self) -> Result<()> {
        let number = self.new_file_number();
        let path = filename::manifest_path(&self.dir, number);
        let mut writer = LogWriter::new(self.fs.create_file(&path)?);
        let mut encoded = Vec::new();
        self.snapshot_edit().encode(&mut encoded);
        writer.add_record(&encoded)?;
        writer.sync()?;
        self.fs.sync_dir(&self.dir)?;
        write_current(self.fs.as_ref(), &self.dir, number)?;
        self.manifest = Some(writer);
        self.manifest_number = number;
        Ok(())
    }

    /// Makes `edit` durable in the manifest, then installs the version it
    /// produces. On error nothing is installed, and the caller must stop
    /// writing (the manifest's tail is unknown).
    pub fn log_and_apply(&mut self, mut edit: VersionEdit) -> Result<Arc<Version>> {
        let before = Arc::clone(&self.current);
        let next = Arc::new(before.apply(&edit)?);
        if let Some(seq) = edit.last_sequence_number {
            debug_assert!(seq >= self.last_sequence_number, "sequence numbers go back");
        }
        edit.next_file_number = Some(self.next_file_number);
        let needs_roll = self
            .manifest
            .as_ref()
            .is_none_or(|m| m.len_bytes() >= MANIFEST_ROLL_BYTES);
        // Commit the counters first: a roll writes them in its snapshot edit.
        let previous = (
            self.log_number,
            self.last_sequence_number,
            self.applied_index,
        );
        self.log_number = edit.log_number.unwrap_or(self.log_number);
        self.last_sequence_number = edit
            .last_sequence_number
            .unwrap_or(self.last_sequence_number);
        self.applied_index = edit
            .applied_index
            .unwrap_or(self.applied_index)
            .max(self.applied_index);
        let result = if needs_roll {
            // The snapshot edit of the new manifest is written from `current`.
            self.current = Arc::clone(&next);
            let rolled = self.roll_manifest();
            if rolled.is_err() {
                self.current = Arc::clone(&before);
            }
            rolled
        } else {
            let mut encoded = Vec::new();
            edit.encode(&mut encoded);
            match self.manifest.as_mut() {
                Some(writer) => writer.add_record(&encoded).and_then(|()| writer.sync()),
                None => Err(Error::Poisoned("manifest writer is gone".into())),
            }
        };
        if let Err(e) = result {
            (
                self.log_number,
                self.last_sequence_number,
                self.applied_index,
            ) = previous;
            // The manifest's tail is unknown: never append to it again.
            self.manifest = None;
            return Err(e);
        }
        self.current = next;
        self.previous = before;
        self.previous_log_number = previous.0;
        self.check_invariants();
        Ok(self.current())
    }

    /// Asserts what the counters promise about the versions: no live file
    /// (current or previous) and no manifest has a number still to be
    /// allocated, and no live table holds a sequence number above the
    /// last one.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.current.check_invariants();
        debug_assert!(self.manifest_number < self.next_file_number);
        for version in [&self.current, &self.previous] {
            for level in 0..version.num_levels() {
                for file in version.files(level) {
                    debug_assert!(
                        file.number < self.next_file_number,
                        "live file {} is not below the next file number {}",
                        file.number,
                        self.next_file_number
                    );
                }
            }
        }
        for level in 0..self.current.num_levels() {
            for file in self.current.files(level) {
                debug_assert!(
                    file.largest_sequence_number <= self.last_sequence_number,
                    "file {} holds sequence number {}, past the last one {}",
                    file.number,
                    file.largest_sequence_number,
                    self.last_sequence_number
                );
            }
        }
    }

    /// The version before the last edit (see the field's comment).
    pub fn previous(&self) -> Arc<Version> {
        Arc::clone(&self.previous)
    }

    /// WALs at or above this number may still be needed: the smaller of
    /// the current and the previous log number.
    pub fn oldest_needed_log_number(&self) -> u64 {
        self.log_number.min(self.previous_log_number)
    }
}
