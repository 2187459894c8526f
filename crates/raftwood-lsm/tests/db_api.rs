//! The public API end to end, on the real filesystem.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use raftwood_lsm::{Db, Error, Options, ReadOptions, WriteBatch, WriteOptions};

const SYNC: WriteOptions = WriteOptions { sync: true };
const NO_SYNC: WriteOptions = WriteOptions { sync: false };

fn small_options() -> Options {
    Options {
        memtable_size_bytes: 16 << 10,
        target_file_size_bytes: 32 << 10,
        level1_size_bytes: 128 << 10,
        level0_compaction_trigger_files: 2,
        block_cache_size_bytes: 1 << 20,
        ..Options::default()
    }
}

fn collect(db: &Db, start: Option<&[u8]>, end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.range(start, end).unwrap().map(|e| e.unwrap()).collect()
}

#[test]
fn put_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Db::open(&path, small_options()).unwrap();
        db.put(b"a", b"1", SYNC).unwrap();
        db.put(b"b", b"2", NO_SYNC).unwrap();
        db.delete(b"a", SYNC).unwrap();
        assert_eq!(db.get(b"a").unwrap(), None);
        assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
        db.close().unwrap();
        assert!(matches!(db.get(b"b"), Err(Error::Closed)));
    }
    let db = Db::open(&path, small_options()).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn many_writes_flush_compact_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let key = |i: u32| format!("key{:06}", (i * 7919) % 5000).into_bytes();
    {
        let db = Db::open(&path, small_options()).unwrap();
        for i in 0..20_000u32 {
            db.put(key(i), format!("value-{i}-{}", "x".repeat(40)), NO_SYNC)
                .unwrap();
        }
        db.flush().unwrap();
        let stats = db.stats();
        assert!(stats.flushes > 5, "{stats:?}");
        assert!(stats.compactions > 0, "{stats:?}");
        db.compact_range(None, None).unwrap();
        let stats = db.stats();
        assert_eq!(stats.levels[0].files, 0, "{stats:?}");
        assert!(stats.write_amplification() > 1.0);
    }
    let db = Db::open(&path, small_options()).unwrap();
    for i in 15_000..20_000u32 {
        let expected = format!("value-{i}-{}", "x".repeat(40)).into_bytes();
        assert_eq!(db.get(key(i)).unwrap(), Some(expected));
    }
    assert_eq!(collect(&db, None, None).len(), 5000);
}

