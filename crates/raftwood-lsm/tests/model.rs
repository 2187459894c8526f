//! Model-based test: random operations against the engine and against a
//! `BTreeMap`, compared after every read. Runs on the in-memory `CrashFs`
//! with inline background work, so every case is deterministic.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use raftwood_lsm::fs::CrashFs;
use raftwood_lsm::{Db, Options, ReadOptions, Snapshot, WriteBatch, WriteOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    DeleteRange(u8, u8),
    Batch(Vec<(u8, Option<u16>)>),
    Get(u8),
    Scan {
        lower: Option<u8>,
        upper: Option<u8>,
        reverse: bool,
    },
    TakeSnapshot,
    CheckSnapshot(u8),
    DropSnapshot,
    Flush,
    CompactAll,
    CompactRange(u8, u8),
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

fn value(v: u16, k: u8) -> Vec<u8> {
    // Values of varied length, some long enough to fill blocks quickly.
    let mut out = format!("v{v}-{k}-").into_bytes();
    out.resize(8 + (v as usize % 97), b'x');
    out
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0u8..80;
    prop_oneof![
        30 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => k.clone().prop_map(Op::Delete),
        3 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::DeleteRange(a.min(b), a.max(b).saturating_add(1))),
        5 => proptest::collection::vec((k.clone(), proptest::option::of(any::<u16>())), 1..6).prop_map(Op::Batch),
        15 => k.clone().prop_map(Op::Get),
        5 => (proptest::option::of(k.clone()), proptest::option::of(k.clone()), any::<bool>())
            .prop_map(|(lower, upper, reverse)| Op::Scan { lower, upper, reverse }),
        2 => Just(Op::TakeSnapshot),
        3 => k.clone().prop_map(Op::CheckSnapshot),
        1 => Just(Op::DropSnapshot),
        2 => Just(Op::Flush),
        1 => Just(Op::CompactAll),
        1 => (k.clone(), k).prop_map(|(a, b)| Op::CompactRange(a.min(b), a.max(b))),
        1 => Just(Op::Reopen),
    ]
}

fn options(fs: &CrashFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        memtable_size_bytes: 4 << 10,
        target_file_size_bytes: 4 << 10,
        level1_size_bytes: 16 << 10,
        level_size_multiplier: 4,
        level0_compaction_trigger_files: 3,
        num_levels: 4,
        block_cache_size_bytes: 64 << 10,
        background_threads: false,
        table: raftwood_lsm::TableOptions {
            block_size_bytes: 256,
            block_restart_interval: 4,
            ..Default::default()
        },
        ..Options::default()
    }
}

