#![allow(clippy::unwrap_used, reason = "tests")]
//! Damage to segment files: every single-bit flip either is reported as
//! `Corruption` or leaves a log recovery can still read correctly (the
//! damage was in bytes nobody needs, or in the last write, which is then
//! cut as a torn tail). Never wrong data, never a panic.

mod support;

use std::path::{Path, PathBuf};

use raftwood_log::{LogError, LogOptions, RecoveryMode};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::*;

/// Segment files: path and content.
type SegmentFiles = Vec<(PathBuf, Vec<u8>)>;

/// Runs a synced workload and returns the files it left, the state after
/// each write (the last is the final state), and how many of those states
/// existed at the sync before the last synced batch of writes.
fn written_log(
    seed: u64,
    options: &LogOptions,
    with_reopen: bool,
) -> (SegmentFiles, Vec<Model>, usize) {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, options).unwrap();
    let mut states = vec![Model::default()];
    // States at the last sync, and at the sync before the writes it made
    // durable.
    let mut last_sync = 1;
    let mut batch_start = 1;
    let mut synced = |states: &Vec<Model>| {
        if states.len() > last_sync {
            batch_start = last_sync;
        }
        last_sync = states.len();
    };
    for op in workload(seed, 60, with_reopen) {
        let mut next = states.last().unwrap().clone();
        match op {
            Op::Write(request) => {
                store.write(&request).unwrap();
                model_write(&mut next, &request);
                states.push(next);
            }
            Op::Compact(meta) => {
                store.compact(&meta).unwrap();
                model_compact(&mut next, &meta);
                states.push(next);
                synced(&states); // compaction syncs its record
            }
            Op::Sync => {
                store.sync().unwrap();
                synced(&states);
            }
            Op::Reopen => {
                drop(store);
                store = open(&fs, options).unwrap().0;
                synced(&states);
            }
        }
    }
    store.sync().unwrap();
    synced(&states);
    drop(store);
    let files = fs
        .list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".log"))
        .map(|name| {
            let path = Path::new(DIR).join(name);
            let bytes = fs.read_raw(&path).unwrap();
            (path, bytes)
        })
        .collect();
    (files, states, batch_start)
}

fn filesystem_with(files: &[(PathBuf, Vec<u8>)]) -> CrashFs {
    let fs = crash_fs();
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs.sync_dir(Path::new("/node")).unwrap();
    for (path, bytes) in files {
        fs.write_raw(path, bytes).unwrap();
    }
    fs
}

#[test]
fn every_bit_flip_is_detected_or_harmless() {
    let options = small_segments();
    let mut outcomes = [0u64; 3]; // unchanged, last write cut, corruption
    for seed in 0..3 {
        let (files, states, synced_states) = written_log(seed, &options, true);
        let last_file = files.last().unwrap().0.clone();
        let final_state = states.last().unwrap();
        // A flip in the writes of the last sync can look like a torn write
        // over the zero tail (docs/raft-log-format.md, "Recovery"): they may
        // be cut, back to the state of the sync before, never further.
        let since_last_sync = &states[synced_states - 1..];
        let mut rng = SmallRng::seed_from_u64(seed);
        for (file_index, (path, bytes)) in files.iter().enumerate() {
            for offset in 0..bytes.len() {
                let bit = rng.random_range(0..8u8);
                let mut damaged = files.clone();
                damaged[file_index].1[offset] ^= 1 << bit;
                let fs = filesystem_with(&damaged);
                let context = format!("seed {seed}, {} byte {offset} bit {bit}", path.display());
                match open(&fs, &options) {
                    Ok((_, recovered)) if recovered == *final_state => outcomes[0] += 1,
                    Ok((_, recovered)) => {
                        assert!(
                            *path == last_file && since_last_sync.contains(&recovered),
                            "{context}: recovered wrong data: state {:?} of {}, synced {synced_states}, file len {}",
                            states.iter().position(|s| *s == recovered),
                            states.len(),
                            bytes.len()
                        );
                        outcomes[1] += 1;
                    }
                    Err(LogError::Corruption { .. }) => outcomes[2] += 1,
                    Err(error) => panic!("{context}: unexpected error {error}"),
                }
            }
        }
    }
    println!(
        "bit flips: {} harmless, {} cut the last write, {} reported as corruption",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(outcomes[2] > 1000, "{outcomes:?}");
    assert!(outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn lenient_recovery_keeps_a_valid_prefix_and_never_panics() {
    let options = LogOptions {
        recovery_mode: RecoveryMode::TruncateAtFirstDamage,
        ..small_segments()
    };
    let (files, states, _) = written_log(7, &options, true);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut opened = 0;
    for (file_index, (_, bytes)) in files.iter().enumerate() {
        for offset in (0..bytes.len()).step_by(3) {
            let mut damaged = files.clone();
            damaged[file_index].1[offset] ^= 1 << rng.random_range(0..8u8);
            let fs = filesystem_with(&damaged);
            if let Ok((store, recovered)) = open(&fs, &options) {
                opened += 1;
                // Whatever was kept is a log: consecutive entries after the
                // snapshot point, and the store agrees with it.
                let first = model_snapshot_index(&recovered) + 1;
                for (i, entry) in recovered.entries.iter().enumerate() {
                    assert_eq!(entry.index, first + i as u64);
                }
                assert_store_matches(&store, &recovered);
                // Its entries are ones that were written.
                for entry in &recovered.entries {
                    assert!(states.iter().any(|s| s.entries.contains(entry)));
                }
                // And it reopens as it was.
                drop(store);
                let (_, again) = open(&fs, &options).unwrap();
                assert_eq!(again, recovered);
            }
        }
    }
    assert!(opened > 100, "{opened}");
}

#[test]
fn damage_followed_by_valid_records_is_corruption_in_strict_mode() {
    let options = LogOptions::default();
    let (files, _, _) = written_log(3, &options, false);
    // One big segment: damage the record after the first write's `Synced`
    // record (22 bytes of framing, 8 of payload). Later writes' `Synced`
    // records say it was durable: corruption, not a torn write.
    assert_eq!(files.len(), 1);
    let path = &files[0].0;
    let bytes = &files[0].1;
    let header_len = 22 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let second_record = header_len + 30;
    let mut damaged = files.clone();
    damaged[0].1[second_record + 30] ^= 0x10;
    let fs = filesystem_with(&damaged);
    match open(&fs, &options) {
        Err(LogError::Corruption { file, offset, .. }) => {
            assert_eq!(&file, path);
            assert_eq!(offset, second_record as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Nothing was changed: the same error again, and the files are intact.
    assert!(matches!(
        open(&fs, &options),
        Err(LogError::Corruption { .. })
    ));
    assert_eq!(fs.read_raw(path).unwrap(), damaged[0].1);
}

#[test]
fn zeroed_or_garbage_tails_are_cut() {
    let options = small_segments();
    let (files, states, _) = written_log(5, &options, true);
    for tail in [
        vec![0u8; 100],
        vec![0xffu8; 7],
        (0..=255u8).collect::<Vec<u8>>(),
    ] {
        let mut damaged = files.clone();
        damaged.last_mut().unwrap().1.extend_from_slice(&tail);
        let fs = filesystem_with(&damaged);
        let (_, recovered) = open(&fs, &options).unwrap();
        assert_eq!(&recovered, states.last().unwrap());
        // The cut tail stays behind in its segment, and a later recovery
        // still ignores it.
        let (_, again) = open(&fs, &options).unwrap();
        assert_eq!(&again, states.last().unwrap());
    }
}
