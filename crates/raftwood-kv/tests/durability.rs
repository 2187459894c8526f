#![allow(clippy::unwrap_used, reason = "tests")]
//! Determinism and durability: the same log gives byte-identical state on
//! every member, however it is batched; a crash loses only what was not
//! flushed, and replaying the log from the durable index restores it;
//! checkpoints reopen as the same store; storage failures fail-stop.

mod support;

use std::path::Path;
use std::sync::Arc;

use raftwood_kv::proto::raftwoodpb::internal_request::Request;
use raftwood_kv::{CommittedEntry, KvError, KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, CrashMode, FileSystem};
use support::{compaction, delete, op_delete, op_put, op_range, put, txn};

/// A deterministic workload of `n` entries: puts over a few hundred keys,
/// deletes, ranged deletes, txns, compactions and some empty entries.
fn workload(n: usize) -> Vec<Option<Vec<u8>>> {
    let mut state = 0x9e37_79b9_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut revision = 1i64;
    (0..n)
        .map(|i| {
            let key = format!("key/{:03}", next() % 300).into_bytes();
            let request: Request = match next() % 20 {
                0 => return None,
                1..=11 => {
                    revision += 1;
                    put(&key, format!("value {i}").as_bytes())
                }
                12..=13 => delete(&key, b""),
                14 => delete(&key, b"key/2"),
                15..=18 => txn(
                    vec![],
                    vec![op_put(&key, b"txn"), op_range(b"key/", b"key0")],
                    vec![op_delete(b"x", b"")],
                ),
                _ => compaction((revision - 20).max(1)),
            };
            Some(support::encode(request))
        })
        .collect()
}

fn entries(log: &[Option<Vec<u8>>], from: usize) -> Vec<CommittedEntry<'_>> {
    log.iter()
        .enumerate()
        .skip(from)
        .map(|(i, request)| CommittedEntry {
            index: i as u64 + 1,
            request: request.as_deref(),
        })
        .collect()
}

/// Every key and value the engine holds, read with the engine itself after
/// the store is closed.
fn raw_contents(dir: &Path, fs: Option<&Arc<CrashFs>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut options = support::options().lsm;
    options.wal_enabled = false;
    if let Some(fs) = fs {
        options.fs = Arc::clone(fs) as Arc<dyn FileSystem>;
    }
    let db = raftwood_lsm::Db::open(dir, options).unwrap();
    db.range(None, None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn the_same_log_gives_byte_identical_state_however_it_is_batched() {
    let log = workload(3000);
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let (digest_one, digest_two);
    {
        // Member one applies entry by entry with small memtables (many
        // flushes and engine compactions); member two in batches of 37 with
        // the default engine settings.
        let mut options = support::options();
        options.lsm.memtable_size_bytes = 8 << 10;
        let a = KvStore::open(one.path(), options).unwrap();
        for entry in entries(&log, 0) {
            a.apply(&[entry]).unwrap();
        }
        let b = KvStore::open(two.path(), KvOptions::default()).unwrap();
        for chunk in entries(&log, 0).chunks(37) {
            b.apply(chunk).unwrap();
        }
        assert_eq!(a.applied_index(), 3000);
        assert_eq!(a.current_revision(), b.current_revision());
        assert_eq!(a.compacted_revision(), b.compacted_revision());
        assert!(a.compacted_revision() > 1, "the workload compacts");
        digest_one = a.state_digest().unwrap();
        digest_two = b.state_digest().unwrap();
    }
    assert_eq!(digest_one, digest_two);
    let contents = raw_contents(one.path(), None);
    assert!(contents.len() > 300);
    assert_eq!(contents, raw_contents(two.path(), None));
}

#[test]
fn the_digest_tells_different_states_apart() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = support::Harness::new(dir_a.path());
    let mut b = support::Harness::new(dir_b.path());
    a.put(b"k", b"1");
    b.put(b"k", b"2");
    assert_ne!(
        a.store.state_digest().unwrap(),
        b.store.state_digest().unwrap()
    );
    b.put(b"k", b"1");
    // Same current value, different history and revision.
    assert_ne!(
        a.store.state_digest().unwrap(),
        b.store.state_digest().unwrap()
    );
}

fn open_on(fs: &Arc<CrashFs>) -> KvStore {
    let mut options = support::options();
    options.lsm.memtable_size_bytes = 16 << 10;
    options.lsm.fs = Arc::clone(fs) as Arc<dyn FileSystem>;
    KvStore::open(Path::new("/kv"), options).unwrap()
}

fn crash(fs: &Arc<CrashFs>, store: KvStore) {
    fs.crash_after_operations(0);
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
}

/// Applies `log` ten entries per call to a store with small memtables;
/// returns its durable index, which must be some but not all of the log.
fn apply_in_small_calls(store: &KvStore, log: &[Option<Vec<u8>>]) -> u64 {
    for chunk in entries(log, 0).chunks(10) {
        store.apply(chunk).unwrap();
    }
    let durable = store.durable_applied_index();
    assert!(
        durable > 0 && durable < log.len() as u64,
        "some but not all durable: {durable}"
    );
    durable
}

/// How many outcomes say the entry was already applied.
fn already_applied(outcomes: &[raftwood_kv::ApplyOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Ok(raftwood_kv::ApplyResponse::AlreadyApplied)))
        .count()
}