fn scan_model(
    model: &Model,
    lower: Option<&[u8]>,
    upper: Option<&[u8]>,
    reverse: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<_> = model
        .iter()
        .filter(|(k, _)| {
            lower.is_none_or(|l| k.as_slice() >= l) && upper.is_none_or(|u| k.as_slice() < u)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if reverse {
        out.reverse();
    }
    out
}

static OPERATIONS_RUN: AtomicU64 = AtomicU64::new(0);

/// Runs `ops`; returns (flushes, compactions) seen by the last handle plus
/// the operations run, so callers can check the engine was exercised.
fn run(ops: Vec<Op>) -> Result<(u64, u64), TestCaseError> {
    let fs = CrashFs::new();
    let path = std::path::Path::new("/db");
    let mut db = Db::open(path, options(&fs)).unwrap();
    let mut model = Model::new();
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    let no_sync = WriteOptions { sync: false };
    let (mut flushes, mut compactions) = (0, 0);
    for op in ops {
        OPERATIONS_RUN.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::Put(k, v) => {
                db.put(key(k), value(v, k), no_sync).unwrap();
                model.insert(key(k), value(v, k));
            }
            Op::Delete(k) => {
                db.delete(key(k), no_sync).unwrap();
                model.remove(&key(k));
            }
            Op::DeleteRange(a, b) => {
                db.delete_range(key(a), key(b), no_sync).unwrap();
                model.retain(|k, _| {
                    !(k.as_slice() >= key(a).as_slice() && k.as_slice() < key(b).as_slice())
                });
            }
            Op::Batch(items) => {
                let mut batch = WriteBatch::new();
                for (k, v) in items {
                    match v {
                        Some(v) => {
                            batch.put(key(k), value(v, k));
                            model.insert(key(k), value(v, k));
                        }
                        None => {
                            batch.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                db.write(batch, WriteOptions { sync: true }).unwrap();
            }
            Op::Get(k) => {
                prop_assert_eq!(db.get(key(k)).unwrap(), model.get(&key(k)).cloned());
            }
            Op::Scan {
                lower,
                upper,
                reverse,
            } => {
                let lower = lower.map(key);
                let upper = upper.map(key);
                let got: Vec<_> = if reverse {
                    db.range_rev(lower.as_deref(), upper.as_deref())
                } else {
                    db.range(lower.as_deref(), upper.as_deref())
                }
                .unwrap()
                .map(|e| e.unwrap())
                .collect();
                prop_assert_eq!(
                    got,
                    scan_model(&model, lower.as_deref(), upper.as_deref(), reverse)
                );
            }
            Op::TakeSnapshot => {
                if snapshots.len() < 4 {
                    snapshots.push((db.snapshot(), model.clone()));
                }
            }
            Op::CheckSnapshot(k) => {
                if let Some((snapshot, frozen)) = snapshots.first() {
                    prop_assert_eq!(
                        db.get_at(key(k), snapshot).unwrap(),
                        frozen.get(&key(k)).cloned()
                    );
                    let mut it = db
                        .iter(ReadOptions {
                            snapshot: Some(snapshot),
                            ..Default::default()
                        })
                        .unwrap();
                    it.seek_to_first().unwrap();
                    let mut seen = Vec::new();
                    while it.valid() {
                        seen.push((it.key().to_vec(), it.value().to_vec()));
                        it.next().unwrap();
                    }
                    prop_assert_eq!(seen, scan_model(frozen, None, None, false));
                }
            }
            Op::DropSnapshot => {
                if !snapshots.is_empty() {
                    snapshots.remove(0);
                }
            }
            Op::Flush => db.flush().unwrap(),
            Op::CompactAll => db.compact_range(None, None).unwrap(),
            Op::CompactRange(a, b) => db.compact_range(Some(&key(a)), Some(&key(b))).unwrap(),
            Op::Reopen => {
                let stats = db.stats();
                flushes += stats.flushes;
                compactions += stats.compactions;
                snapshots.clear();
                db.close().unwrap();
                drop(db);
                db = Db::open(path, options(&fs)).unwrap();
            }
        }
    }
    // Final full comparison, after a reopen from what is on "disk".
    snapshots.clear();
    let stats = db.stats();
    flushes += stats.flushes;
    compactions += stats.compactions;
    drop(db);
    let db = Db::open(path, options(&fs)).unwrap();
    let got: Vec<_> = db.range(None, None).unwrap().map(|e| e.unwrap()).collect();
    prop_assert_eq!(got, scan_model(&model, None, None, false));
    let levels_used = db.stats().levels.iter().filter(|l| l.files > 0).count() as u64;
    Ok((flushes, compactions.max(levels_used.saturating_sub(1))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap(ops in proptest::collection::vec(op_strategy(), 50..400)) {
        run(ops)?;
    }
}

#[test]
fn a_long_deterministic_run_exercises_flush_and_compaction() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let ops: Vec<Op> = (0..20_000)
        .map(|_| op_strategy().new_tree(&mut runner).unwrap().current())
        .collect();
    let (flushes, compactions) = run(ops).unwrap();
    println!(
        "20000 operations: {flushes} flushes, {compactions} compactions; {} operations in this process",
        OPERATIONS_RUN.load(Ordering::Relaxed)
    );
    assert!(flushes > 20, "only {flushes} flushes");
    assert!(compactions > 5, "only {compactions} compactions");
}