#[test]
fn batches_are_atomic_and_range_deletes_hide_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    for k in [b"a", b"b", b"c", b"d", b"e"] {
        db.put(k, k, NO_SYNC).unwrap();
    }
    db.flush().unwrap();
    let mut batch = WriteBatch::new();
    batch
        .delete_range(b"b", b"d")
        .put(b"c2", b"new")
        .delete(b"e");
    db.write(batch, SYNC).unwrap();
    let keys: Vec<Vec<u8>> = collect(&db, None, None)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"c2".to_vec(), b"d".to_vec()]);
    assert_eq!(db.get(b"b").unwrap(), None);
    // A write after the range delete is visible again.
    db.put(b"b", b"again", NO_SYNC).unwrap();
    assert_eq!(db.get(b"b").unwrap(), Some(b"again".to_vec()));
    db.compact_range(None, None).unwrap();
    assert_eq!(db.get(b"b").unwrap(), Some(b"again".to_vec()));
    assert_eq!(db.get(b"c").unwrap(), None);
    assert!(matches!(
        db.delete_range(b"z", b"a", NO_SYNC),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn snapshots_see_a_frozen_view_across_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    db.put(b"k", b"old", NO_SYNC).unwrap();
    db.put(b"gone", b"here", NO_SYNC).unwrap();
    let snapshot = db.snapshot();
    db.put(b"k", b"new", NO_SYNC).unwrap();
    db.delete(b"gone", NO_SYNC).unwrap();
    db.delete_range(b"a", b"z", NO_SYNC).unwrap();
    db.flush().unwrap();
    db.compact_range(None, None).unwrap();
    assert_eq!(db.get_at(b"k", &snapshot).unwrap(), Some(b"old".to_vec()));
    assert_eq!(
        db.get_at(b"gone", &snapshot).unwrap(),
        Some(b"here".to_vec())
    );
    assert_eq!(db.get(b"k").unwrap(), None);
    let mut it = db
        .iter(ReadOptions {
            snapshot: Some(&snapshot),
            ..Default::default()
        })
        .unwrap();
    it.seek_to_first().unwrap();
    assert_eq!(it.key(), b"gone");
    it.next().unwrap();
    assert_eq!((it.key(), it.value()), (&b"k"[..], &b"old"[..]));
    it.next().unwrap();
    assert!(!it.valid());
    drop(it);
    drop(snapshot);
    db.compact_range(None, None).unwrap();
    assert_eq!(db.stats().table_size_bytes(), 0, "everything was deleted");
}

#[test]
fn iterators_respect_bounds_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    for i in 0..100u32 {
        db.put(format!("{i:03}"), format!("v{i}"), NO_SYNC).unwrap();
        if i == 50 {
            db.flush().unwrap();
        }
    }
    let forward: Vec<_> = collect(&db, Some(b"010"), Some(b"020"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(forward.len(), 10);
    assert_eq!(forward[0], b"010");
    let backward: Vec<_> = db
        .range_rev(Some(b"010"), Some(b"020"))
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    let mut reversed = forward.clone();
    reversed.reverse();
    assert_eq!(backward, reversed);

    let mut it = db.iter(ReadOptions::default()).unwrap();
    it.seek(b"0505").unwrap();
    assert_eq!(it.key(), b"051");
    it.prev().unwrap();
    assert_eq!(it.key(), b"050");
    it.seek_for_prev(b"0505").unwrap();
    assert_eq!(it.key(), b"050");
    it.next().unwrap();
    assert_eq!(it.key(), b"051");
    it.seek_to_last().unwrap();
    assert_eq!(it.key(), b"099");
}

#[test]
fn checkpoint_is_an_openable_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small_options()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:05}"), format!("v{i}"), NO_SYNC)
            .unwrap();
    }
    let checkpoint = dir.path().join("checkpoint");
    db.checkpoint(&checkpoint).unwrap();
    db.put(b"k00000", b"changed after", SYNC).unwrap();
    assert!(matches!(
        db.checkpoint(&checkpoint),
        Err(Error::InvalidArgument(_))
    ));
    let copy = Db::open(&checkpoint, small_options()).unwrap();
    assert_eq!(copy.get(b"k00000").unwrap(), Some(b"v0".to_vec()));
    assert_eq!(collect(&copy, None, None).len(), 2000);
}

#[test]
fn a_checkpoint_of_the_flushed_tables_holds_the_state_of_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        wal_enabled: false,
        ..small_options()
    };
    let db = Db::open(dir.path().join("db"), options()).unwrap();
    let write = |index: u64| {
        let mut batch = WriteBatch::new();
        batch
            .put(format!("k{index:03}"), b"v")
            .set_applied_index(index);
        db.write(batch, NO_SYNC).unwrap();
    };
    for index in 1..=10 {
        write(index);
    }
    db.flush().unwrap();
    for index in 11..=15 {
        write(index);
    }
    // Nothing flushed since index 10: the checkpoint holds 1..=10 only,
    // and says so.
    let checkpoint = dir.path().join("flushed");
    assert_eq!(db.checkpoint_flushed(&checkpoint).unwrap(), 10);
    let copy = Db::open(&checkpoint, options()).unwrap();
    assert_eq!(copy.applied_index(), 10);
    assert_eq!(collect(&copy, None, None).len(), 10);
    assert_eq!(copy.get(b"k011").unwrap(), None);
    // The source kept everything.
    assert_eq!(collect(&db, None, None).len(), 15);
}

