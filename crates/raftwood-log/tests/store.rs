#![allow(clippy::unwrap_used, reason = "tests")]
//! The store's contract, end to end: round trips, conflict truncation,
//! snapshots, segment rolling and compaction, refusal of foreign
//! directories, fail-stop, and the real filesystem.

mod support;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use raftwood_log::{LogError, LogOptions, RaftLogStore};
use raftwood_lsm::fs::{CrashMode, FileSystem, StdFs};
use raftwood_raft::{
    ConfState, Entry, EntryPayload, HardState, PersistRequest, PersistTicket, SnapshotMeta,
};
use support::*;

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(Bytes::copy_from_slice(data.as_bytes())),
    }
}

fn request(entries: Vec<Entry>, hard_state: Option<HardState>) -> PersistRequest {
    PersistRequest {
        ticket: PersistTicket(0),
        snapshot: None,
        entries,
        hard_state,
    }
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

#[test]
fn fresh_directory_recovers_empty() {
    let fs = crash_fs();
    let (store, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered, Model::default());
    assert_eq!(store.first_index(), 1);
    assert_eq!(store.last_index(), 0);
    assert_eq!(store.segment_count(), 1);
    // The directory and its first segment are durable at once.
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (_, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered, Model::default());
}

#[test]
fn written_and_synced_state_round_trips() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &format!("v{i}"))).collect();
    store
        .write(&request(entries.clone(), Some(hard_state(1, Some(2), 3))))
        .unwrap();
    store.sync().unwrap();
    assert_eq!(store.entries(2, 4).unwrap(), entries[1..3].to_vec());
    assert_eq!(store.term(5), Some(1));
    assert!(matches!(
        store.entries(0, 2),
        Err(LogError::InvalidRequest(_))
    ));
    assert!(matches!(
        store.entries(1, 7),
        Err(LogError::InvalidRequest(_))
    ));
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (store, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.entries, entries);
    assert_eq!(recovered.hard_state, hard_state(1, Some(2), 3));
    assert_eq!(recovered.snapshot, None);
    assert_eq!(store.last_index(), 5);
}

#[test]
fn unsynced_writes_are_lost_whole_on_power_failure() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    store
        .write(&request(
            vec![entry(1, 1, "a")],
            Some(hard_state(1, None, 0)),
        ))
        .unwrap();
    store.sync().unwrap();
    store
        .write(&request(
            vec![entry(2, 2, "b")],
            Some(hard_state(2, Some(1), 1)),
        ))
        .unwrap();
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (_, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.entries, vec![entry(1, 1, "a")]);
    assert_eq!(recovered.hard_state, hard_state(1, None, 0));
}

#[test]
fn conflicting_entries_truncate_the_log_and_survive_reopen() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    let old: Vec<Entry> = (1..=6).map(|i| entry(i, 1, "old")).collect();
    store.write(&request(old.clone(), None)).unwrap();
    // A new leader of term 2 overwrites from index 4.
    let new = vec![entry(4, 2, "new4"), entry(5, 2, "new5")];
    store
        .write(&request(new.clone(), Some(hard_state(2, None, 3))))
        .unwrap();
    store.sync().unwrap();
    let expected: Vec<Entry> = old[..3].iter().cloned().chain(new).collect();
    assert_eq!(store.entries(1, 6).unwrap(), expected);
    assert_eq!(store.last_index(), 5);
    drop(store);
    let (mut store, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.entries, expected);
    // Appending continues after the truncated log.
    store
        .write(&request(vec![entry(6, 2, "six")], None))
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 6);
    assert_eq!(recovered.entries[5], entry(6, 2, "six"));
}

#[test]
fn invalid_requests_are_refused_and_nothing_is_written() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    store
        .write(&request(vec![entry(1, 2, "a"), entry(2, 2, "b")], None))
        .unwrap();
    for bad in [
        request(vec![entry(4, 2, "gap")], None),
        request(vec![entry(3, 1, "term goes down")], None),
        request(vec![entry(3, 2, "x"), entry(5, 2, "not consecutive")], None),
        request(vec![entry(0, 2, "index 0")], None),
    ] {
        assert!(
            matches!(store.write(&bad), Err(LogError::InvalidRequest(_))),
            "{bad:?}"
        );
    }
    // The store is not poisoned by a refused request.
    store.write(&request(vec![entry(3, 2, "c")], None)).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 3);
}

