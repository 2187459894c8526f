//! Opening a database: validate the directory without touching it, lock it,
//! rebuild the version set from the manifest, replay WALs into a memtable
//! and flush it, start a fresh WAL, delete what is obsolete.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};

use super::write::{WriteQueue, apply_to_memtable};
use super::{DbInner, State, SuperVersion, WalState};
use crate::batch::WriteBatch;
use crate::cache::BlockCache;
use crate::cache::TableCache;
use crate::error::{Error, Result};
use crate::filename::{self, FileKind};
use crate::fs::FileSystem;
use crate::log::{LogReader, LogWriter};
use crate::memtable::{ChunkPool, MemTable};
use crate::options::{Options, WalRecovery};
use crate::snapshot::SnapshotList;
use crate::sstable::TableWriter;
use crate::stats::Counters;
use crate::version::{MAX_LEVELS, VersionEdit, VersionSet, read_current};

fn validate_options(options: &Options) -> Result<()> {
    let invalid = |what: &str| Err(Error::InvalidArgument(what.to_string()));
    if !(2..=MAX_LEVELS).contains(&options.num_levels) {
        return invalid("num_levels must be between 2 and 16");
    }
    if options.memtable_size_bytes == 0 || options.target_file_size_bytes == 0 {
        return invalid("memtable_size_bytes and target_file_size_bytes must be positive");
    }
    if options.max_key_size_bytes == 0 || options.max_key_size_bytes > u32::MAX as usize / 2 {
        return invalid("max_key_size_bytes must be between 1 and 2 GiB");
    }
    if options.max_value_size_bytes > u32::MAX as usize / 2 {
        return invalid("max_value_size_bytes must be at most 2 GiB");
    }
    if options.table.block_restart_interval == 0 || options.table.block_size_bytes == 0 {
        return invalid("block_size_bytes and block_restart_interval must be positive");
    }
    // Writes may stop only where compaction is already due, or a stalled
    // writer would wait forever for a compaction that is never picked.
    if !(options.level0_compaction_trigger_files <= options.level0_slowdown_writes_files
        && options.level0_slowdown_writes_files <= options.level0_stop_writes_files)
    {
        return invalid(
            "need level0_compaction_trigger_files <= level0_slowdown_writes_files <= level0_stop_writes_files",
        );
    }
    Ok(())
}

/// Decides, without writing anything, whether `dir` holds a database,
/// nothing, or something else.
fn inspect_directory(options: &Options, dir: &Path) -> Result<bool> {
    let fs = options.fs.as_ref();
    if fs.exists(dir)? && !fs.is_dir(dir)? {
        return Err(Error::NotADatabase {
            path: dir.to_path_buf(),
            detail: "it is a file, not a directory".into(),
        });
    }
    let has_current = fs.is_dir(dir)? && fs.exists(&filename::current_path(dir))?;
    if has_current {
        if options.error_if_exists {
            return Err(Error::InvalidArgument(format!(
                "a database already exists at {} and error_if_exists is set",
                dir.display()
            )));
        }
        let manifest = read_current(fs, dir)?;
        if !fs.exists(&filename::manifest_path(dir, manifest))? {
            return Err(Error::corruption(
                filename::current_path(dir).display().to_string(),
                format!(
                    "names {} which does not exist",
                    filename::manifest_name(manifest)
                ),
            ));
        }
        return Ok(true);
    }
    if fs.is_dir(dir)? {
        // Tables or WALs without CURRENT are a database that lost its
        // CURRENT file, never a half-created one (creation writes CURRENT
        // before any WAL or table): creating anew would destroy it.
        let orphans: Vec<String> = fs
            .list_dir(dir)?
            .into_iter()
            .filter(|name| {
                matches!(
                    filename::parse_file_name(name),
                    Some(FileKind::Table(_) | FileKind::Wal(_))
                )
            })
            .collect();
        if !orphans.is_empty() {
            return Err(Error::corruption(
                filename::current_path(dir).display().to_string(),
                format!(
                    "CURRENT is missing but the directory holds database files ({}); refusing to create a new database over them",
                    orphans.join(", ")
                ),
            ));
        }
        let foreign: Vec<String> = fs
            .list_dir(dir)?
            .into_iter()
            .filter(|name| filename::parse_file_name(name).is_none())
            .collect();
        if !foreign.is_empty() {
            return Err(Error::NotADatabase {
                path: dir.to_path_buf(),
                detail: format!(
                    "no CURRENT file, and it holds other files ({})",
                    foreign.join(", ")
                ),
            });
        }
    }
    if !options.create_if_missing {
        return Err(Error::NotADatabase {
            path: dir.to_path_buf(),
            detail: "no CURRENT file and create_if_missing is false".into(),
        });
    }
    Ok(false)
}

