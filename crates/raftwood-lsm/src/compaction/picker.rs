//! The compaction picker: a pure function of a version, the configuration
//! and the per-level cursors. No I/O, so policies can be tested (and
//! simulated) without a disk.

use std::sync::Arc;

use crate::version::{FileMetadata, Version};

/// The knobs the picker reads.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// Level 0 is compacted once it holds this many files.
    pub level0_trigger_files: usize,
    /// Target size of level 1.
    pub level1_size_bytes: u64,
    /// Growth factor between levels.
    pub level_size_multiplier: u64,
}

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactionTask {
    /// The level the inputs come from.
    pub input_level: usize,
    /// The level outputs go to. Invariant: `input_level + 1`, or equal to
    /// `input_level` only for a manual compaction of the last level.
    pub output_level: usize,
    /// Files taken from `input_level`.
    pub inputs: Vec<Arc<FileMetadata>>,
    /// Files of `output_level` overlapping the inputs.
    pub output_level_inputs: Vec<Arc<FileMetadata>>,
    /// No level deeper than `output_level` holds any key in the inputs'
    /// range, so tombstones can be dropped.
    pub is_bottommost: bool,
}

impl CompactionTask {
    /// A single file moving down with nothing to merge: the manifest moves
    /// it, no bytes are rewritten.
    pub fn is_trivial_move(&self) -> bool {
        self.inputs.len() == 1
            && self.output_level_inputs.is_empty()
            && self.output_level != self.input_level
    }

    /// All input files.
    pub fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileMetadata>> {
        self.inputs.iter().chain(self.output_level_inputs.iter())
    }

    /// Asserts that the task is one `run_compaction` may carry out on
    /// `version`: its levels exist and are adjacent (or the same, for a
    /// rewrite in place), its inputs are live files of those levels, and
    /// no file of the output level outside the task overlaps its key range
    /// (the outputs, which stay within that range, would overlap it).
    pub(crate) fn check_invariants(&self, version: &Version) {
        if !cfg!(debug_assertions) {
            return;
        }
        debug_assert!(
            self.output_level == self.input_level || self.output_level == self.input_level + 1
        );
        debug_assert!(self.output_level < version.num_levels());
        debug_assert!(!self.inputs.is_empty(), "a compaction of nothing");
        let live = |level: usize, file: &Arc<FileMetadata>| {
            version.files(level).iter().any(|f| Arc::ptr_eq(f, file))
        };
        debug_assert!(self.inputs.iter().all(|f| live(self.input_level, f)));
        debug_assert!(
            self.output_level_inputs
                .iter()
                .all(|f| live(self.output_level, f))
        );
        let all: Vec<_> = self.all_inputs().cloned().collect();
        if let Some((smallest, largest)) = key_range(&all)
            && self.output_level != self.input_level
        {
            let untouched_overlap = version
                .overlapping_files(self.output_level, Some(&smallest), Some(&largest))
                .into_iter()
                .find(|f| !self.output_level_inputs.iter().any(|g| Arc::ptr_eq(f, g)));
            debug_assert!(
                untouched_overlap.is_none(),
                "file {:?} of level {} overlaps the compaction but is not an input",
                untouched_overlap.map(|f| f.number),
                self.output_level
            );
        }
    }
}

/// Target size of `level` (>= 1).
fn level_target_bytes(config: &CompactionConfig, level: usize) -> u64 {
    debug_assert!(level >= 1, "level 0 is scored by file count");
    let mut target = config.level1_size_bytes.max(1);
    for _ in 1..level {
        target = target.saturating_mul(config.level_size_multiplier.max(2));
    }
    target
}

/// How urgently each level (except the last) needs compaction; a score of
/// 1.0 or more means "compact now".
pub fn level_scores(version: &Version, config: &CompactionConfig) -> Vec<(usize, f64)> {
    let last = version.num_levels().saturating_sub(1);
    (0..last)
        .map(|level| {
            let score = if level == 0 {
                version.files(0).len() as f64 / config.level0_trigger_files.max(1) as f64
            } else {
                version.level_size_bytes(level) as f64 / level_target_bytes(config, level) as f64
            };
            (level, score)
        })
        .collect()
}