#[test]
fn installed_snapshot_replaces_the_log_and_survives_reopen() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    store
        .write(&request((1..=4).map(|i| entry(i, 1, "x")).collect(), None))
        .unwrap();
    let meta = SnapshotMeta {
        index: 10,
        term: 3,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    store
        .write(&PersistRequest {
            ticket: PersistTicket(2),
            snapshot: Some(meta.clone()),
            entries: vec![entry(11, 3, "after")],
            hard_state: Some(hard_state(3, None, 10)),
        })
        .unwrap();
    store.sync().unwrap();
    assert_eq!(store.first_index(), 11);
    assert_eq!(store.term(10), Some(3));
    assert!(store.entries(4, 5).is_err());
    // Entries at or below the snapshot point are refused.
    assert!(matches!(
        store.write(&request(vec![entry(10, 3, "x")], None)),
        Err(LogError::InvalidRequest(_))
    ));
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (store, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, Some(meta));
    assert_eq!(recovered.entries, vec![entry(11, 3, "after")]);
    assert_eq!(recovered.hard_state, hard_state(3, None, 10));
    assert_eq!(store.first_index(), 11);
}

#[test]
fn segments_roll_and_compaction_deletes_only_covered_closed_segments() {
    let fs = crash_fs();
    let options = small_segments();
    let (mut store, _) = open(&fs, &options).unwrap();
    let mut all = Vec::new();
    for i in 1..=40 {
        let e = entry(i, 1, "payload-of-some-length");
        all.push(e.clone());
        store
            .write(&request(vec![e], Some(hard_state(1, None, i))))
            .unwrap();
    }
    store.sync().unwrap();
    let segments_before = store.segment_count();
    assert!(segments_before > 5, "only {segments_before} segments");
    let files = fs.list_dir(Path::new(DIR)).unwrap();
    assert_eq!(files.len(), segments_before + 1, "{files:?}"); // + LOCK

    let meta = SnapshotMeta {
        index: 20,
        term: 1,
        conf_state: ConfState::with_voters([1]),
    };
    // Compaction to an entry that does not exist, or with the wrong term,
    // is refused.
    assert!(
        store
            .compact(&SnapshotMeta {
                index: 41,
                ..meta.clone()
            })
            .is_err()
    );
    assert!(
        store
            .compact(&SnapshotMeta {
                term: 2,
                ..meta.clone()
            })
            .is_err()
    );
    store.compact(&meta).unwrap();
    let deleted = segments_before - store.segment_count();
    assert!(deleted > 0);
    // Exactly the deleted segments are gone from the directory.
    let files = fs.list_dir(Path::new(DIR)).unwrap();
    assert_eq!(files.len(), store.segment_count() + 1, "{files:?}");
    assert_eq!(store.first_index(), 21);
    assert_eq!(store.entries(21, 41).unwrap(), all[20..].to_vec());

    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (mut store, recovered) = open(&fs, &options).unwrap();
    assert_eq!(recovered.snapshot, Some(meta));
    assert_eq!(recovered.entries, all[20..].to_vec());
    assert_eq!(recovered.hard_state, hard_state(1, None, 40));

    // Compacting to the last index deletes every closed segment but never
    // the active one.
    let meta = SnapshotMeta {
        index: 40,
        term: 1,
        conf_state: ConfState::with_voters([1]),
    };
    store.compact(&meta).unwrap();
    assert_eq!(store.segment_count(), 1);
    assert_eq!(store.last_index(), 40);
    drop(store);
    let (_, recovered) = open(&fs, &options).unwrap();
    assert_eq!(recovered.snapshot.map(|s| s.index), Some(40));
    assert!(recovered.entries.is_empty());
}

#[test]
fn segments_left_over_by_an_interrupted_compaction_are_ignored_and_deleted() {
    let fs = crash_fs();
    let options = small_segments();
    let (mut store, _) = open(&fs, &options).unwrap();
    let mut all = Vec::new();
    for i in 1..=30 {
        let e = entry(i, 1, "some payload bytes");
        all.push(e.clone());
        store
            .write(&request(vec![e], Some(hard_state(1, None, i))))
            .unwrap();
    }
    store.sync().unwrap();
    let first_segment = Path::new(DIR).join("0000000000000001.log");
    let first_bytes = fs.read_raw(&first_segment).unwrap();
    let meta = SnapshotMeta {
        index: 25,
        term: 1,
        conf_state: ConfState::with_voters([1]),
    };
    store.compact(&meta).unwrap();
    assert!(!fs.exists(&first_segment).unwrap());
    drop(store);
    // As if the deletion of the oldest segment had not reached the disk
    // while later ones had: a gap follows it.
    fs.write_raw(&first_segment, &first_bytes).unwrap();
    let (_, recovered) = open(&fs, &options).unwrap();
    assert_eq!(recovered.snapshot, Some(meta));
    assert_eq!(recovered.entries, all[25..].to_vec());
    assert!(
        !fs.exists(&first_segment).unwrap(),
        "the leftover is deleted"
    );
}