#[test]
fn without_wal_the_applied_index_marks_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = || Options {
        wal_enabled: false,
        ..small_options()
    };
    {
        let db = Db::open(&path, options()).unwrap();
        assert_eq!(db.applied_index(), 0);
        for index in 1..=10u64 {
            let mut batch = WriteBatch::new();
            batch
                .put(format!("k{index}"), b"v")
                .set_applied_index(index);
            db.write(batch, NO_SYNC).unwrap();
        }
        db.flush().unwrap();
        assert_eq!(db.applied_index(), 10);
        let mut batch = WriteBatch::new();
        batch.put(b"k11", b"v").set_applied_index(11);
        db.write(batch, NO_SYNC).unwrap();
        assert_eq!(db.applied_index(), 10, "not durable until flushed");
        db.close().unwrap();
    }
    let db = Db::open(&path, options()).unwrap();
    assert_eq!(db.applied_index(), 11, "a clean close flushes");
    assert_eq!(db.get(b"k11").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn bad_directories_are_refused_without_being_touched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "nothing was created: {names:?}");

    let file = dir.path().join("notes.txt");
    assert!(matches!(
        Db::open(&file, Options::default()),
        Err(Error::NotADatabase { .. })
    ));

    let missing = dir.path().join("missing");
    let no_create = Options {
        create_if_missing: false,
        ..Options::default()
    };
    assert!(matches!(
        Db::open(&missing, no_create),
        Err(Error::NotADatabase { .. })
    ));
    assert!(!missing.exists());

    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("CURRENT"), b"hello").unwrap();
    assert!(matches!(
        Db::open(&garbage, Options::default()),
        Err(Error::NotADatabase { .. })
    ));
}

#[test]
fn a_second_handle_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::Locked(_))
    ));
    db.close().unwrap();
    Db::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn oversized_keys_and_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        max_key_size_bytes: 16,
        max_value_size_bytes: 64,
        ..Options::default()
    };
    let db = Db::open(dir.path(), options).unwrap();
    assert!(matches!(
        db.put(vec![0u8; 17], b"v", NO_SYNC),
        Err(Error::KeyTooLarge { len: 17, limit: 16 })
    ));
    assert!(matches!(
        db.put(b"k", vec![0u8; 65], NO_SYNC),
        Err(Error::ValueTooLarge { len: 65, limit: 64 })
    ));
    db.put(b"", b"empty keys are allowed", NO_SYNC).unwrap();
    assert_eq!(
        db.get(b"").unwrap(),
        Some(b"empty keys are allowed".to_vec())
    );
    assert_eq!(db.stats().writes, 1, "rejected writes changed nothing");
}

#[test]
fn large_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    db.put(b"big", &big, SYNC).unwrap();
    db.flush().unwrap();
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(big.as_slice()));
}

#[test]
fn concurrent_writers_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = std::sync::Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..200 {
                    db.put(format!("t{t}-{i}"), b"v", SYNC).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = db.stats();
    assert_eq!(stats.writes, 1600);
    assert!(stats.write_groups <= stats.writes);
    assert_eq!(collect(&db, None, None).len(), 1600);
    println!(
        "1600 synced writes from 8 threads took {} groups, {} fsyncs",
        stats.write_groups, stats.wal_syncs
    );
}

#[test]
fn db_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<raftwood_lsm::Snapshot>();
}

#[test]
fn a_newer_format_version_is_refused_untouched() {
    use raftwood_lsm::fs::{CrashFs, FileSystem};
    use raftwood_lsm::log::LogWriter;
    use raftwood_lsm::version::VersionEdit;

    let fs = CrashFs::new();
    let dir = std::path::Path::new("/db");
    let options = || Options {
        fs: std::sync::Arc::new(fs.clone()),
        ..Options::default()
    };
    Db::open(dir, options()).unwrap().close().unwrap();
    // Replace the manifest with one written by a "future" version.
    let current = String::from_utf8(fs.read_raw(&dir.join("CURRENT")).unwrap()).unwrap();
    let manifest = dir.join(current.trim_end());
    let edit = VersionEdit {
        format_version: Some(99),
        next_file_number: Some(100),
        ..Default::default()
    };
    let mut encoded = Vec::new();
    edit.encode(&mut encoded);
    let mut writer = LogWriter::new(fs.create_file(&manifest).unwrap());
    writer.add_record(&encoded).unwrap();
    writer.sync().unwrap();
    let before = fs.list_dir(dir).unwrap();
    let err = Db::open(dir, options()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormatVersion {
                what: "manifest",
                found: 99,
                ..
            }
        ),
        "{err}"
    );
    let after = fs.list_dir(dir).unwrap();
    assert_eq!(
        before, after,
        "a refused open must not create or delete files"
    );
}

