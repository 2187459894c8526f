//! The write path: validation, group commit, memtable switching and
//! backpressure.
//!
//! Group commit: writers queue up; the writer at the front becomes the
//! leader, takes the whole queue (up to a byte limit), appends one WAL
//! record per batch in a single `append`, fsyncs once if any member asked
//! for `sync`, inserts into the memtable, publishes the new sequence
//! number, and wakes the group. Nothing is visible to reads, and nobody is
//! acknowledged, before the WAL append (and fsync, when asked) succeeded.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;

use super::{DbInner, State};
use crate::batch::{BatchOp, WriteBatch};
use crate::error::{Error, Result};
use crate::filename;
use crate::key::{MAX_SEQUENCE_NUMBER, ValueKind};
use crate::log::LogWriter;
use crate::memtable::MemTable;
use crate::options::WriteOptions;
use crate::stats::Counters;

/// A group never grows past this many bytes of batches (a 1 MiB group
/// already amortises the fsync; larger ones only add latency).
const MAX_GROUP_BYTES: usize = 1 << 20;

/// The largest write batch accepted. A memtable takes whole batches, and
/// this bound is what lets one that is nearly full still take the next
/// batch (see `memtable/arena.rs`, `SLOTS_BEFORE_FULL`).
pub(crate) const MAX_BATCH_BYTES: usize = 2 << 30;

/// The WAL record buffer keeps at most this much capacity between groups.
const RETAINED_RECORD_BUFFER_BYTES: usize = 1 << 20;

/// One queued write.
#[derive(Debug)]
struct Writer {
    batch: WriteBatch,
    sync: bool,
    /// Not a write: a request to freeze the active memtable (from `flush`),
    /// ordered with the writes around it by going through the queue.
    switch_memtable: bool,
    /// Set by the leader when the write is done.
    outcome: Mutex<Option<Result<()>>>,
}

/// The queue of writers waiting for their turn.
#[derive(Debug, Default)]
pub(super) struct WriteQueue {
    waiting: VecDeque<Arc<Writer>>,
    leader_active: bool,
}

/// Inserts a batch's operations with consecutive sequence numbers.
pub(crate) fn apply_to_memtable(
    mem: &MemTable,
    batch: &WriteBatch,
    first_sequence_number: u64,
) -> Result<()> {
    for (sequence_number, op) in (first_sequence_number..).zip(batch.ops()) {
        match op? {
            BatchOp::Put { key, value } => {
                mem.insert(key, sequence_number, ValueKind::Value, value)?
            }
            BatchOp::Delete { key } => {
                mem.insert(key, sequence_number, ValueKind::Deletion, &[])?
            }
            BatchOp::DeleteRange { start, end } => {
                mem.insert_range_tombstone(start, end, sequence_number)
            }
        }
    }
    if let Some(index) = batch.applied_index() {
        mem.note_applied_index(index);
    }
    Ok(())
}

