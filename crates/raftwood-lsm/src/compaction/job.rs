//! Carrying out a [`CompactionTask`]: merge the inputs, drop what no
//! snapshot can see, write new tables cut at the target size.

use std::path::Path;
use std::sync::Arc;

use super::CompactionTask;
use crate::cache::TableCache;
use crate::error::Result;
use crate::iterator::InternalIterator;
use crate::iterator::merge::MergeIterator;
use crate::key::{self, RangeTombstone, ValueKind};
use crate::sstable::TableWriter;
use crate::version::VersionEdit;

/// The result of a compaction, ready to be logged and applied.
#[derive(Debug, Default)]
pub struct CompactionOutcome {
    /// Deletes the inputs, adds the outputs.
    pub edit: VersionEdit,
    /// Bytes read from input tables.
    pub bytes_read: u64,
    /// Bytes written to output tables.
    pub bytes_written: u64,
    /// Largest user key of the input-level files (the level's new cursor).
    pub cursor: Vec<u8>,
}

/// Snapshot stripes: two versions of a key in the same stripe are seen by
/// exactly the same snapshots, so only the newer needs to be kept.
struct Stripes<'a> {
    /// Sequence numbers of live snapshots, ascending.
    snapshots: &'a [u64],
}

impl Stripes<'_> {
    fn of(&self, sequence_number: u64) -> usize {
        self.snapshots.partition_point(|&s| s < sequence_number)
    }
}

/// Runs `task`. `snapshots` are the live snapshots' sequence numbers,
/// ascending; `new_file_number` allocates output file numbers.
pub fn run_compaction(
    task: &CompactionTask,
    tables: &TableCache,
    dir: &Path,
    fs: &Arc<dyn crate::fs::FileSystem>,
    options: &crate::options::Options,
    snapshots: &[u64],
    new_file_number: &mut dyn FnMut() -> u64,
) -> Result<CompactionOutcome> {
    // `Stripes` binary-searches them.
    debug_assert!(snapshots.is_sorted(), "snapshots out of order");
    let mut outcome = CompactionOutcome::default();
    for file in task.inputs.iter() {
        outcome
            .edit
            .deleted_files
            .push((task.input_level, file.number));
    }
    for file in task.output_level_inputs.iter() {
        outcome
            .edit
            .deleted_files
            .push((task.output_level, file.number));
    }
    outcome.cursor = task
        .inputs
        .iter()
        .map(|f| f.largest_user_key().to_vec())
        .max()
        .unwrap_or_default();

    if task.is_trivial_move() {
        // Only a move down keeps the newer-above-older order without a merge.
        debug_assert_eq!(task.output_level, task.input_level + 1);
        for file in &task.inputs {
            outcome
                .edit
                .added_files
                .push((task.output_level, Arc::clone(file)));
        }
        return Ok(outcome);
    }

    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    let mut tombstones: Vec<RangeTombstone> = Vec::new();
    for file in task.all_inputs() {
        let table = tables.get(file)?;
        outcome.bytes_read += file.size_bytes;
        tombstones.extend(table.range_tombstones().iter().cloned());
        // Compaction reads each block once: leave the cache to readers.
        children.push(Box::new(table.iter_without_filling_cache()));
    }
    let mut merged = MergeIterator::new(children);
    merged.seek_to_first()?;

    let stripes = Stripes { snapshots };
    // Everything at or below this is seen by every snapshot (and by reads
    // without one): the oldest point of view that still exists.
    let oldest_view = snapshots
        .first()
        .copied()
        .unwrap_or(key::MAX_SEQUENCE_NUMBER);

    // A tombstone is dropped at the bottom once every view sees it: nothing
    // older is left anywhere for it to hide.
    let kept_tombstones: Vec<RangeTombstone> = tombstones
        .iter()
        .filter(|t| !(task.is_bottommost && t.sequence_number <= oldest_view))
        .cloned()
        .collect();

    let mut writer = TableWriter::new(
        Arc::clone(fs),
        dir.to_path_buf(),
        options.table.for_level(task.output_level),
        options.target_file_size_bytes,
        kept_tombstones,
    );

    let mut current_user_key: Vec<u8> = Vec::new();
    let mut has_current = false;
    let mut last_stripe = usize::MAX;
    while merged.valid() {
        let parsed = key::parse_internal_key(merged.key())?;
        if !has_current || parsed.user_key != current_user_key.as_slice() {
            current_user_key.clear();
            current_user_key.extend_from_slice(parsed.user_key);
            has_current = true;
            last_stripe = usize::MAX;
        }
        let stripe = stripes.of(parsed.sequence_number);
        let hidden_by_newer = stripe == last_stripe;
        last_stripe = stripe;

        let covered_by_range = tombstones.iter().any(|t| {
            t.sequence_number > parsed.sequence_number
                && t.contains(parsed.user_key)
                && stripes.of(t.sequence_number) == stripe
        });
        let obsolete_tombstone = parsed.kind == ValueKind::Deletion
            && task.is_bottommost
            && parsed.sequence_number <= oldest_view;

        if !(hidden_by_newer || covered_by_range || obsolete_tombstone) {
            writer.add(merged.key(), merged.value(), new_file_number)?;
        }
        merged.next()?;
    }
    // Outputs hold only the inputs' entries and tombstones, so they stay
    // within the inputs' key range (outside it lie other files of the
    // output level) and their sequence numbers.
    let inputs_smallest = task.all_inputs().map(|f| f.smallest_user_key()).min();
    let inputs_largest = task.all_inputs().map(|f| f.largest_user_key()).max();
    let inputs_largest_sequence_number = task
        .all_inputs()
        .map(|f| f.largest_sequence_number)
        .max()
        .unwrap_or(0);
    for file in writer.finish(new_file_number)? {
        debug_assert!(
            inputs_smallest.is_some_and(|smallest| smallest <= file.smallest_user_key())
                && inputs_largest.is_some_and(|largest| file.largest_user_key() <= largest),
            "output {} leaves the compaction's key range",
            file.number
        );
        debug_assert!(file.largest_sequence_number <= inputs_largest_sequence_number);
        outcome.bytes_written += file.size_bytes;
        outcome
            .edit
            .added_files
            .push((task.output_level, Arc::new(file)));
    }
    Ok(outcome)
}
