//! Readers, writers, flushes and compactions at the same time, with real
//! background threads on the real filesystem: atomicity of batches as seen
//! through snapshots, monotonic visibility, and a correct final state.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raftwood_lsm::{Db, Options, ReadOptions, WriteBatch, WriteOptions};

const WRITERS: u64 = 3;
const ROUNDS: u64 = 3000;

#[test]
fn batches_stay_atomic_under_concurrent_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        memtable_size_bytes: 32 << 10,
        target_file_size_bytes: 32 << 10,
        level1_size_bytes: 128 << 10,
        level0_compaction_trigger_files: 2,
        block_cache_size_bytes: 256 << 10,
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), options).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    // Each writer t writes, in one batch per round, the same round number
    // under three keys, padded so that memtables fill quickly.
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    let value = format!("{round:08}{}", "p".repeat(64));
                    let mut batch = WriteBatch::new();
                    for part in ["a", "b", "c"] {
                        batch.put(format!("w{t}/{part}"), &value);
                    }
                    if round % 7 == 0 {
                        batch.put(format!("w{t}/log/{round:08}"), b"x");
                    }
                    if round % 500 == 0 {
                        // Drop the log entries older than 250 rounds in one range delete.
                        batch.delete_range(
                            format!("w{t}/log/"),
                            format!("w{t}/log/{:08}", round - 250),
                        );
                    }
                    db.write(
                        batch,
                        WriteOptions {
                            sync: round % 100 == 0,
                        },
                    )
                    .unwrap();
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = Arc::clone(&db);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last_seen = vec![0u64; WRITERS as usize];
                let mut checks = 0u64;
                while !done.load(Ordering::Acquire) {
                    let snapshot = db.snapshot();
                    for t in 0..WRITERS {
                        let read = |part: &str| {
                            db.get_at(format!("w{t}/{part}"), &snapshot)
                                .unwrap()
                                .map(|v| {
                                    String::from_utf8(v[..8].to_vec())
                                        .unwrap()
                                        .parse::<u64>()
                                        .unwrap()
                                })
                                .unwrap_or(0)
                        };
                        let (a, b, c) = (read("a"), read("b"), read("c"));
                        assert!(a == b && b == c, "torn batch for writer {t}: {a} {b} {c}");
                        assert!(
                            a >= last_seen[t as usize],
                            "went back in time: {a} < {}",
                            last_seen[t as usize]
                        );
                        last_seen[t as usize] = a;
                    }
                    // A scan at the same snapshot agrees with the point reads.
                    let mut it = db
                        .iter(ReadOptions {
                            snapshot: Some(&snapshot),
                            lower_bound: Some(b"w0/".to_vec()),
                            upper_bound: Some(b"w0/b0".to_vec()),
                        })
                        .unwrap();
                    it.seek_to_first().unwrap();
                    let mut values = Vec::new();
                    while it.valid() {
                        if !it.key().starts_with(b"w0/log/") {
                            values.push(it.value()[..8].to_vec());
                        }
                        it.next().unwrap();
                    }
                    assert!(
                        values.windows(2).all(|w| w[0] == w[1]),
                        "scan saw a torn batch"
                    );
                    checks += 1;
                }
                checks
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let checks: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 10, "readers ran only {checks} checks");

    let stats = db.stats();
    assert!(stats.flushes >= 5 && stats.compactions >= 1, "{stats:?}");
    for t in 0..WRITERS {
        let value = db.get(format!("w{t}/a")).unwrap().unwrap();
        assert_eq!(&value[..8], format!("{ROUNDS:08}").as_bytes());
        let logs = db
            .range(
                Some(format!("w{t}/log/").as_bytes()),
                Some(format!("w{t}/log0").as_bytes()),
            )
            .unwrap()
            .count();
        // The last range delete (round 3000) removed every log key below round 2750.
        let expected = (2750..=ROUNDS).filter(|r| r % 7 == 0).count();
        assert_eq!(logs, expected, "writer {t}");
    }
    println!(
        "{checks} snapshot checks; {} flushes, {} compactions",
        stats.flushes, stats.compactions
    );
}