#[test]
fn a_crash_loses_the_unflushed_tail_and_replay_restores_it() {
    let log = workload(2000);
    let reference = {
        let fs = Arc::new(CrashFs::new());
        let store = open_on(&fs);
        store.apply(&entries(&log, 0)).unwrap();
        store.state_digest().unwrap()
    };
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs);
    let durable = apply_in_small_calls(&store, &log);
    crash(&fs, store);
    let store = open_on(&fs);
    // The applied index went back to what was durable...
    assert_eq!(store.applied_index(), durable);
    assert_ne!(store.state_digest().unwrap(), reference);
    // ...and replaying the whole log applies exactly the lost tail.
    let outcomes = store.apply(&entries(&log, 0)).unwrap();
    let skipped = already_applied(&outcomes);
    assert_eq!(skipped as u64, durable);
    assert_eq!(store.applied_index(), 2000);
    assert_eq!(store.state_digest().unwrap(), reference);
}

#[test]
fn a_checkpoint_of_the_durable_state_reopens_at_the_durable_index_and_replays_to_the_same_state() {
    // What a follower installs when a snapshot is taken without a flush:
    // the engine's flushed state, at its durable index, then the log after.
    let log = workload(2000);
    let dir = tempfile::tempdir().unwrap();
    let mut options = support::options();
    options.lsm.memtable_size_bytes = 16 << 10; // several flushes
    let store = KvStore::open(&dir.path().join("live"), options.clone()).unwrap();
    let durable = apply_in_small_calls(&store, &log);
    let target = dir.path().join("checkpoint");
    assert_eq!(store.checkpoint_durable(&target).unwrap(), durable);
    // The live store kept everything it applied.
    assert_eq!(store.applied_index(), 2000);
    let copy = KvStore::open(&target, options).unwrap();
    assert_eq!(copy.applied_index(), durable);
    let outcomes = copy.apply(&entries(&log, 0)).unwrap();
    let skipped = already_applied(&outcomes);
    assert_eq!(skipped as u64, durable);
    assert_eq!(copy.state_digest().unwrap(), store.state_digest().unwrap());
}

#[test]
fn a_crash_after_flush_loses_nothing() {
    let log = workload(500);
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs);
    store.apply(&entries(&log, 0)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.durable_applied_index(), 500);
    let digest = store.state_digest().unwrap();
    let revision = store.current_revision();
    crash(&fs, store);
    let store = open_on(&fs);
    assert_eq!(store.applied_index(), 500);
    assert_eq!(store.current_revision(), revision);
    assert_eq!(store.state_digest().unwrap(), digest);
}

