#![allow(clippy::unwrap_used, reason = "tests")]
//! Crash at every filesystem operation of random workloads, on `CrashFs`:
//! power cuts that drop unsynced data and directory entries, torn tails,
//! and process crashes. After each crash the log must reopen, hold every
//! state acknowledged by a `sync`, be exactly the state after some complete
//! write (never a mix, never corrupt data), and keep working.

mod support;

use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::{CrashFs, CrashMode};
use raftwood_raft::{Entry, EntryPayload, PersistRequest, PersistTicket};
use support::*;

/// What a run up to the crash produced: every state the log may be
/// recovered in, and how many of them (a prefix) a sync acknowledged.
struct Run {
    /// `candidates[i]` is the log after the i-th completed write or
    /// compaction; the last one may be a write that failed half-way.
    candidates: Vec<Model>,
    /// `candidates[acknowledged..]` are the states recovery may return.
    acknowledged: usize,
}

fn run_workload(fs: &CrashFs, options: &LogOptions, ops: &[Op]) -> Run {
    let mut run = Run {
        candidates: vec![Model::default()],
        acknowledged: 0,
    };
    let Ok((mut store, _)) = open(fs, options) else {
        return run;
    };
    for op in ops {
        let current = run.candidates.last().unwrap().clone();
        match op {
            Op::Write(request) => {
                let mut next = current;
                model_write(&mut next, request);
                let result = store.write(request);
                run.candidates.push(next);
                if result.is_err() {
                    return run;
                }
            }
            Op::Sync => {
                if store.sync().is_err() {
                    return run;
                }
                run.acknowledged = run.candidates.len() - 1;
            }
            Op::Compact(meta) => {
                let mut next = current;
                model_compact(&mut next, meta);
                let result = store.compact(meta);
                run.candidates.push(next);
                if result.is_err() {
                    return run;
                }
                run.acknowledged = run.candidates.len() - 1;
            }
            Op::Reopen => {
                drop(store);
                match open(fs, options) {
                    Ok((reopened, recovered)) => {
                        // No crash: everything written is there, and durable
                        // from now on.
                        assert_eq!(&recovered, run.candidates.last().unwrap());
                        run.acknowledged = run.candidates.len() - 1;
                        store = reopened;
                    }
                    Err(_) => return run,
                }
            }
        }
    }
    run
}

/// Appends one entry after `recovered`'s log and syncs it.
fn append_after(store: &mut RaftLogStore, recovered: &Model) -> Model {
    let last = model_last_index(recovered);
    let term = recovered
        .entries
        .last()
        .map_or(0, |e| e.term)
        .max(recovered.snapshot.as_ref().map_or(0, |s| s.term))
        .max(1);
    let request = PersistRequest {
        ticket: PersistTicket(u64::MAX),
        snapshot: None,
        entries: vec![Entry {
            term,
            index: last + 1,
            payload: EntryPayload::Command(bytes::Bytes::from_static(b"after the crash")),
        }],
        hard_state: None,
    };
    store.write(&request).unwrap();
    store.sync().unwrap();
    let mut expected = recovered.clone();
    model_write(&mut expected, &request);
    expected
}

fn check_crash_point(seed: u64, ops: &[Op], options: &LogOptions, crash_at: u64, mode: CrashMode) {
    let fs = crash_fs();
    fs.crash_after_operations(crash_at);
    let run = run_workload(&fs, options, ops);
    fs.crash(mode);
    let context = format!("seed {seed}, crash after {crash_at} operations, {mode:?}");
    let (mut store, recovered) = match open(&fs, options) {
        Ok(opened) => opened,
        Err(error) => panic!("{context}: reopening failed: {error}"),
    };
    let found = run.candidates[run.acknowledged..]
        .iter()
        .position(|candidate| *candidate == recovered);
    assert!(
        found.is_some(),
        "{context}: recovered a state that is not one written at or after the last \
         acknowledged one ({} candidates, {} acknowledged)\nrecovered: {recovered:?}\nacknowledged: {:?}",
        run.candidates.len(),
        run.acknowledged,
        run.candidates[run.acknowledged]
    );
    assert_store_matches(&store, &recovered);

    // The recovered log keeps working, and what was recovered stays durable.
    let expected = append_after(&mut store, &recovered);
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (_, again) = open(&fs, options).unwrap();
    assert_eq!(
        again, expected,
        "{context}: after writing past the recovered log"
    );
}