#[test]
fn compaction_deletes_its_inputs_once_no_reader_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        level0_compaction_trigger_files: 10,
        background_threads: false,
        ..small_options()
    };
    let db = Db::open(dir.path(), options).unwrap();
    let tables = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".sst")
            })
            .count()
    };
    for round in 0..3u32 {
        for i in 0..200u32 {
            db.put(format!("key{i:05}"), format!("value{round}"), NO_SYNC)
                .unwrap();
        }
        db.flush().unwrap();
    }
    assert!(db.stats().levels[0].files >= 3);
    db.compact_range(None, None).unwrap();
    let live: usize = db.stats().levels.iter().map(|l| l.files).sum();
    // The live tables, plus at most the previous version's (kept one edit
    // longer so that a damaged last manifest record loses nothing).
    assert!(
        tables() <= 2 * live,
        "{} tables on disk for {live} live",
        tables()
    );
    db.compact_range(None, None).unwrap();
    assert!(
        tables() <= 2 * live,
        "{} tables on disk for {live} live",
        tables()
    );
}

#[test]
fn options_that_would_stall_writes_forever_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Writes would stop at 4 level-0 files, but compaction starts only at 8.
    let options = Options {
        level0_compaction_trigger_files: 8,
        level0_slowdown_writes_files: 4,
        level0_stop_writes_files: 4,
        ..Options::default()
    };
    assert!(matches!(
        Db::open(dir.path(), options),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn cursor_seeks_earn_a_level0_compaction_below_the_file_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        level0_compaction_trigger_files: 10,
        ..small_options()
    };
    let db = Db::open(dir.path(), options).unwrap();
    for i in 0..200u32 {
        db.put(format!("key{i:05}"), b"old", NO_SYNC).unwrap();
    }
    db.flush().unwrap();
    db.compact_range(None, None).unwrap();
    for i in (0..200u32).step_by(2) {
        db.put(format!("key{i:05}"), b"new", NO_SYNC).unwrap();
    }
    db.flush().unwrap();
    let levels = db.stats().levels;
    assert_eq!(levels[0].files, 1, "{levels:?}");
    assert!(levels.iter().skip(1).any(|l| l.files > 0), "{levels:?}");

    // A seek searches the level-0 table and a deeper one; the small table's
    // budget is 100 seeks (ReadCost's floor).
    for i in 0..150u32 {
        let mut cursor = db.iter(ReadOptions::default()).unwrap();
        cursor
            .seek(format!("key{:05}", i % 200).as_bytes())
            .unwrap();
        assert!(cursor.valid());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.stats().levels[0].files > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "level 0 was never compacted: {:?}",
            db.stats().levels
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Nothing was lost on the way down.
    let entries = collect(&db, None, None);
    assert_eq!(entries.len(), 200);
    for (i, (key, value)) in entries.iter().enumerate() {
        assert_eq!(key, format!("key{i:05}").as_bytes());
        let expected: &[u8] = if i % 2 == 0 { b"new" } else { b"old" };
        assert_eq!(value.as_slice(), expected);
    }
}

#[test]
fn sequential_inserts_move_down_without_being_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        background_threads: false,
        ..small_options()
    };
    let db = Db::open(dir.path(), options).unwrap();
    for batch in 0..6u32 {
        for i in 0..300u32 {
            let key = format!("key{:06}", batch * 1000 + i);
            db.put(&key, key.as_bytes(), NO_SYNC).unwrap();
        }
        db.flush().unwrap();
    }
    let stats = db.stats();
    assert!(stats.trivial_moves > 0, "{stats:?}");
    assert_eq!(stats.compaction_bytes_written, 0, "{stats:?}");
    assert!(stats.levels[1..].iter().any(|l| l.files > 0), "{stats:?}");
    let entries = collect(&db, None, None);
    assert_eq!(entries.len(), 6 * 300);
    assert!(entries.iter().all(|(k, v)| k == v));
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
}
