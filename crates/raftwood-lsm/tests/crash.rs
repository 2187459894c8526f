//! Crash tests on the crash-modelling filesystem: run a workload, let the
//! "process" die after the k-th filesystem operation (inside a WAL append,
//! a flush, a compaction, a manifest write...), drop what was not durable,
//! reopen, and check:
//! - every write acknowledged with `sync` (or before an acknowledged flush)
//!   is present;
//! - the database equals the model after some prefix of the attempted
//!   operations: nothing unacknowledged appears out of order;
//! - every read succeeds (no corrupt data) and the database accepts writes.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use raftwood_lsm::fs::{CrashFs, CrashMode};
use raftwood_lsm::{Db, Options, WriteBatch, WriteOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Step {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        sync: bool,
    },
    Delete {
        key: Vec<u8>,
        sync: bool,
    },
    DeleteRange {
        start: Vec<u8>,
        end: Vec<u8>,
        sync: bool,
    },
    Batch {
        puts: Vec<(Vec<u8>, Vec<u8>)>,
        sync: bool,
    },
    Flush,
    CompactAll,
}

impl Step {
    /// Once acknowledged, is everything up to and including this step durable?
    fn makes_durable(&self) -> bool {
        match self {
            Step::Put { sync, .. }
            | Step::Delete { sync, .. }
            | Step::DeleteRange { sync, .. }
            | Step::Batch { sync, .. } => *sync,
            Step::Flush | Step::CompactAll => true,
        }
    }

    fn apply(&self, model: &mut Model) {
        match self {
            Step::Put { key, value, .. } => {
                model.insert(key.clone(), value.clone());
            }
            Step::Delete { key, .. } => {
                model.remove(key);
            }
            Step::DeleteRange { start, end, .. } => model.retain(|k, _| !(k >= start && k < end)),
            Step::Batch { puts, .. } => {
                for (k, v) in puts {
                    model.insert(k.clone(), v.clone());
                }
            }
            Step::Flush | Step::CompactAll => {}
        }
    }

    fn execute(&self, db: &Db) -> raftwood_lsm::Result<()> {
        let opts = |sync: bool| WriteOptions { sync };
        match self {
            Step::Put { key, value, sync } => db.put(key, value, opts(*sync)),
            Step::Delete { key, sync } => db.delete(key, opts(*sync)),
            Step::DeleteRange { start, end, sync } => db.delete_range(start, end, opts(*sync)),
            Step::Batch { puts, sync } => {
                let mut batch = WriteBatch::new();
                for (k, v) in puts {
                    batch.put(k, v);
                }
                db.write(batch, opts(*sync))
            }
            Step::Flush => db.flush(),
            Step::CompactAll => db.compact_range(None, None),
        }
    }
}

fn workload(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let key = |rng: &mut SmallRng| format!("k{:03}", rng.random_range(0..120u32)).into_bytes();
    (0..steps)
        .map(|i| {
            let sync = rng.random_bool(0.3);
            match rng.random_range(0..100u32) {
                0..=59 => {
                    let key = key(&mut rng);
                    let value =
                        format!("v{i}-{}", "x".repeat(rng.random_range(0..120))).into_bytes();
                    Step::Put { key, value, sync }
                }
                60..=74 => Step::Delete {
                    key: key(&mut rng),
                    sync,
                },
                75..=77 => {
                    let (a, b) = (key(&mut rng), key(&mut rng));
                    let (start, end) = if a < b { (a, b) } else { (b, a) };
                    if start == end {
                        Step::Delete { key: start, sync }
                    } else {
                        Step::DeleteRange { start, end, sync }
                    }
                }
                78..=92 => Step::Batch {
                    puts: (0..rng.random_range(1..5))
                        .map(|j| (key(&mut rng), format!("b{i}.{j}").into_bytes()))
                        .collect(),
                    sync,
                },
                93..=97 => Step::Flush,
                _ => Step::CompactAll,
            }
        })
        .collect()
}

fn options(fs: &CrashFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        memtable_size_bytes: 3 << 10,
        target_file_size_bytes: 4 << 10,
        level1_size_bytes: 12 << 10,
        level_size_multiplier: 4,
        level0_compaction_trigger_files: 2,
        num_levels: 4,
        background_threads: false,
        table: raftwood_lsm::TableOptions {
            block_size_bytes: 512,
            ..Default::default()
        },
        ..Options::default()
    }
}

const DB: &str = "/data/db";

/// Runs `steps` until the first failure. Returns the index of the first
/// step that was not acknowledged (== steps.len() if all were).
fn run_until_death(fs: &CrashFs, steps: &[Step]) -> usize {
    let Ok(db) = Db::open(Path::new(DB), options(fs)) else {
        return 0;
    };
    for (i, step) in steps.iter().enumerate() {
        if step.execute(&db).is_err() {
            return i;
        }
    }
    steps.len()
}