#[test]
fn a_foreign_directory_is_refused_untouched() {
    let fs = crash_fs();
    fs.create_dir_all(Path::new("/node/other")).unwrap();
    fs.write_raw(Path::new("/node/other/000001.log"), b"an lsm wal")
        .unwrap();
    let before = fs.list_dir(Path::new("/node/other")).unwrap();
    let result = RaftLogStore::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new("/node/other"),
        LogOptions::default(),
    );
    assert!(
        matches!(result, Err(LogError::NotALog { .. })),
        "{result:?}"
    );
    assert_eq!(fs.list_dir(Path::new("/node/other")).unwrap(), before);

    // A file where the directory should be.
    fs.write_raw(Path::new("/node/file"), b"x").unwrap();
    let result = RaftLogStore::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new("/node/file"),
        LogOptions::default(),
    );
    assert!(
        matches!(result, Err(LogError::NotALog { .. })),
        "{result:?}"
    );
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let fs = crash_fs();
    let (_store, _) = open(&fs, &LogOptions::default()).unwrap();
    assert!(matches!(
        open(&fs, &LogOptions::default()),
        Err(LogError::Io { .. })
    ));
}

#[test]
fn a_failed_write_or_sync_poisons_the_store_until_reopened() {
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    store.write(&request(vec![entry(1, 1, "a")], None)).unwrap();
    fs.set_fail_syncs(true);
    assert!(matches!(store.sync(), Err(LogError::Io { .. })));
    fs.clear_faults();
    // Even though the filesystem works again, the store refuses.
    assert!(matches!(store.sync(), Err(LogError::Poisoned(_))));
    assert!(matches!(
        store.write(&request(vec![entry(2, 1, "b")], None)),
        Err(LogError::Poisoned(_))
    ));
    assert!(matches!(
        store.compact(&SnapshotMeta::default()),
        Err(LogError::Poisoned(_))
    ));
    drop(store);
    let (mut store, recovered) = open(&fs, &LogOptions::default()).unwrap();
    assert!(recovered.entries.len() <= 1);

    fs.set_fail_writes(true);
    let next = store.last_index() + 1;
    assert!(matches!(
        store.write(&request(vec![entry(next, 1, "c")], None)),
        Err(LogError::Io { .. })
    ));
    fs.clear_faults();
    assert!(matches!(store.sync(), Err(LogError::Poisoned(_))));
}

#[test]
fn a_process_restart_makes_what_it_recovered_durable() {
    // A process that crashed left unsynced writes in the page cache; the
    // next incarnation recovers them and may act on them, so they must not
    // vanish in a later power failure.
    let fs = crash_fs();
    let (mut store, _) = open(&fs, &LogOptions::default()).unwrap();
    store
        .write(&request(
            vec![entry(1, 1, "a"), entry(2, 1, "b")],
            Some(hard_state(1, Some(1), 0)),
        ))
        .unwrap();
    drop(store); // no sync: a process crash
    let (store, first) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(first.entries.len(), 2);
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (_, second) = open(&fs, &LogOptions::default()).unwrap();
    assert_eq!(second, first);
}

#[test]
fn the_real_filesystem_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let fs = Arc::new(StdFs) as Arc<dyn FileSystem>;
    let options = LogOptions {
        segment_size_bytes: 4096,
        ..LogOptions::default()
    };
    let (mut store, recovered) =
        RaftLogStore::open(Arc::clone(&fs), &path, options.clone()).unwrap();
    assert_eq!(recovered, Model::default());
    let mut expected = Vec::new();
    for i in 1..=200 {
        let e = entry(i, 1 + i / 50, &"x".repeat((i % 37) as usize));
        expected.push(e.clone());
        store
            .write(&request(vec![e], Some(hard_state(1 + i / 50, Some(1), i))))
            .unwrap();
        if i % 10 == 0 {
            store.sync().unwrap();
        }
    }
    store.sync().unwrap();
    assert!(store.segment_count() > 2);
    drop(store);
    let (store, recovered) = RaftLogStore::open(fs, &path, options).unwrap();
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state, hard_state(5, Some(1), 200));
    assert_eq!(store.last_index(), 200);
}

#[test]
fn workloads_match_the_model_across_reopens() {
    for seed in 0..20 {
        let fs = crash_fs();
        let options = small_segments();
        let (mut store, _) = open(&fs, &options).unwrap();
        let mut model = Model::default();
        for op in workload(seed, 150, true) {
            match op {
                Op::Write(request) => {
                    store.write(&request).unwrap();
                    model_write(&mut model, &request);
                }
                Op::Sync => store.sync().unwrap(),
                Op::Compact(meta) => {
                    store.compact(&meta).unwrap();
                    model_compact(&mut model, &meta);
                }
                Op::Reopen => {
                    drop(store);
                    let (reopened, recovered) = open(&fs, &options).unwrap();
                    assert_eq!(recovered, model, "seed {seed}");
                    store = reopened;
                }
            }
            assert_store_matches(&store, &model);
        }
    }
}