#[test]
fn a_checkpoint_reopens_as_the_same_store() {
    let log = workload(800);
    let dir = tempfile::tempdir().unwrap();
    let store = support::open(&dir.path().join("live"));
    store.apply(&entries(&log, 0)[..600]).unwrap();
    let target = dir.path().join("checkpoint");
    assert_eq!(store.checkpoint(&target).unwrap(), 600);
    let digest = store.state_digest().unwrap();
    // The live store moves on; the checkpoint does not.
    store.apply(&entries(&log, 600)).unwrap();
    let copy = support::open(&target);
    assert_eq!(copy.applied_index(), 600);
    assert_eq!(copy.state_digest().unwrap(), digest);
    // Applying the rest of the log to the copy catches it up exactly.
    copy.apply(&entries(&log, 600)).unwrap();
    assert_eq!(copy.state_digest().unwrap(), store.state_digest().unwrap());
}

#[test]
fn a_storage_failure_poisons_the_store_until_reopened() {
    let log = workload(3000);
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs);
    store.apply(&entries(&log, 0)[..100]).unwrap();
    let revision = store.current_revision();
    fs.set_fail_writes(true);
    // Writes land in the memtable; the first flush fails.
    let mut failed = None;
    for chunk in entries(&log, 100).chunks(50) {
        if let Err(error) = store.apply(chunk) {
            failed = Some(error);
            break;
        }
    }
    assert!(matches!(failed, Some(KvError::Storage(_))), "{failed:?}");
    fs.set_fail_writes(false);
    assert!(matches!(
        store.apply(&entries(&log, 2999)),
        Err(KvError::Poisoned)
    ));
    // Reads keep working, at the last applied state.
    assert!(store.current_revision() >= revision);
    let read = store.range(&raftwood_kv::proto::etcdserverpb::RangeRequest {
        key: b"key/".to_vec(),
        range_end: b"key0".to_vec(),
        count_only: true,
        ..Default::default()
    });
    assert!(read.unwrap().count > 0);
    drop(store);
    fs.crash(CrashMode::DropUnsynced);
    let store = open_on(&fs);
    let from = store.applied_index() as usize;
    store.apply(&entries(&log, from)).unwrap();
    assert_eq!(store.applied_index(), 3000);
}

#[test]
fn entries_without_requests_still_advance_the_durable_index() {
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs);
    let noops: Vec<CommittedEntry<'_>> = (1..=5)
        .map(|index| CommittedEntry {
            index,
            request: None,
        })
        .collect();
    store.apply(&noops).unwrap();
    assert_eq!(store.applied_index(), 5);
    store.flush().unwrap();
    crash(&fs, store);
    let store = open_on(&fs);
    assert_eq!(store.applied_index(), 5);
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn a_damaged_record_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = support::Harness::new(dir.path());
        h.put(b"k", b"v");
    }
    {
        // Damage the live record of "k" behind the store's back.
        let mut options = support::options().lsm;
        options.wal_enabled = false;
        let db = raftwood_lsm::Db::open(dir.path(), options).unwrap();
        let mut batch = raftwood_lsm::WriteBatch::new();
        batch.put(b"lk", b"\x07short");
        batch.set_applied_index(db.applied_index());
        db.write(batch, raftwood_lsm::WriteOptions::default())
            .unwrap();
        db.flush().unwrap();
    }
    let store = support::open(dir.path());
    let read = store.range(&raftwood_kv::proto::etcdserverpb::RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    assert!(
        matches!(
            read,
            Err(raftwood_kv::RequestError::Storage(KvError::Corruption(_)))
        ),
        "{read:?}"
    );
    // Applying over it fails and fail-stops.
    let bytes = support::encode(put(b"k", b"again"));
    let index = store.applied_index() + 1;
    let applied = store.apply(&[CommittedEntry {
        index,
        request: Some(&bytes),
    }]);
    assert!(
        matches!(applied, Err(KvError::Corruption(_))),
        "{applied:?}"
    );
    assert!(matches!(
        store.apply(&[CommittedEntry {
            index,
            request: None
        }]),
        Err(KvError::Poisoned)
    ));
}

