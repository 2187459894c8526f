//! Background work: flushing frozen memtables to level 0, compacting
//! levels, deleting files no version references. One flush thread and one
//! compaction thread (or inline, when `Options::background_threads` is off).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{DbInner, State};
use crate::compaction::{self, CompactionConfig, CompactionTask};
use crate::error::{Error, Result};
use crate::filename::{self, FileKind};
use crate::memtable::MemTable;
use crate::sstable::TableWriter;
use crate::stats::Counters;
use crate::version::VersionEdit;

/// The kinds of background thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Job {
    Flush,
    Compaction,
}

impl DbInner {
    fn compaction_config(&self) -> CompactionConfig {
        CompactionConfig {
            level0_trigger_files: self.options.level0_compaction_trigger_files,
            level1_size_bytes: self.options.level1_size_bytes,
            level_size_multiplier: self.options.level_size_multiplier,
        }
    }

    /// Wakes the background threads (or does the work inline).
    pub(super) fn maybe_schedule_work(&self) {
        if self.options.background_threads {
            let _state = self.state.lock();
            self.work_available.notify_all();
        } else if let Err(error) = self.run_pending_work_inline() {
            tracing::warn!(%error, "inline background work failed");
        }
    }

    /// Wakes the compaction thread because reads made a compaction due
    /// (`ReadCost`). Without background threads this does nothing: the
    /// compaction is picked up by the next write's inline work instead of
    /// running inside a reader's call.
    pub(super) fn wake_compaction_for_reads(&self) {
        if self.options.background_threads {
            let _state = self.state.lock();
            self.work_available.notify_all();
        }
    }

    pub(super) fn background_loop(&self, job: Job) {
        let mut state = self.state.lock();
        loop {
            if state.shutting_down {
                return;
            }
            let worked = if state.background_error.is_some() {
                false
            } else {
                match job {
                    Job::Flush => self.flush_one(&mut state),
                    Job::Compaction => self.compact_one(&mut state),
                }
            };
            if !worked {
                self.work_available.wait(&mut state);
            }
        }
    }

    /// Flushes and compacts until nothing is due (inline mode).
    pub(super) fn run_pending_work_inline(&self) -> Result<()> {
        let mut state = self.state.lock();
        while self.flush_one(&mut state) {}
        while self.compact_one(&mut state) {}
        DbInner::check_poisoned(&state)
    }

    /// Flushes the oldest frozen memtable, if any. Returns whether it did work.
    fn flush_one(&self, state: &mut parking_lot::MutexGuard<'_, State>) -> bool {
        if state.flush_running || state.background_error.is_some() {
            return false;
        }
        let Some(mem) = state.imm.front().cloned() else {
            return false;
        };
        state.flush_running = true;
        let result = self.write_level0_table(state, &mem);
        state.flush_running = false;
        match result {
            Ok(()) => {
                Counters::add(&self.counters.flushes, 1);
                if let Err(e) = self.delete_obsolete_files(state) {
                    tracing::warn!(error = %e, "deleting obsolete files failed");
                }
            }
            Err(e) => self.poison(state, &e),
        }
        self.work_done.notify_all();
        self.work_available.notify_all();
        true
    }