#[test]
fn every_crash_point_of_random_workloads_recovers_an_acknowledged_state() {
    let options = small_segments();
    let mut explored = 0u64;
    for seed in 0..8 {
        let ops = workload(seed, 80, true);
        // How many filesystem operations the whole workload takes.
        let fs = crash_fs();
        let before = fs.operation_count();
        let run = run_workload(&fs, &options, &ops);
        assert_eq!(
            run.candidates.len() - 1,
            ops.iter()
                .filter(|op| matches!(op, Op::Write(_) | Op::Compact(_)))
                .count()
        );
        let total = fs.operation_count() - before;
        assert!(total > 50, "seed {seed}: only {total} operations");
        for crash_at in 0..=total {
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::TornTail {
                    seed: seed * 1000 + crash_at,
                },
                CrashMode::TornBlocks {
                    seed: seed * 1000 + crash_at,
                },
                CrashMode::KeepUnsynced,
            ] {
                check_crash_point(seed, &ops, &options, crash_at, mode);
                explored += 1;
            }
        }
    }
    println!("explored {explored} crash points");
    assert!(explored > 500);
}

#[test]
fn a_torn_tail_is_cut_and_the_next_recovery_ignores_it() {
    // Crash while an unsynced write is on its way to disk, many times over:
    // the torn bytes must never resurface as corruption in a later recovery,
    // even though the segment holding them is never rewritten.
    let options = small_segments();
    let fs = crash_fs();
    let mut model = Model::default();
    for round in 0..30u64 {
        let (mut store, recovered) = open(&fs, &options).unwrap();
        assert_eq!(recovered, model, "round {round}");
        model = append_after(&mut store, &recovered);
        // An unsynced write, then a torn crash.
        let last = model_last_index(&model);
        let request = PersistRequest {
            ticket: PersistTicket(round),
            snapshot: None,
            entries: vec![Entry {
                term: 1,
                index: last + 1,
                payload: EntryPayload::Command(bytes::Bytes::from(vec![round as u8; 100])),
            }],
            hard_state: None,
        };
        store.write(&request).unwrap();
        drop(store);
        fs.crash(CrashMode::TornTail { seed: round });
        let (_, recovered) = open(&fs, &options).unwrap();
        // Either the write survived whole or not at all.
        let mut with_write = model.clone();
        model_write(&mut with_write, &request);
        assert!(
            recovered == model || recovered == with_write,
            "round {round}"
        );
        model = recovered;
    }
}

#[test]
fn blocks_of_unsynced_writes_lost_out_of_order_over_the_zero_tail_are_a_torn_write() {
    // Synced writes, then unsynced writes of several 512-byte blocks over
    // the zero tail, then a power cut that keeps some of their blocks and
    // loses others, in no order. Recovery must cut them as a torn write,
    // never call it corruption, and never lose what was synced.
    let options = LogOptions::default();
    let mut holes_before_data = 0;
    for seed in 0..200u64 {
        let fs = crash_fs();
        let (mut store, _) = open(&fs, &options).unwrap();
        let mut model = Model::default();
        let mut next_index = 1;
        let mut write = |store: &mut RaftLogStore, model: &mut Model, bytes: usize| {
            let request = PersistRequest {
                ticket: PersistTicket(next_index),
                snapshot: None,
                entries: vec![Entry {
                    term: 1,
                    index: next_index,
                    payload: EntryPayload::Command(bytes::Bytes::from(vec![0xa5; bytes])),
                }],
                hard_state: None,
            };
            next_index += 1;
            store.write(&request).unwrap();
            model_write(model, &request);
        };
        for _ in 0..3 {
            write(&mut store, &mut model, 700);
        }
        store.sync().unwrap();
        let acknowledged = model.clone();
        let mut candidates = vec![model.clone()];
        for _ in 0..4 {
            write(&mut store, &mut model, 900 + (seed as usize % 7) * 100);
            candidates.push(model.clone());
        }
        drop(store);
        let (path, written) = active_segment(&fs);
        let durable = fs.durable_raw(&path).unwrap();
        fs.crash(CrashMode::TornBlocks { seed });
        let after = fs.read_raw(&path).unwrap();
        // Was a block of new bytes lost while a later one was kept?
        let blocks = written.len().div_ceil(512);
        let block =
            |bytes: &[u8], b: usize| bytes[b * 512..((b + 1) * 512).min(bytes.len())].to_vec();
        let changed: Vec<usize> = (0..blocks)
            .filter(|&b| block(&written, b) != block(&durable, b))
            .collect();
        let lost = changed
            .iter()
            .position(|&b| block(&after, b) == block(&durable, b));
        let kept_later = lost.is_some_and(|i| {
            changed[i + 1..]
                .iter()
                .any(|&b| block(&after, b) == block(&written, b))
        });
        holes_before_data += usize::from(kept_later);

        let (_, recovered) = match open(&fs, &options) {
            Ok(opened) => opened,
            Err(error) => panic!("seed {seed}: {error}"),
        };
        assert!(
            candidates.contains(&recovered),
            "seed {seed}: recovered a state never written (acknowledged {} entries)",
            acknowledged.entries.len()
        );
    }
    assert!(
        holes_before_data > 20,
        "only {holes_before_data} crashes lost a block before a kept one"
    );
}