#[test]
fn a_live_entry_whose_version_is_missing_from_history_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = support::Harness::new(dir.path());
        h.put(b"k", b"v"); // revision 2
    }
    {
        // Remove k's version from history behind the store's back: the live
        // entry then names a version that is not there.
        let mut options = support::options().lsm;
        options.wal_enabled = false;
        let db = raftwood_lsm::Db::open(dir.path(), options).unwrap();
        let mut history_key = b"hk\x00\x01".to_vec();
        history_key.extend_from_slice(&(!2u64).to_be_bytes());
        assert!(
            db.get(&history_key).unwrap().is_some(),
            "the layout changed"
        );
        let mut batch = raftwood_lsm::WriteBatch::new();
        batch.delete(&history_key);
        batch.set_applied_index(db.applied_index());
        db.write(batch, raftwood_lsm::WriteOptions::default())
            .unwrap();
        db.flush().unwrap();
    }
    let store = support::open(dir.path());
    let read = |keys_only: bool| {
        store.range(&raftwood_kv::proto::etcdserverpb::RangeRequest {
            key: b"k".to_vec(),
            keys_only,
            ..Default::default()
        })
    };
    // A read of the value fails with a typed error; one of the key alone
    // needs only the live entry.
    assert!(
        matches!(
            read(false),
            Err(raftwood_kv::RequestError::Storage(KvError::Corruption(_)))
        ),
        "{:?}",
        read(false)
    );
    assert_eq!(read(true).unwrap().kvs.len(), 1);
}

/// The state digest after applying all of `log`, and the engine operations
/// its large request (the entry before the last, see
/// [`crash_inside_a_large_request`]) took when applied alone.
fn reference_run(log: &[Option<Vec<u8>>]) -> (u32, u64) {
    let large = log.len() - 2;
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs);
    for chunk in entries(&log[..large], 0).chunks(500) {
        store.apply(chunk).unwrap();
    }
    store.flush().unwrap();
    let before = fs.operation_count();
    let outcomes = store.apply(&entries(&log[..=large], large)).unwrap();
    assert!(
        outcomes[0].is_ok(),
        "{outcomes:?} at revision {}",
        store.current_revision()
    );
    let large_operations = fs.operation_count() - before;
    store.apply(&entries(log, large + 1)).unwrap();
    (store.state_digest().unwrap(), large_operations)
}

/// Crashes `log`'s large request, its entry before the last, at points
/// spread over its own writes, and checks each reopened store: either
/// nothing of the request survived (its first part was not durable), or
/// `open` finished it, never a part of it alone; `finished` checks a store
/// reopened with the request applied. The request is applied alone, or in
/// one call with the entry before it (a put, or an entry that writes
/// nothing), which must then be durable before any part of the request
/// is. Replaying the log then gives exactly the state of a run that never
/// crashed. `progress_key`: the meta key the request's parts carry; at
/// least three crashes must fall between two parts.
fn crash_inside_a_large_request(
    log: &[Option<Vec<u8>>],
    progress_key: &[u8],
    finished: impl Fn(&KvStore, u64),
) {
    let large = log.len() - 2;
    let large_index = large as u64 + 1;
    // The same log with an empty entry (as a new leader appends) right
    // before the request.
    let mut log_with_empty_entry = log.to_vec();
    log_with_empty_entry[large - 1] = None;
    let (reference, large_operations) = reference_run(log);
    let (reference_with_empty_entry, _) = reference_run(&log_with_empty_entry);
    assert!(large_operations > 10, "{large_operations}");

    let mut between_parts = 0;
    for step in 1..=9 {
        let crash_at = large_operations * step / 10;
        let (log, reference, first_of_call) = match step % 3 {
            0 => (log, reference, large),
            1 => (log, reference, large - 1),
            _ => (
                log_with_empty_entry.as_slice(),
                reference_with_empty_entry,
                large - 1,
            ),
        };
        let fs = Arc::new(CrashFs::new());
        let store = open_on(&fs);
        for chunk in entries(&log[..first_of_call], 0).chunks(500) {
            store.apply(chunk).unwrap();
        }
        store.flush().unwrap();
        fs.crash_after_operations(crash_at);
        assert!(
            store
                .apply(&entries(&log[..=large], first_of_call))
                .is_err(),
            "crash at {crash_at}"
        );
        drop(store);
        fs.crash(CrashMode::DropUnsynced);
        let engine = raw_contents(Path::new("/kv"), Some(&fs));
        if engine.iter().any(|(key, _)| key == progress_key) {
            between_parts += 1;
        }
        let store = open_on(&fs);
        match store.applied_index() {
            index if index + 2 == large_index || index + 1 == large_index => {}
            index if index == large_index => finished(&store, crash_at),
            other => panic!("crash at {crash_at}: reopened at index {other}"),
        }
        store.apply(&entries(log, 0)).unwrap();
        assert_eq!(store.applied_index(), large_index + 1);
        assert_eq!(
            store.state_digest().unwrap(),
            reference,
            "crash at {crash_at}"
        );
    }
    assert!(
        between_parts >= 3,
        "{between_parts} crash points fell after a durable part"
    );
}