pub(super) fn open(dir: &Path, options: Options) -> Result<DbInner> {
    validate_options(&options)?;
    let fs = Arc::clone(&options.fs);
    let exists = inspect_directory(&options, dir)?;
    if !exists {
        // Every directory this creates must have its entry made durable in
        // its parent, or a crash could drop the whole database.
        let mut created = Vec::new();
        let mut cursor = Some(dir);
        while let Some(path) = cursor.filter(|p| !p.as_os_str().is_empty()) {
            if fs.exists(path)? {
                break;
            }
            created.push(path.to_path_buf());
            cursor = path.parent();
        }
        fs.create_dir_all(dir)?;
        for path in created.iter().rev() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs.sync_dir(parent)?;
            }
        }
    }
    let lock = fs.lock_file(&filename::lock_path(dir))?;
    let mut versions = if exists {
        VersionSet::recover(Arc::clone(&fs), dir, options.num_levels)?
    } else {
        VersionSet::create(Arc::clone(&fs), dir, options.num_levels)?
    };

    let version = versions.current();
    for level in 0..version.num_levels() {
        for file in version.files(level) {
            if !fs.exists(&filename::table_path(dir, file.number))? {
                return Err(Error::corruption(
                    dir.display().to_string(),
                    format!("live table {} is missing", file.number),
                ));
            }
        }
    }

    let block_cache = Arc::new(BlockCache::new(options.block_cache_size_bytes));
    let tables = Arc::new(TableCache::new(
        Arc::clone(&fs),
        dir.to_path_buf(),
        block_cache,
        options.max_open_tables,
    ));

    // No number of a file on disk is handed out again. A WAL started by a
    // memtable switch after the manifest's last edit has a number the
    // manifest's counter does not cover; allocating it again for the new WAL
    // below would truncate that WAL while its records sit unflushed in the
    // recovered memtable, and a crash before this recovery's edit lost them.
    let names = fs.list_dir(dir)?;
    for name in &names {
        if let Some(FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n)) =
            filename::parse_file_name(name)
        {
            versions.mark_file_number_used(n);
        }
    }
    // Replay every WAL not yet covered by a table, oldest first.
    let mut wal_numbers: Vec<u64> = names
        .iter()
        .filter_map(|name| match filename::parse_file_name(name) {
            Some(FileKind::Wal(n)) if n >= versions.log_number() => Some(n),
            _ => None,
        })
        .collect();
    wal_numbers.sort_unstable();
    // The WALs are replayed into a memtable that is written to a level-0
    // table whenever it is full, as the write path would have frozen it:
    // several WALs' worth (up to `max_immutable_memtables + 1` memtables)
    // must not have to fit in one.
    // One memtable's worth of arena chunks is recycled from a flushed
    // memtable to the next one, from recovery on.
    let memtable_chunks = Arc::new(ChunkPool::new(options.memtable_size_bytes));
    let recovered_memtable = || MemTable::with_chunk_pool(0, Some(Arc::clone(&memtable_chunks)));
    let mut edit = VersionEdit::default();
    let mut recovered = recovered_memtable();
    let mut last_sequence_number = versions.last_sequence_number();
    for (i, &number) in wal_numbers.iter().enumerate() {
        let path = filename::wal_path(dir, number);
        let bytes = fs.read_file(&path)?;
        let mut reader =
            LogReader::new(bytes, options.wal_recovery).with_file_name(path.display().to_string());
        while let Some(record) = reader.next_record()? {
            let (batch, first_sequence_number) = WriteBatch::decode(record)?;
            if recovered.is_full(options.memtable_size_bytes) {
                write_recovered_memtable(&fs, dir, &options, &mut versions, &recovered, &mut edit)?;
                // Dropped before its successor fills, so its chunks go
                // back to the pool first.
                recovered = recovered_memtable();
            }
            apply_to_memtable(&recovered, &batch, first_sequence_number)?;
            if !batch.is_empty() {
                last_sequence_number =
                    last_sequence_number.max(first_sequence_number + batch.len() as u64 - 1);
            }
            // Writes resume after every replayed sequence number.
            debug_assert!(recovered.largest_sequence_number() <= last_sequence_number);
        }
        let is_last = i + 1 == wal_numbers.len();
        if reader.dropped_tail_bytes() > 0 {
            tracing::warn!(wal = %path.display(), dropped_bytes = reader.dropped_tail_bytes(), "WAL ends in a torn or damaged tail");
            if !is_last {
                match options.wal_recovery {
                    // Older WALs were synced before the next one was
                    // created, so damage there is not a crash artefact.
                    WalRecovery::TolerateTornTail => {
                        return Err(Error::corruption(
                            path.display().to_string(),
                            "an older WAL ends early, yet newer WALs exist",
                        ));
                    }
                    // Point in time: nothing after the damage may apply.
                    WalRecovery::PointInTime => break,
                }
            }
        }
    }

    let wal = if options.wal_enabled {
        let number = versions.new_file_number();
        assert!(
            wal_numbers.last().is_none_or(|&replayed| replayed < number),
            "the new WAL {number} would replace a replayed one ({wal_numbers:?})"
        );
        let file = fs.create_file(&filename::wal_path(dir, number))?;
        fs.sync_dir(dir)?;
        edit.log_number = Some(number);
        WalState {
            writer: Some(LogWriter::new(file)),
            number,
            records: Vec::new(),
            record_ends: Vec::new(),
        }
    } else {
        edit.log_number = Some(versions.new_file_number());
        WalState {
            writer: None,
            number: 0,
            records: Vec::new(),
            record_ends: Vec::new(),
        }
    };
    write_recovered_memtable(&fs, dir, &options, &mut versions, &recovered, &mut edit)?;
    drop(recovered);
    edit.last_sequence_number = Some(last_sequence_number);
    versions.log_and_apply(edit)?;
    // Every replayed WAL is in a table now, and goes with the obsolete
    // files below.
    debug_assert!(
        wal_numbers
            .iter()
            .all(|&number| number < versions.log_number())
    );

    let mem = Arc::new(MemTable::with_chunk_pool(
        wal.number,
        Some(Arc::clone(&memtable_chunks)),
    ));
    let version = versions.current();
    let num_levels = versions.num_levels();
    let state = State {
        versions,
        mem: Arc::clone(&mem),
        imm: VecDeque::new(),
        live_versions: vec![Arc::downgrade(&version)],
        pending_outputs: BTreeSet::new(),
        compaction_cursors: vec![Vec::new(); num_levels],
        flush_running: false,
        compaction_running: false,
        manual_compactions: 0,
        file_deletion_holds: 0,
        background_error: None,
        shutting_down: false,
    };
    let inner = DbInner {
        dir: dir.to_path_buf(),
        fs,
        lock: Mutex::new(Some(lock)),
        super_version: ArcSwap::from_pointee(SuperVersion {
            mem,
            imm: Vec::new(),
            version,
        }),
        state: Mutex::new(state),
        work_available: Condvar::new(),
        work_done: Condvar::new(),
        wal: Mutex::new(wal),
        write_queue: Mutex::new(WriteQueue::default()),
        write_turn: Condvar::new(),
        visible_sequence_number: AtomicU64::new(last_sequence_number),
        allocated_sequence_number: AtomicU64::new(last_sequence_number),
        snapshots: Arc::new(SnapshotList::default()),
        tables,
        counters: Counters::default(),
        closed: AtomicBool::new(false),
        poisoned: AtomicBool::new(false),
        memtable_chunks,
        options,
    };
    {
        let mut state = inner.state.lock();
        inner.delete_obsolete_files(&mut state)?;
    }
    Ok(inner)
}

/// Writes a memtable replayed from the WALs to level-0 tables and records
/// them (and its applied-index marker) in `edit`, which recovery logs once
/// at the end. Memtables are written oldest first, so their tables' file
/// numbers ascend with their data's age, as level 0 expects.
fn write_recovered_memtable(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    options: &Options,
    versions: &mut VersionSet,
    recovered: &MemTable,
    edit: &mut VersionEdit,
) -> Result<()> {
    if recovered.is_empty() {
        return Ok(());
    }
    let mut writer = TableWriter::new(
        Arc::clone(fs),
        dir.to_path_buf(),
        options.table.for_level(0),
        u64::MAX,
        recovered.range_tombstones(),
    );
    let mut allocate = || versions.new_file_number();
    recovered.for_each(|key, value| writer.add(key, value, &mut allocate))?;
    let files = writer.finish(&mut allocate)?;
    // No target size: one memtable, one table.
    debug_assert!(files.len() <= 1);
    for file in files {
        edit.added_files.push((0, Arc::new(file)));
    }
    if recovered.applied_index() > 0 {
        edit.applied_index = Some(
            recovered
                .applied_index()
                .max(edit.applied_index.unwrap_or(0)),
        );
    }
    Ok(())
}