fn key_range(files: &[Arc<FileMetadata>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let smallest = files.iter().map(|f| f.smallest_user_key()).min()?;
    let largest = files.iter().map(|f| f.largest_user_key()).max()?;
    Some((smallest.to_vec(), largest.to_vec()))
}

fn build_task(
    version: &Version,
    input_level: usize,
    output_level: usize,
    inputs: Vec<Arc<FileMetadata>>,
) -> Option<CompactionTask> {
    let (smallest, largest) = key_range(&inputs)?;
    let output_level_inputs = if output_level == input_level {
        Vec::new()
    } else {
        version.overlapping_files(output_level, Some(&smallest), Some(&largest))
    };
    let mut all = inputs.clone();
    all.extend(output_level_inputs.iter().cloned());
    let (smallest, largest) = key_range(&all)?;
    let is_bottommost = ((output_level + 1)..version.num_levels()).all(|level| {
        version
            .overlapping_files(level, Some(&smallest), Some(&largest))
            .is_empty()
    });
    let task = CompactionTask {
        input_level,
        output_level,
        inputs,
        output_level_inputs,
        is_bottommost,
    };
    task.check_invariants(version);
    Some(task)
}

/// A level-0 file that shares no user key with any other level-0 file nor
/// with level 1 — sequential inserts make such files — moves down by a
/// manifest edit alone: no other level-0 file holds a version of its keys,
/// so the newer-above-older order between levels holds without merging,
/// and merging would only rewrite it. The oldest such file goes first.
fn pick_level0_trivial_move(version: &Version) -> Option<CompactionTask> {
    if version.num_levels() < 2 {
        return None;
    }
    let level0 = version.files(0);
    let movable = level0.iter().rev().find(|file| {
        let smallest = Some(file.smallest_user_key());
        let largest = Some(file.largest_user_key());
        level0
            .iter()
            .all(|other| Arc::ptr_eq(other, file) || !other.overlaps(smallest, largest))
            && version.overlapping_files(1, smallest, largest).is_empty()
    })?;
    let task = build_task(version, 0, 1, vec![Arc::clone(movable)])?;
    debug_assert!(task.is_trivial_move());
    Some(task)
}

/// When no level is due by size or file count: folds level 0 into level 1
/// once a level-0 file has slowed down enough cursor seeks (see
/// [`ReadCost`](crate::version::ReadCost)). All of level 0 goes, for the
/// same reason as in a count-triggered compaction.
fn pick_for_reads(version: &Version) -> Option<CompactionTask> {
    if version.num_levels() < 2 || !version.files(0).iter().any(|f| f.seeks_exhausted()) {
        return None;
    }
    build_task(version, 0, 1, version.files(0).to_vec())
}

/// Picks the most urgent compaction, if any level scores >= 1, or else a
/// level-0 compaction that reads have earned ([`pick_for_reads`]).
///
/// `cursors[level]` is the largest user key of the last file compacted out
/// of that level; the next pick starts after it, so a level is compacted
/// round-robin across its key space.
pub fn pick_compaction(
    version: &Version,
    config: &CompactionConfig,
    cursors: &[Vec<u8>],
) -> Option<CompactionTask> {
    let mut scores = level_scores(version, config);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let &(level, score) = scores.first()?;
    if score < 1.0 {
        return pick_for_reads(version);
    }
    if level == 0 {
        if let Some(task) = pick_level0_trivial_move(version) {
            return Some(task);
        }
        // Level-0 files overlap each other: take them all, so that the
        // newer-above-older ordering between levels is kept.
        return build_task(version, 0, 1, version.files(0).to_vec());
    }
    let files = version.files(level);
    let cursor = cursors.get(level).map(Vec::as_slice).unwrap_or(&[]);
    let chosen = files
        .iter()
        .find(|f| cursor.is_empty() || f.smallest_user_key() > cursor)
        .or_else(|| files.first())?;
    build_task(version, level, level + 1, vec![Arc::clone(chosen)])
}

/// A manual compaction of the files of `level` overlapping `[start, end]`
/// into `output_level` (`level + 1`, or `level` itself to rewrite a level
/// in place).
pub fn pick_range(
    version: &Version,
    level: usize,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    output_level: usize,
) -> Option<CompactionTask> {
    if output_level != level && output_level != level + 1 || output_level >= version.num_levels() {
        return None;
    }
    let inputs = if level == 0 {
        let overlapping = version.overlapping_files(0, start, end);
        if overlapping.is_empty() {
            return None;
        }
        version.files(0).to_vec()
    } else {
        version.overlapping_files(level, start, end)
    };
    if inputs.is_empty() {
        return None;
    }
    build_task(version, level, output_level, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};
    use crate::version::VersionEdit;

    fn file(number: u64, smallest: &str, largest: &str, size_bytes: u64) -> Arc<FileMetadata> {
        Arc::new(FileMetadata {
            number,
            size_bytes,
            smallest_key: internal_key(smallest.as_bytes(), number, ValueKind::Value),
            largest_key: internal_key(largest.as_bytes(), number, ValueKind::Value),
            smallest_sequence_number: number,
            largest_sequence_number: number,
            num_entries: 1,
            num_range_tombstones: 0,
            reader: Default::default(),
            read_cost: Default::default(),
        })
    }

    fn version(files: Vec<(usize, Arc<FileMetadata>)>) -> Version {
        Version::empty(4)
            .apply(&VersionEdit {
                added_files: files,
                ..Default::default()
            })
            .unwrap()
    }

    const CONFIG: CompactionConfig = CompactionConfig {
        level0_trigger_files: 2,
        level1_size_bytes: 1000,
        level_size_multiplier: 10,
    };

    #[test]
    fn nothing_to_do_below_the_triggers() {
        let v = version(vec![
            (0, file(1, "a", "c", 10)),
            (1, file(2, "a", "z", 500)),
        ]);
        assert!(pick_compaction(&v, &CONFIG, &[]).is_none());
    }

    #[test]
    fn seeks_earn_a_level0_compaction_below_the_file_trigger() {
        let v = version(vec![
            (0, file(1, "a", "c", 10)),
            (1, file(2, "a", "z", 500)),
        ]);
        let level0 = &v.files(0)[0];
        let allowed = crate::version::ReadCost::allowed_seeks(level0.size_bytes);
        for _ in 1..allowed {
            assert!(!level0.charge_seek());
        }
        assert!(
            pick_compaction(&v, &CONFIG, &[]).is_none(),
            "budget not used up"
        );
        assert!(level0.charge_seek(), "the last allowed seek reports it");
        let task = pick_compaction(&v, &CONFIG, &[]).unwrap();
        assert_eq!((task.input_level, task.output_level), (0, 1));
        assert_eq!(task.inputs[0].number, 1);
        assert_eq!(task.output_level_inputs[0].number, 2);
        // A level-1 file's seeks do not matter: its level is one source.
        let deeper = version(vec![(1, file(3, "a", "z", 500))]);
        for _ in 0..allowed {
            deeper.files(1)[0].charge_seek();
        }
        assert!(pick_compaction(&deeper, &CONFIG, &[]).is_none());
    }

    #[test]
    fn disjoint_level0_files_move_down_oldest_first_without_merging() {
        // Sequential inserts: level-0 files 1..=3 (3 newest) hold disjoint
        // ranges; level 1 holds older, disjoint data.
        let v = version(vec![
            (0, file(1, "d", "f", 10)),
            (0, file(2, "g", "i", 10)),
            (0, file(3, "j", "l", 10)),
            (1, file(4, "a", "c", 10)),
        ]);
        let task = pick_compaction(&v, &CONFIG, &[]).unwrap();
        assert!(task.is_trivial_move());
        assert_eq!(task.inputs[0].number, 1, "the oldest goes first");

        // A level-0 file overlapping another, or level 1, is merged as usual.
        let v = version(vec![
            (0, file(1, "d", "f", 10)),
            (0, file(2, "e", "i", 10)),
            (1, file(4, "h", "z", 10)),
        ]);
        let task = pick_compaction(&v, &CONFIG, &[]).unwrap();
        assert_eq!(task.inputs.len(), 2);
        assert_eq!(task.output_level_inputs.len(), 1);
    }

    #[test]
    fn level0_takes_all_files_and_overlapping_level1() {
        let v = version(vec![
            (0, file(1, "a", "c", 10)),
            (0, file(2, "b", "d", 10)),
            (1, file(3, "c", "e", 10)),
            (1, file(4, "x", "z", 10)),
            (2, file(5, "a", "b", 10)),
        ]);
        let task = pick_compaction(&v, &CONFIG, &[]).unwrap();
        assert_eq!(task.input_level, 0);
        assert_eq!(task.inputs.len(), 2);
        assert_eq!(
            task.output_level_inputs
                .iter()
                .map(|f| f.number)
                .collect::<Vec<_>>(),
            vec![3]
        );
        assert!(!task.is_bottommost, "level 2 holds keys in [a, e]");
    }

    #[test]
    fn oversized_level_compacts_round_robin_and_moves_trivially() {
        let v = version(vec![
            (1, file(1, "a", "c", 800)),
            (1, file(2, "m", "p", 800)),
            (2, file(3, "n", "o", 10)),
        ]);
        let first = pick_compaction(&v, &CONFIG, &[]).unwrap();
        assert_eq!(first.inputs[0].number, 1);
        assert!(first.is_trivial_move());
        assert!(first.is_bottommost);
        let cursors = vec![Vec::new(), b"c".to_vec()];
        let second = pick_compaction(&v, &CONFIG, &cursors).unwrap();
        assert_eq!(second.inputs[0].number, 2);
        assert_eq!(second.output_level_inputs[0].number, 3);
        assert!(!second.is_trivial_move());
        let wrapped = pick_compaction(&v, &CONFIG, &[Vec::new(), b"p".to_vec()]).unwrap();
        assert_eq!(wrapped.inputs[0].number, 1);
    }

    #[test]
    fn manual_range_pick() {
        let v = version(vec![(3, file(1, "a", "c", 10)), (3, file(2, "x", "z", 10))]);
        let task = pick_range(&v, 3, Some(b"b"), Some(b"b"), 3).unwrap();
        assert_eq!(task.output_level, 3, "the last level is rewritten in place");
        assert_eq!(task.inputs.len(), 1);
        assert!(!task.is_trivial_move());
        assert!(pick_range(&v, 1, None, None, 2).is_none());
        assert!(pick_range(&v, 3, None, None, 4).is_none(), "no level 4");
    }
}