    fn write_level0_table(
        &self,
        state: &mut parking_lot::MutexGuard<'_, State>,
        mem: &Arc<MemTable>,
    ) -> Result<()> {
        let mut outputs = Vec::new();
        let written = parking_lot::MutexGuard::unlocked(state, || -> Result<_> {
            let mut writer = TableWriter::new(
                Arc::clone(&self.fs),
                self.dir.clone(),
                self.options.table.for_level(0),
                u64::MAX,
                mem.range_tombstones(),
            );
            let mut allocate = || self.allocate_file_number();
            mem.for_each(|key, value| writer.add(key, value, &mut allocate))?;
            outputs = writer.finish(&mut allocate)?;
            Ok(())
        });
        let release_pending = |state: &mut State, outputs: &[crate::version::FileMetadata]| {
            for file in outputs {
                state.pending_outputs.remove(&file.number);
            }
        };
        if let Err(e) = written {
            release_pending(state, &outputs);
            return Err(e);
        }
        // A flush has no target size: one table, of the memtable's writes,
        // whose number is still held against deletion.
        debug_assert!(outputs.len() <= 1);
        debug_assert!(outputs.iter().all(|file| {
            state.pending_outputs.contains(&file.number)
                && file.largest_sequence_number <= mem.largest_sequence_number()
        }));
        // WALs older than the next memtable's hold nothing unflushed now.
        let next_wal = state
            .imm
            .get(1)
            .map(|m| m.wal_number())
            .unwrap_or_else(|| state.mem.wal_number());
        // The flushed memtable's WAL becomes obsolete.
        debug_assert!(!self.options.wal_enabled || next_wal > mem.wal_number());
        let mut edit = VersionEdit {
            log_number: Some(next_wal),
            last_sequence_number: Some(
                mem.largest_sequence_number()
                    .max(state.versions.last_sequence_number()),
            ),
            ..Default::default()
        };
        if mem.applied_index() > 0 {
            edit.applied_index = Some(mem.applied_index());
        }
        let mut bytes = 0;
        for file in &outputs {
            bytes += file.size_bytes;
            edit.added_files.push((0, Arc::new(file.clone())));
        }
        let applied = state.versions.log_and_apply(edit);
        release_pending(state, &outputs);
        applied?;
        Counters::add(&self.counters.flush_bytes_written, bytes);
        let flushed = state.imm.pop_front();
        debug_assert!(
            flushed.is_some_and(|m| Arc::ptr_eq(&m, mem)),
            "flushed out of order"
        );
        self.install_super_version(state);
        Ok(())
    }

    /// Allocates a file number and marks it as being written.
    fn allocate_file_number(&self) -> u64 {
        let mut state = self.state.lock();
        let number = state.versions.new_file_number();
        state.pending_outputs.insert(number);
        number
    }

    /// Runs one automatic compaction if one is due. Returns whether it did work.
    fn compact_one(&self, state: &mut parking_lot::MutexGuard<'_, State>) -> bool {
        if state.compaction_running
            || state.manual_compactions > 0
            || state.background_error.is_some()
        {
            return false;
        }
        let version = state.versions.current();
        let Some(task) = compaction::pick_compaction(
            &version,
            &self.compaction_config(),
            &state.compaction_cursors,
        ) else {
            return false;
        };
        // The task holds its inputs' metadata; keeping the whole version
        // alive would stop its files from being deleted after the task.
        drop(version);
        state.compaction_running = true;
        let result = self.run_task(state, &task);
        state.compaction_running = false;
        if let Err(e) = result {
            self.poison(state, &e);
        }
        self.work_done.notify_all();
        self.work_available.notify_all();
        true
    }

    /// Carries out `task` and installs its result. `compaction_running` (or
    /// a manual compaction) is held by the caller.
    fn run_task(
        &self,
        state: &mut parking_lot::MutexGuard<'_, State>,
        task: &CompactionTask,
    ) -> Result<()> {
        let snapshots = self.snapshots.sequence_numbers();
        let outcome = parking_lot::MutexGuard::unlocked(state, || {
            let mut allocate = || self.allocate_file_number();
            compaction::run_compaction(
                task,
                &self.tables,
                &self.dir,
                &self.fs,
                &self.options,
                &snapshots,
                &mut allocate,
            )
        });
        let outcome = outcome?;
        // The inputs are still live: only this task (compaction_running,
        // or a manual compaction that paused the others) removes them.
        debug_assert!(outcome.edit.deleted_files.iter().all(|&(level, number)| {
            state
                .versions
                .current()
                .files(level)
                .iter()
                .any(|file| file.number == number)
        }));
        let new_files: Vec<u64> = outcome
            .edit
            .added_files
            .iter()
            .map(|(_, f)| f.number)
            .collect();
        let applied = state.versions.log_and_apply(outcome.edit);
        for number in &new_files {
            state.pending_outputs.remove(number);
        }
        applied?;
        if let Some(cursor) = state.compaction_cursors.get_mut(task.input_level) {
            *cursor = outcome.cursor;
        }
        Counters::add(&self.counters.compactions, 1);
        if task.is_trivial_move() {
            Counters::add(&self.counters.trivial_moves, 1);
        }
        Counters::add(&self.counters.compaction_bytes_read, outcome.bytes_read);
        Counters::add(
            &self.counters.compaction_bytes_written,
            outcome.bytes_written,
        );
        self.install_super_version(state);
        if let Err(e) = self.delete_obsolete_files(state) {
            tracing::warn!(error = %e, "deleting obsolete files failed");
        }
        Ok(())
    }