/// 6,000 keys of 2 KiB, then one DeleteRange of all of them (its batch, a
/// tombstone, a live-entry delete and a revision-log change naming each
/// key, is about 37 MB: it is written in parts), then one more put.
fn large_delete_log() -> Vec<Option<Vec<u8>>> {
    let mut log: Vec<Option<Vec<u8>>> = (0..6000)
        .map(|i| {
            let mut key = format!("big/{i:05}/").into_bytes();
            key.resize(2048, b'k');
            Some(support::encode(put(&key, b"value")))
        })
        .collect();
    log.push(Some(support::encode(delete(b"big/", b"big0"))));
    log.push(Some(support::encode(put(b"after", b"x"))));
    log
}

#[test]
fn a_large_delete_cut_by_a_crash_between_its_parts_is_finished_at_open() {
    crash_inside_a_large_request(
        &large_delete_log(),
        b"sdelete_progress",
        |store, crash_at| {
            let remaining = store
                .range(&raftwood_kv::proto::etcdserverpb::RangeRequest {
                    key: b"big/".to_vec(),
                    range_end: b"big0".to_vec(),
                    count_only: true,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(remaining.count, 0, "crash at {crash_at}");
        },
    );
}

/// Four keys of 32 KiB, each put 400 times in turn and then deleted, then
/// one Compaction of all that history (its deletes, about 50 MB, are
/// written in parts of 16 MiB, each ending inside some key's versions),
/// then one more put.
fn large_compaction_log() -> Vec<Option<Vec<u8>>> {
    let keys: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut key = format!("big/{i}/").into_bytes();
            key.resize(32 << 10, b'k');
            key
        })
        .collect();
    let mut log = Vec::new();
    for _ in 0..400 {
        for key in &keys {
            log.push(Some(support::encode(put(key, b"value"))));
        }
    }
    for key in &keys {
        log.push(Some(support::encode(delete(key, b""))));
    }
    // Revision 1 is the empty store's; each entry above made one. The
    // last one's revision is left out: the crash test replaces that entry
    // with an empty one.
    let before_last_revision = log.len() as i64;
    log.push(Some(support::encode(compaction(before_last_revision))));
    log.push(Some(support::encode(put(b"after", b"x"))));
    log
}

#[test]
fn a_large_compaction_cut_by_a_crash_between_its_parts_is_finished_at_open() {
    let log = large_compaction_log();
    let revision = log.len() as i64 - 2;
    crash_inside_a_large_request(&log, b"scompaction_progress", |store, crash_at| {
        assert_eq!(store.compacted_revision(), revision, "crash at {crash_at}");
    });
}
