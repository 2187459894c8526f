//! Checkpoints: a consistent, openable copy of the database made of hard
//! links to the (immutable) tables plus a fresh manifest. Because tables
//! never change once written, a link is as good as a copy and costs no I/O.

use std::path::Path;
use std::sync::Arc;

use super::DbInner;
use crate::error::{Error, Result};
use crate::filename;
use crate::log::LogWriter;
use crate::version::{MANIFEST_FORMAT_VERSION, VersionEdit, write_current};

impl DbInner {
    /// Writes the checkpoint and returns the applied-index marker it
    /// holds. `flush_first`: flush the memtables first, so the checkpoint
    /// holds everything written; otherwise it holds what the tables hold,
    /// the state as of the last flush.
    pub(super) fn checkpoint(&self, target: &Path, flush_first: bool) -> Result<u64> {
        if self.fs.exists(target)? {
            return Err(Error::InvalidArgument(format!(
                "checkpoint target {} already exists",
                target.display()
            )));
        }
        // Everything acknowledged so far goes into tables first, so the
        // checkpoint needs no WAL; or the checkpoint is of the tables as
        // they are, which hold exactly the writes up to the last flush (a
        // memtable is flushed whole, in order).
        if flush_first {
            self.flush()?;
        }
        let (version, last_sequence_number, applied_index, next_file_number) = {
            let mut state = self.state.lock();
            DbInner::check_poisoned(&state)?;
            state.file_deletion_holds += 1;
            let next = state.versions.new_file_number();
            (
                state.versions.current(),
                state.versions.last_sequence_number(),
                state.versions.applied_index(),
                next,
            )
        };
        // The checkpoint's manifest takes a fresh number: no table it links
        // may carry it.
        debug_assert!(
            (0..version.num_levels())
                .flat_map(|level| version.files(level))
                .all(|file| file.number < next_file_number)
        );
        let result = (|| {
            self.fs.create_dir_all(target)?;
            let mut edit = VersionEdit {
                format_version: Some(MANIFEST_FORMAT_VERSION),
                log_number: Some(next_file_number),
                next_file_number: Some(next_file_number + 1),
                last_sequence_number: Some(last_sequence_number),
                applied_index: Some(applied_index),
                ..Default::default()
            };
            for level in 0..version.num_levels() {
                for file in version.files(level) {
                    self.fs.hard_link(
                        &filename::table_path(&self.dir, file.number),
                        &filename::table_path(target, file.number),
                    )?;
                    edit.added_files.push((level, Arc::clone(file)));
                }
            }
            let manifest_number = next_file_number;
            let mut manifest = LogWriter::new(
                self.fs
                    .create_file(&filename::manifest_path(target, manifest_number))?,
            );
            let mut encoded = Vec::new();
            edit.encode(&mut encoded);
            manifest.add_record(&encoded)?;
            manifest.sync()?;
            self.fs.sync_dir(target)?;
            write_current(self.fs.as_ref(), target, manifest_number)?;
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.fs.sync_dir(parent)?;
            }
            Ok(applied_index)
        })();
        let mut state = self.state.lock();
        debug_assert!(state.file_deletion_holds > 0);
        state.file_deletion_holds -= 1;
        result
    }
}