    /// Freezes the active memtable and waits until every frozen memtable is
    /// in a table.
    pub(super) fn flush(&self) -> Result<()> {
        let has_data = {
            let state = self.state.lock();
            DbInner::check_poisoned(&state)?;
            !state.mem.is_empty() || state.mem.applied_index() > 0
        };
        if has_data {
            self.request_memtable_switch()?;
        }
        if !self.options.background_threads {
            let mut state = self.state.lock();
            while self.flush_one(&mut state) {}
            return DbInner::check_poisoned(&state);
        }
        let mut state = self.state.lock();
        self.work_available.notify_all();
        while !state.imm.is_empty() {
            DbInner::check_poisoned(&state)?;
            if state.shutting_down {
                return Err(Error::Closed);
            }
            self.work_done.wait(&mut state);
        }
        DbInner::check_poisoned(&state)
    }

    /// Manual compaction of `[start, end]` down to the deepest non-empty level.
    pub(super) fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        self.flush()?;
        let mut state = self.state.lock();
        state.manual_compactions += 1;
        while state.compaction_running {
            self.work_done.wait(&mut state);
        }
        let result = (|| {
            let version = state.versions.current();
            let last = version.num_levels() - 1;
            let deepest = (0..=last)
                .rev()
                .find(|&l| !version.files(l).is_empty())
                .unwrap_or(0);
            drop(version);
            let target = deepest.max(1);
            for level in 0..=target {
                DbInner::check_poisoned(&state)?;
                let version = state.versions.current();
                let output_level = if level == target { target } else { level + 1 };
                // The target level is rewritten in place only to drop what
                // the deeper pass would have dropped; skip if it is empty.
                let task = compaction::pick_range(&version, level, start, end, output_level);
                drop(version);
                if let Some(task) = task {
                    self.run_task(&mut state, &task)?;
                }
            }
            Ok(())
        })();
        debug_assert!(state.manual_compactions > 0);
        state.manual_compactions -= 1;
        if result.is_ok()
            && let Err(e) = self.delete_obsolete_files(&mut state)
        {
            tracing::warn!(error = %e, "deleting obsolete files failed");
        }
        if let Err(e) = &result
            && !matches!(e, Error::InvalidArgument(_))
        {
            self.poison(&mut state, e);
        }
        self.work_available.notify_all();
        self.work_done.notify_all();
        result
    }

    /// Deletes files that no live version, pending output or WAL needs.
    pub(super) fn delete_obsolete_files(&self, state: &mut State) -> Result<()> {
        if state.file_deletion_holds > 0 {
            return Ok(());
        }
        let mut live = BTreeSet::new();
        state.live_versions.retain(|v| v.strong_count() > 0);
        for version in state.live_versions.iter().filter_map(|v| v.upgrade()) {
            version.live_file_numbers(&mut live);
        }
        state.versions.current().live_file_numbers(&mut live);
        state.versions.previous().live_file_numbers(&mut live);
        let log_number = state.versions.oldest_needed_log_number();
        // The active WAL is never deleted (see the match below).
        debug_assert!(!self.options.wal_enabled || state.mem.wal_number() >= log_number);
        let manifest_number = state.versions.manifest_number();
        for name in self.fs.list_dir(&self.dir)? {
            let obsolete = match filename::parse_file_name(&name) {
                Some(FileKind::Table(n)) => {
                    !live.contains(&n) && !state.pending_outputs.contains(&n)
                }
                // The active WAL is never below log_number: it belongs to the
                // newest memtable, and log_number to the oldest unflushed one
                // (or, for one more edit, the one before it).
                Some(FileKind::Wal(n)) => n < log_number,
                Some(FileKind::Manifest(n)) => n != manifest_number,
                Some(FileKind::Temp) => true,
                Some(FileKind::Current | FileKind::Lock) | None => false,
            };
            if obsolete {
                if let Some(FileKind::Table(n)) = filename::parse_file_name(&name) {
                    self.tables.evict(n);
                }
                self.fs.remove_file(&self.dir.join(&name))?;
            }
        }
        Ok(())
    }
}