fn contents(db: &Db) -> Model {
    db.range(None, None).unwrap().map(|e| e.unwrap()).collect()
}

/// Checks the recovered state against every admissible prefix.
fn check_recovery(fs: &CrashFs, steps: &[Step], first_unacknowledged: usize, context: &str) {
    let db = Db::open(Path::new(DB), options(fs))
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let recovered = contents(&db);
    // Everything up to the last acknowledged durability point must be there.
    let durable_prefix = steps[..first_unacknowledged]
        .iter()
        .rposition(Step::makes_durable)
        .map_or(0, |i| i + 1);
    let mut model = Model::new();
    for step in &steps[..durable_prefix] {
        step.apply(&mut model);
    }
    // The failed step itself may or may not have reached the disk.
    let last_possible = (first_unacknowledged + 1).min(steps.len());
    let mut matched = model == recovered;
    for step in &steps[durable_prefix..last_possible] {
        if matched {
            break;
        }
        step.apply(&mut model);
        matched = model == recovered;
    }
    assert!(
        matched,
        "{context}: recovered state ({} keys) matches no prefix between {durable_prefix} and {last_possible} steps",
        recovered.len()
    );
    // The recovered database is fully usable.
    db.put(b"after-recovery", b"ok", WriteOptions { sync: true })
        .unwrap();
    assert_eq!(db.get(b"after-recovery").unwrap(), Some(b"ok".to_vec()));
}

fn explore(seed: u64, steps: usize, crash_points: u64, mode_of: impl Fn(u64) -> CrashMode) -> u64 {
    let steps = workload(seed, steps);
    // A clean run tells how many filesystem operations the workload takes.
    let fs = CrashFs::new();
    assert_eq!(
        run_until_death(&fs, &steps),
        steps.len(),
        "the clean run must succeed"
    );
    let total = fs.operation_count();
    let stride = (total / crash_points).max(1);
    let mut explored = 0;
    let mut k = 0;
    while k <= total {
        let fs = CrashFs::new();
        fs.crash_after_operations(k);
        let first_unacknowledged = run_until_death(&fs, &steps);
        let mode = mode_of(k);
        fs.crash(mode);
        check_recovery(
            &fs,
            &steps,
            first_unacknowledged,
            &format!("seed {seed}, crash after operation {k} of {total}, {mode:?}"),
        );
        explored += 1;
        k += stride;
    }
    explored
}

#[test]
fn crash_at_every_stage_loses_no_acknowledged_write() {
    let mut explored = 0;
    for seed in 0..10 {
        explored += explore(seed, 300, 150, |_| CrashMode::DropUnsynced);
    }
    println!("explored {explored} crash points (drop unsynced data)");
    assert!(explored >= 1000, "only {explored} crash points");
}

#[test]
fn torn_tails_are_truncated_not_misread() {
    let mut explored = 0;
    for seed in 100..110 {
        explored += explore(seed, 300, 150, |k| CrashMode::TornTail { seed: k });
    }
    println!("explored {explored} crash points (torn tails)");
    assert!(explored >= 1000, "only {explored} crash points");
}

#[test]
fn a_failed_sync_poisons_writes_until_reopen() {
    let fs = CrashFs::new();
    let db = Db::open(Path::new(DB), options(&fs)).unwrap();
    db.put(b"a", b"1", WriteOptions { sync: true }).unwrap();
    fs.set_fail_syncs(true);
    let err = db.put(b"b", b"2", WriteOptions { sync: true }).unwrap_err();
    assert!(matches!(err, raftwood_lsm::Error::Io { .. }), "{err}");
    fs.set_fail_syncs(false);
    // The device works again, but the WAL's tail is unknown: fail-stop.
    let err = db.put(b"c", b"3", WriteOptions { sync: true }).unwrap_err();
    assert!(matches!(err, raftwood_lsm::Error::Poisoned(_)), "{err}");
    assert!(matches!(db.flush(), Err(raftwood_lsm::Error::Poisoned(_))));
    // Reads still work.
    assert_eq!(db.get(b"a").unwrap(), Some(b"1".to_vec()));
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(Path::new(DB), options(&fs)).unwrap();
    assert_eq!(db.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"c").unwrap(), None);
    db.put(b"d", b"4", WriteOptions { sync: true }).unwrap();
}

#[test]
fn a_failed_flush_poisons_writes_until_reopen() {
    let fs = CrashFs::new();
    let db = Db::open(Path::new(DB), options(&fs)).unwrap();
    for i in 0..20 {
        db.put(format!("k{i}"), b"v", WriteOptions { sync: true })
            .unwrap();
    }
    fs.set_fail_writes(true);
    assert!(db.flush().is_err());
    fs.set_fail_writes(false);
    assert!(matches!(
        db.put(b"x", b"y", WriteOptions::default()),
        Err(raftwood_lsm::Error::Poisoned(_))
    ));
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(Path::new(DB), options(&fs)).unwrap();
    assert_eq!(contents(&db).len(), 20);
}