#[test]
fn the_store_can_move_to_a_persistence_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<RaftLogStore>();
    assert_send::<LogError>();
}

#[test]
fn the_active_segment_is_zero_filled_ahead_of_its_writes() {
    let fs = crash_fs();
    let options = LogOptions {
        zero_ahead_bytes: 1000,
        ..LogOptions::default()
    };
    let (mut store, _) = open(&fs, &options).unwrap();
    // A new segment is its header (under 200 bytes) and 1,000 durable
    // zeros.
    let (path, bytes) = active_segment(&fs);
    assert!((1000..1200).contains(&bytes.len()), "{}", bytes.len());
    assert!(bytes[200..].iter().all(|&b| b == 0));
    assert_eq!(fs.durable_raw(&path).unwrap(), bytes);

    // Writes overwrite the zeros without growing the file, until one would
    // run past them: that one zeros 1,000 bytes past its own end.
    let mut expected = Vec::new();
    let mut sizes = Vec::new();
    for i in 1..=40 {
        let e = entry(i, 1, &"v".repeat(60));
        expected.push(e.clone());
        store
            .write(&request(vec![e], Some(hard_state(1, Some(1), i))))
            .unwrap();
        store.sync().unwrap();
        sizes.push(fs.file_size(&path).unwrap());
    }
    let growths = sizes.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        (1..=10).contains(&growths),
        "the file grows once per 1,000 bytes of log, not per write: {sizes:?}"
    );

    // What was synced survives a power cut, zeros and all, and recovery
    // stops at the zeros.
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let (store, recovered) = open(&fs, &options).unwrap();
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state, hard_state(1, Some(1), 40));
    assert_eq!(store.last_index(), 40);
}

#[test]
fn zero_ahead_stops_at_the_segment_size_and_can_be_turned_off() {
    for (zero_ahead_bytes, segment_size_bytes) in [(0, 4096), (100_000, 700)] {
        let fs = crash_fs();
        let options = LogOptions {
            zero_ahead_bytes,
            segment_size_bytes,
            ..LogOptions::default()
        };
        let (mut store, _) = open(&fs, &options).unwrap();
        let mut sizes = vec![active_segment(&fs).1.len() as u64];
        for i in 1..=5 {
            store
                .write(&request(
                    vec![entry(i, 1, "abc")],
                    Some(hard_state(1, None, i)),
                ))
                .unwrap();
            store.sync().unwrap();
            sizes.push(active_segment(&fs).1.len() as u64);
        }
        if zero_ahead_bytes == 0 {
            assert!(
                sizes.windows(2).all(|w| w[1] > w[0]),
                "every write grows the file when turned off: {sizes:?}"
            );
        } else {
            assert!(
                sizes.iter().all(|&size| size == segment_size_bytes),
                "zeros up to the segment size only: {sizes:?}"
            );
        }
    }
}

#[test]
fn zeros_before_valid_records_are_a_torn_write_unless_a_later_write_says_they_were_synced() {
    // Write 1 and write 2, each synced; optionally write 3, synced. Then
    // zero the start of write 2 (as a power cut during its sync could, when
    // it overwrote the zero tail and a later block of it reached the disk).
    for with_third_write in [false, true] {
        let fs = crash_fs();
        let options = LogOptions::default();
        let (mut store, _) = open(&fs, &options).unwrap();
        let mut write_synced = |index: u64, data: &str| {
            store
                .write(&request(
                    vec![entry(index, 1, data)],
                    Some(hard_state(1, None, index)),
                ))
                .unwrap();
            store.sync().unwrap();
        };
        write_synced(1, "first");
        let (path, before) = active_segment(&fs);
        write_synced(2, "second");
        let (_, after) = active_segment(&fs);
        // Write 2 starts at the first byte that changed.
        let first_end = before.iter().zip(&after).position(|(a, b)| a != b).unwrap();
        if with_third_write {
            write_synced(3, "third");
        }
        drop(store);
        let mut damaged = active_segment(&fs).1;
        // Write 2's first record (its `Synced` record, 30 bytes) reads as
        // zeros; its later records are intact.
        assert!(first_end > 60, "write 1 ends at {first_end}");
        damaged[first_end..first_end + 30].fill(0);
        fs.write_raw(&path, &damaged).unwrap();
        let opened = open(&fs, &options);
        if with_third_write {
            // Write 3 recorded that write 2 was durable: damage to synced
            // bytes, which strict recovery refuses.
            assert!(
                matches!(opened, Err(LogError::Corruption { .. })),
                "{opened:?}"
            );
        } else {
            // Nothing says write 2 was ever synced: a torn write, cut.
            let (_, recovered) = opened.unwrap();
            assert_eq!(recovered.entries, vec![entry(1, 1, "first")]);
            assert_eq!(recovered.hard_state, hard_state(1, None, 1));
        }
    }
}