impl DbInner {
    fn validate(&self, batch: &WriteBatch) -> Result<()> {
        if batch.size_bytes() > MAX_BATCH_BYTES {
            return Err(Error::InvalidArgument(format!(
                "a write batch of {} bytes exceeds the limit of {MAX_BATCH_BYTES} bytes",
                batch.size_bytes()
            )));
        }
        let check_key = |key: &[u8]| {
            if key.len() > self.options.max_key_size_bytes {
                return Err(Error::KeyTooLarge {
                    len: key.len(),
                    limit: self.options.max_key_size_bytes,
                });
            }
            Ok(())
        };
        for op in batch.ops() {
            match op? {
                BatchOp::Put { key, value } => {
                    check_key(key)?;
                    if value.len() > self.options.max_value_size_bytes {
                        return Err(Error::ValueTooLarge {
                            len: value.len(),
                            limit: self.options.max_value_size_bytes,
                        });
                    }
                }
                BatchOp::Delete { key } => check_key(key)?,
                BatchOp::DeleteRange { start, end } => {
                    check_key(start)?;
                    check_key(end)?;
                    if start >= end {
                        return Err(Error::InvalidArgument(
                            "delete_range needs start < end".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.validate(&batch)?;
        if batch.is_empty() && batch.applied_index().is_none() {
            return Ok(());
        }
        self.enqueue(Writer {
            batch,
            sync: options.sync,
            switch_memtable: false,
            outcome: Mutex::new(None),
        })
    }

    /// Freezes the active memtable in write order (for `flush`).
    pub(super) fn request_memtable_switch(&self) -> Result<()> {
        self.enqueue(Writer {
            batch: WriteBatch::new(),
            sync: false,
            switch_memtable: true,
            outcome: Mutex::new(None),
        })
    }

    fn enqueue(&self, writer: Writer) -> Result<()> {
        let mut queue = self.write_queue.lock();
        if queue.waiting.is_empty() && !queue.leader_active {
            // Nobody is writing: lead a group of one without queueing (no
            // `Arc`, no wake-up). Writers that arrive meanwhile queue up and
            // the first of them leads the next group.
            queue.leader_active = true;
            drop(queue);
            let result = self.run_group(std::slice::from_ref(&writer));
            let mut queue = self.write_queue.lock();
            queue.leader_active = false;
            if !queue.waiting.is_empty() {
                self.write_turn.notify_all();
            }
            return result;
        }

        let me = Arc::new(writer);
        queue.waiting.push_back(Arc::clone(&me));
        loop {
            if let Some(outcome) = me.outcome.lock().take() {
                return outcome;
            }
            let at_front = queue.waiting.front().is_some_and(|w| Arc::ptr_eq(w, &me));
            if at_front && !queue.leader_active {
                break;
            }
            self.write_turn.wait(&mut queue);
        }

        // Leader: take a group from the front of the queue.
        queue.leader_active = true;
        let mut group = Vec::new();
        let mut group_bytes = 0;
        while let Some(writer) = queue.waiting.front() {
            let full = group_bytes + writer.batch.size_bytes() > MAX_GROUP_BYTES;
            if !group.is_empty() && (full || writer.switch_memtable) {
                break;
            }
            if writer.switch_memtable {
                // A switch request forms a group of its own.
                if let Some(writer) = queue.waiting.pop_front() {
                    group.push(writer);
                }
                break;
            }
            group_bytes += writer.batch.size_bytes();
            if let Some(writer) = queue.waiting.pop_front() {
                group.push(writer);
            }
        }
        drop(queue);
        // The leader is the group's first member (it reports its own
        // outcome; the others are told theirs below), and a switch request
        // travels alone.
        debug_assert!(group.first().is_some_and(|w| Arc::ptr_eq(w, &me)));
        debug_assert!(group.len() == 1 || group.iter().all(|w| !w.switch_memtable));

        let result = self.run_group(&group);

        let mut queue = self.write_queue.lock();
        for writer in group.iter().skip(1) {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::Poisoned(e.to_string())),
            };
            *writer.outcome.lock() = Some(outcome);
        }
        queue.leader_active = false;
        self.write_turn.notify_all();
        drop(queue);
        result
    }

    /// Carries out a group (the leader's work): a memtable switch request,
    /// or a group of writes.
    fn run_group<W: Borrow<Writer>>(&self, group: &[W]) -> Result<()> {
        if group.first().is_some_and(|w| w.borrow().switch_memtable) {
            let mut state = self.state.lock();
            DbInner::check_poisoned(&state).and_then(|()| self.switch_memtable(&mut state))
        } else {
            self.commit_group(group)
        }
    }

    fn commit_group<W: Borrow<Writer>>(&self, group: &[W]) -> Result<()> {
        let mem = self.make_room_for_write()?;
        let first = self.allocated_sequence_number.load(Ordering::Acquire) + 1;
        // Only the leader moves the counters, and it publishes what it
        // allocates: between groups they agree.
        debug_assert_eq!(
            self.visible_sequence_number.load(Ordering::Acquire),
            first - 1
        );
        let total_ops: u64 = group.iter().map(|w| w.borrow().batch.len() as u64).sum();
        if first + total_ops > MAX_SEQUENCE_NUMBER {
            return Err(Error::InvalidArgument("sequence numbers exhausted".into()));
        }

        let user_bytes;
        if self.options.wal_enabled {
            let sync = group.iter().any(|w| w.borrow().sync);
            let mut wal_guard = self.wal.lock();
            let wal = &mut *wal_guard;
            wal.records.clear();
            wal.record_ends.clear();
            let mut sequence_number = first;
            for writer in group {
                let batch = &writer.borrow().batch;
                batch.encode(sequence_number, &mut wal.records);
                wal.record_ends.push(wal.records.len());
                sequence_number += batch.len() as u64;
            }
            debug_assert_eq!(sequence_number, first + total_ops);
            debug_assert_eq!(wal.record_ends.len(), group.len());
            user_bytes = wal.records.len();
            let appended = match wal.writer.as_mut() {
                Some(writer) => {
                    let result = match wal.record_ends.as_slice() {
                        // The common case needs no list of slices.
                        [_] => writer.add_records(&[&wal.records]),
                        ends => {
                            let mut start = 0;
                            let payloads: Vec<&[u8]> = ends
                                .iter()
                                .map(|&end| {
                                    let payload = &wal.records[start..end];
                                    start = end;
                                    payload
                                })
                                .collect();
                            writer.add_records(&payloads)
                        }
                    };
                    result.and_then(|()| if sync { writer.sync() } else { Ok(()) })
                }
                None => Err(Error::Poisoned("the WAL is closed".into())),
            };
            // Keep the buffer from pinning a huge group's worth of memory.
            wal.records.shrink_to(RETAINED_RECORD_BUFFER_BYTES);
            if let Err(e) = appended {
                // The WAL's tail is unknown: fail-stop.
                wal.writer = None;
                // Lock order is state, then WAL: release the WAL first.
                drop(wal_guard);
                let mut state = self.state.lock();
                self.poison(&mut state, &e);
                return Err(e);
            }
            Counters::add(&self.counters.wal_bytes_written, user_bytes as u64);
            if sync {
                Counters::add(&self.counters.wal_syncs, 1);
            }
        } else {
            user_bytes = group.iter().map(|w| w.borrow().batch.size_bytes()).sum();
        }

        let mut sequence_number = first;
        for writer in group {
            let batch = &writer.borrow().batch;
            if let Err(e) = apply_to_memtable(&mem, batch, sequence_number) {
                // The WAL holds the group and the memtable only part of it:
                // fail-stop, so reopening replays the WAL into a new one.
                let mut state = self.state.lock();
                self.poison(&mut state, &e);
                return Err(e);
            }
            sequence_number += batch.len() as u64;
        }
        let last = first + total_ops - 1;
        // The memtable took the group's operations under exactly the
        // sequence numbers the WAL records carry.
        debug_assert_eq!(sequence_number, last + 1);
        debug_assert!(
            total_ops == 0 || mem.largest_sequence_number() == last,
            "the memtable's newest entry is {}, the group's {last}",
            mem.largest_sequence_number()
        );
        self.allocated_sequence_number
            .store(last, Ordering::Release);
        self.visible_sequence_number.store(last, Ordering::Release);
        Counters::add(&self.counters.user_bytes_written, user_bytes as u64);
        Counters::add(&self.counters.write_groups, 1);
        Counters::add(&self.counters.writes, group.len() as u64);
        Ok(())
    }

    /// Returns the memtable to write into, freezing a full one and waiting
    /// (backpressure) while too much is waiting for flush or compaction.
    fn make_room_for_write(&self) -> Result<Arc<MemTable>> {
        // Fast path without the state lock: the published super version's
        // memtable is the active one (only the write leader, which we are,
        // replaces it), and while it has room and level 0 is below the
        // slowdown trigger there is nothing to decide.
        if !self.poisoned.load(Ordering::Acquire) {
            let sv = self.super_version.load();
            if !sv.mem.is_full(self.options.memtable_size_bytes)
                && sv.version.files(0).len() < self.options.level0_slowdown_writes_files
            {
                return Ok(Arc::clone(&sv.mem));
            }
        }
        let mut slowed_down = false;
        let mut state = self.state.lock();
        loop {
            DbInner::check_poisoned(&state)?;
            let level0_files = state.versions.current().files(0).len();
            if !slowed_down && level0_files >= self.options.level0_slowdown_writes_files {
                // Give compaction a little CPU once per write, rather than
                // stopping writes for seconds later.
                slowed_down = true;
                Counters::add(&self.counters.write_slowdowns, 1);
                drop(state);
                std::thread::sleep(Duration::from_millis(1));
                state = self.state.lock();
                continue;
            }
            if !state.mem.is_full(self.options.memtable_size_bytes) {
                return Ok(Arc::clone(&state.mem));
            }
            if state.imm.len() >= self.options.max_immutable_memtables
                || level0_files >= self.options.level0_stop_writes_files
            {
                Counters::add(&self.counters.write_stalls, 1);
                if !self.options.background_threads {
                    drop(state);
                    self.run_pending_work_inline()?;
                    state = self.state.lock();
                    continue;
                }
                self.work_available.notify_all();
                self.work_done
                    .wait_for(&mut state, Duration::from_millis(100));
                continue;
            }
            self.switch_memtable(&mut state)?;
            if !self.options.background_threads {
                drop(state);
                self.run_pending_work_inline()?;
                state = self.state.lock();
            }
        }
    }

    /// Freezes the active memtable and starts a new one with a new WAL.
    /// Called by the write leader (or a flush request) with `state` locked.
    pub(super) fn switch_memtable(&self, state: &mut State) -> Result<()> {
        let mut new_wal_number = 0;
        if self.options.wal_enabled {
            let mut wal = self.wal.lock();
            new_wal_number = state.versions.new_file_number();
            let result = (|| {
                // Sync the old WAL first: a later WAL must never hold data
                // whose predecessors could still be lost.
                if let Some(writer) = wal.writer.as_mut() {
                    writer.sync()?;
                }
                let file = self
                    .fs
                    .create_file(&filename::wal_path(&self.dir, new_wal_number))?;
                self.fs.sync_dir(&self.dir)?;
                Ok::<_, Error>(file)
            })();
            match result {
                Ok(file) => {
                    wal.writer = Some(LogWriter::new(file));
                    wal.number = new_wal_number;
                }
                Err(e) => {
                    wal.writer = None;
                    drop(wal);
                    self.poison(state, &e);
                    return Err(e);
                }
            }
        }
        // A memtable's writes live in its WAL and every later WAL: WAL
        // numbers increase along memtables.
        debug_assert!(!self.options.wal_enabled || new_wal_number > state.mem.wal_number());
        let fresh =
            MemTable::with_chunk_pool(new_wal_number, Some(Arc::clone(&self.memtable_chunks)));
        let frozen = std::mem::replace(&mut state.mem, Arc::new(fresh));
        if !frozen.is_empty() || frozen.applied_index() > 0 {
            // Flushed oldest first: the frozen ones hold older writes.
            debug_assert!(
                frozen.is_empty()
                    || state.imm.back().is_none_or(|older| {
                        older.largest_sequence_number() < frozen.largest_sequence_number()
                    })
            );
            state.imm.push_back(frozen);
        }
        self.install_super_version(state);
        self.work_available.notify_all();
        Ok(())
    }

    /// Makes every acknowledged write durable (used by `close`).
    pub(super) fn sync_wal(&self) -> Result<()> {
        let mut wal = self.wal.lock();
        match wal.writer.as_mut() {
            Some(writer) => writer.sync(),
            None => Ok(()),
        }
    }
}