#[test]
fn recovery_writes_a_table_each_time_the_replayed_memtable_is_full() {
    // WALs holding many memtables' worth (here: one large memtable, reopened
    // with a small limit) are replayed into several level-0 tables rather
    // than one memtable that must hold them all.
    let fs = CrashFs::new();
    let large = Options {
        memtable_size_bytes: 1 << 20,
        ..options(&fs)
    };
    let db = Db::open(Path::new(DB), large).unwrap();
    let value = vec![b'v'; 200];
    for i in 0..1500u32 {
        db.put(
            format!("key{i:06}"),
            &value,
            WriteOptions {
                sync: i % 100 == 99,
            },
        )
        .unwrap();
    }
    assert_eq!(db.stats().flushes, 0, "the data must still be in the WAL");
    drop(db);
    fs.crash(CrashMode::DropUnsynced);

    let small = Options {
        memtable_size_bytes: 32 << 10,
        level0_compaction_trigger_files: 100,
        level0_slowdown_writes_files: 100,
        level0_stop_writes_files: 200,
        ..options(&fs)
    };
    let db = Db::open(Path::new(DB), small).unwrap();
    let level0_files = db.stats().levels[0].files;
    assert!(
        level0_files >= 8,
        "recovery wrote {level0_files} level-0 tables"
    );
    for i in 0..1500u32 {
        assert_eq!(
            db.get(format!("key{i:06}")).unwrap(),
            Some(value.clone()),
            "key{i:06}"
        );
    }
}

/// The numbered files in `dir` that end in `suffix`, ascending.
fn files_ending_in(fs: &CrashFs, dir: &str, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .durable_entries(Path::new(dir))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn recovery_never_starts_its_wal_over_a_wal_it_replays() {
    // With background threads, a memtable switch starts WAL n + 1 from the
    // in-memory file counter, and writes reach it before the flush's
    // manifest edit records a counter past it. A crash there leaves the
    // manifest's next file number at n + 1 with WAL n + 1 on disk, full of
    // acknowledged writes. Recovery must not hand out n + 1 again: its new
    // WAL would be created over (truncating) that WAL while its records sat
    // in an unflushed memtable, and a crash before recovery's manifest edit
    // lost them. Built here from two databases' files: WAL n holds k0..k9
    // (sequence numbers 1..=10), WAL n + 1 holds k10..k19 (11..=20).
    let key = |i: u32| format!("k{i:02}");
    let synced = WriteOptions { sync: true };
    let build = || {
        let fs = CrashFs::new();
        let db = Db::open(Path::new(DB), options(&fs)).unwrap();
        for i in 0..10 {
            db.put(key(i), b"v", synced).unwrap();
        }
        std::mem::forget(db);
        fs.crash(CrashMode::DropUnsynced);
        let wals = files_ending_in(&fs, DB, ".wal");
        assert_eq!(wals.len(), 1, "{wals:?}");
        let number: u64 = wals[0].trim_end_matches(".wal").parse().unwrap();

        let later = CrashFs::new();
        let db = Db::open(Path::new(DB), options(&later)).unwrap();
        for i in 0..10 {
            db.put(format!("filler{i}"), b"v", synced).unwrap();
        }
        db.flush().unwrap();
        for i in 10..20 {
            db.put(key(i), b"v", synced).unwrap();
        }
        std::mem::forget(db);
        later.crash(CrashMode::DropUnsynced);
        let newest_wal = files_ending_in(&later, DB, ".wal").pop().unwrap();
        let records = later.read_raw(&Path::new(DB).join(newest_wal)).unwrap();
        fs.write_raw(
            &Path::new(DB).join(format!("{:06}.wal", number + 1)),
            &records,
        )
        .unwrap();
        fs
    };

    // A process crash (the page cache survives) at every point of the
    // recovery, then a clean recovery: all twenty writes are there.
    let mut crash_after = 0;
    loop {
        let fs = build();
        fs.crash_after_operations(crash_after);
        let recovered = Db::open(Path::new(DB), options(&fs))
            .map(std::mem::forget)
            .is_ok();
        fs.crash(CrashMode::KeepUnsynced);
        let db = Db::open(Path::new(DB), options(&fs)).unwrap();
        for i in 0..20 {
            assert_eq!(
                db.get(key(i)).unwrap(),
                Some(b"v".to_vec()),
                "{} lost by a crash after {crash_after} operations of recovery",
                key(i)
            );
        }
        if recovered {
            break;
        }
        crash_after += 1;
    }
}
