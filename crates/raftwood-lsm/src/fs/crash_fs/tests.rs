//! The crash model's own tests: what survives each kind of crash.

use super::*;

fn p(path: &str) -> &Path {
    Path::new(path)
}

/// A filesystem with a durable `/db` directory.
fn fs_with_db() -> CrashFs {
    let fs = CrashFs::new();
    fs.create_dir_all(p("/db")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs
}

fn write_file(fs: &CrashFs, path: &str, data: &[u8], sync: bool) -> Box<dyn WritableFile> {
    let mut file = fs.create_file(p(path)).unwrap();
    file.append(data).unwrap();
    if sync {
        file.sync_data().unwrap();
    }
    file
}

#[test]
fn synced_data_survives_and_unsynced_data_does_not() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"synced", true);
    file.append(b"-unsynced").unwrap();
    fs.sync_dir(p("/db")).unwrap();
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced-unsynced");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced");
    assert_eq!(fs.file_size(p("/db/a")).unwrap(), 6);
}

#[test]
fn appends_overwrite_a_zero_tail_and_a_crash_keeps_its_durable_zeros() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"head", false);
    file.zero_extend(12).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(p("/db")).unwrap();
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");
    assert_eq!(fs.file_size(p("/db/a")).unwrap(), 12);
    assert_eq!(file.len(), 4, "zeros do not move the append position");

    // An append overwrites the tail from its start; extending past the
    // tail grows the file.
    file.append(b"-body-").unwrap();
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head-body-\0\0");
    let reader = fs.open_random_access(p("/db/a")).unwrap();
    assert_eq!(reader.size(), 12);
    assert_eq!(reader.read_exact_at(8, 4).unwrap(), b"y-\0\0");
    assert_eq!(
        reader.read_exact_at(11, 1).unwrap(),
        b"\0",
        "a read inside the tail"
    );
    assert!(reader.read_exact_at(9, 4).is_err());

    // Unsynced appends over durable zeros are lost, the zeros stay; an
    // unsynced extension of the tail is lost too.
    file.zero_extend(40).unwrap();
    assert_eq!(fs.file_size(p("/db/a")).unwrap(), 40);
    assert_eq!(fs.durable_raw(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"head\0\0\0\0\0\0\0\0");

    // After a sync the appended bytes are durable and so is the tail.
    let mut file = fs.create_file(p("/db/b")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    file.zero_extend(8).unwrap();
    file.append(b"abc").unwrap();
    file.sync_data().unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");

    // Re-creating a file truncates its tail; until the next sync the
    // old bytes, zeros included, are what the disk holds.
    let file = fs.create_file(p("/db/b")).unwrap();
    assert_eq!(fs.file_size(p("/db/b")).unwrap(), 0);
    assert_eq!(fs.durable_raw(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");
    drop(file);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"abc\0\0\0\0\0");
}

#[test]
fn a_torn_tail_over_durable_zeros_is_a_prefix_then_zeros() {
    for seed in 0..64 {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"head", false);
        file.zero_extend(64).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(p("/db")).unwrap();
        file.append(&[0xaa; 20]).unwrap();
        fs.crash(CrashMode::TornTail { seed });
        let after = fs.read_file(p("/db/a")).unwrap();
        assert_eq!(
            after.len(),
            64,
            "seed {seed}: the durable tail keeps the size"
        );
        assert_eq!(&after[..4], b"head", "seed {seed}");
        // Past the garbled bytes (at most 20 here), zeros up to the end.
        assert!(
            after[24..].iter().all(|&b| b == 0),
            "seed {seed}: {after:?}"
        );
    }
}

#[test]
fn torn_blocks_keep_or_lose_each_block_over_the_zero_tail_and_a_prefix_past_it() {
    let mut holes_before_kept = 0;
    for seed in 0..64 {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/a", b"synced", false);
        file.zero_extend(2048).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(p("/db")).unwrap();
        // Three and a half blocks over the zero tail, then 600 bytes
        // past it (the file grows).
        file.append(&[0xaa; 2042 + 600]).unwrap();
        fs.crash(CrashMode::TornBlocks { seed });
        let after = fs.read_file(p("/db/a")).unwrap();
        assert_eq!(&after[..6], b"synced", "seed {seed}: synced bytes stay");
        assert!(after.len() >= 2048, "seed {seed}: the durable size stays");
        let mut lost_one = false;
        for (i, block) in after[..2048].chunks(512).enumerate() {
            let new = if i == 0 { &block[6..] } else { block };
            let kept = new.iter().all(|&b| b == 0xaa);
            let lost = new.iter().all(|&b| b == 0);
            assert!(kept || lost, "seed {seed}: block {i} is whole or gone");
            holes_before_kept += usize::from(lost_one && kept);
            lost_one |= lost;
        }
        // Past the durable size only a prefix, all new bytes.
        assert!(after[2048..].iter().all(|&b| b == 0xaa), "seed {seed}");
    }
    assert!(holes_before_kept > 5, "{holes_before_kept}");
}

#[test]
fn zero_extend_is_a_write_for_fault_injection() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"x", true);
    fs.set_fail_writes(true);
    assert!(file.zero_extend(100).is_err());
    fs.clear_faults();
    assert_eq!(fs.file_size(p("/db/a")).unwrap(), 1);
    assert!(fs.flip_bit(p("/db/a"), 0, 0).is_ok());
    file.zero_extend(100).unwrap();
    assert!(
        fs.flip_bit(p("/db/a"), 50, 0).is_err(),
        "a bit in the zero tail"
    );
}

#[test]
fn sync_file_makes_content_written_through_another_handle_durable() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"synced", true);
    fs.sync_dir(p("/db")).unwrap();
    file.append(b"-page-cache").unwrap();
    drop(file);
    fs.sync_file(p("/db/a")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"synced-page-cache");

    // It is a sync: it fails while syncs fail, and a missing file or a
    // directory is an error.
    fs.set_fail_syncs(true);
    assert!(fs.sync_file(p("/db/a")).is_err());
    fs.clear_faults();
    assert!(fs.sync_file(p("/db/missing")).is_err());
    assert!(fs.sync_file(p("/db")).is_err());
}

#[test]
fn keep_unsynced_models_a_process_crash() {
    let fs = fs_with_db();
    let _file = write_file(&fs, "/db/a", b"page cache", false);
    fs.crash(CrashMode::KeepUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"page cache");
    // What survived a process crash is now durable.
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"page cache");
}

#[test]
fn a_new_entry_needs_sync_dir_even_if_its_data_was_synced() {
    let fs = fs_with_db();
    let _file = write_file(&fs, "/db/a", b"data", true);
    assert!(fs.exists(p("/db/a")).unwrap());
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.exists(p("/db/a")).unwrap());
    assert_eq!(fs.list_dir(p("/db")).unwrap(), Vec::<String>::new());

    let _file = write_file(&fs, "/db/b", b"data", true);
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"data");
}

#[test]
fn an_unsynced_directory_loses_its_whole_subtree() {
    let fs = CrashFs::new();
    fs.create_dir_all(p("/db/sub")).unwrap();
    let _file = write_file(&fs, "/db/sub/a", b"data", true);
    fs.sync_dir(p("/db/sub")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    // The root was never synced, so `/db` itself is not durable.
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.exists(p("/db")).unwrap());
}

#[test]
fn an_unsynced_removal_reappears_with_its_durable_content() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"durable", true);
    fs.sync_dir(p("/db")).unwrap();
    file.append(b"+lost").unwrap();
    fs.remove_file(p("/db/a")).unwrap();
    assert!(!fs.exists(p("/db/a")).unwrap());
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"durable");

    fs.remove_file(p("/db/a")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.exists(p("/db/a")).unwrap());
}

#[test]
fn rename_is_atomic_and_needs_sync_dir() {
    let fs = fs_with_db();
    let _old = write_file(&fs, "/db/CURRENT", b"old", true);
    fs.sync_dir(p("/db")).unwrap();
    let _new = write_file(&fs, "/db/CURRENT.tmp", b"new", true);
    fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
    assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"new");
    assert!(!fs.exists(p("/db/CURRENT.tmp")).unwrap());

    // Not synced: the rename is undone as a whole.
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"old");
    assert!(!fs.exists(p("/db/CURRENT.tmp")).unwrap());

    let _new = write_file(&fs, "/db/CURRENT.tmp", b"new", true);
    fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/CURRENT")).unwrap(), b"new");
    assert_eq!(fs.list_dir(p("/db")).unwrap(), vec!["CURRENT".to_string()]);
}

#[test]
fn a_renamed_directory_keeps_its_files_and_needs_both_parents_synced() {
    let fs = fs_with_db();
    fs.create_dir_all(p("/db/snap.tmp/kv")).unwrap();
    let _file = write_file(&fs, "/db/snap.tmp/kv/a", b"table", true);
    fs.sync_dir(p("/db/snap.tmp/kv")).unwrap();
    fs.sync_dir(p("/db/snap.tmp")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.rename(p("/db/snap.tmp"), p("/db/snap")).unwrap();
    assert_eq!(fs.read_file(p("/db/snap/kv/a")).unwrap(), b"table");
    assert!(!fs.exists(p("/db/snap.tmp")).unwrap());
    // Not synced: the old name comes back.
    fs.crash(CrashMode::DropUnsynced);
    assert!(fs.exists(p("/db/snap.tmp/kv/a")).unwrap());
    assert!(!fs.exists(p("/db/snap")).unwrap());

    fs.rename(p("/db/snap.tmp"), p("/db/snap")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/snap/kv/a")).unwrap(), b"table");
    assert_eq!(fs.list_dir(p("/db")).unwrap(), vec!["snap".to_string()]);
}

#[test]
fn a_directory_moves_neither_into_itself_nor_over_another_entry() {
    let fs = fs_with_db();
    fs.create_dir_all(p("/db/a/b")).unwrap();
    fs.create_dir_all(p("/db/c")).unwrap();
    let _file = write_file(&fs, "/db/f", b"x", false);
    assert!(fs.rename(p("/db/a"), p("/db/a/b/a")).is_err());
    assert!(fs.rename(p("/db/a"), p("/db/c")).is_err());
    assert!(fs.rename(p("/db/a"), p("/db/f")).is_err());
    assert!(fs.rename(p("/db/f"), p("/db/c")).is_err());
    assert!(fs.exists(p("/db/a/b")).unwrap());
}

#[test]
fn only_an_empty_directory_is_removed_and_the_removal_needs_sync_dir() {
    let fs = fs_with_db();
    fs.create_dir_all(p("/db/d")).unwrap();
    let _file = write_file(&fs, "/db/d/a", b"x", true);
    fs.sync_dir(p("/db/d")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    assert!(fs.remove_dir(p("/db/d")).is_err(), "not empty");
    fs.remove_file(p("/db/d/a")).unwrap();
    fs.remove_dir(p("/db/d")).unwrap();
    assert!(!fs.exists(p("/db/d")).unwrap());
    fs.crash(CrashMode::DropUnsynced);
    assert!(fs.exists(p("/db/d/a")).unwrap(), "nothing was synced");

    super::super::remove_dir_all(&fs, p("/db/d")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.exists(p("/db/d")).unwrap());
}

#[test]
fn rename_moves_the_inode_so_an_open_handle_follows_it() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"one", false);
    fs.rename(p("/db/a"), p("/db/b")).unwrap();
    file.append(b"two").unwrap();
    assert_eq!(fs.read_file(p("/db/b")).unwrap(), b"onetwo");
    assert!(fs.read_file(p("/db/a")).is_err());
}

#[test]
fn torn_tail_keeps_synced_bytes_and_a_prefix_of_the_rest() {
    let synced = b"synced-part|".to_vec();
    let unsynced: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8 + 1).collect();
    let mut lengths = BTreeSet::new();
    let mut garbled = 0;
    for seed in 0..200 {
        let fs = fs_with_db();
        let mut file = write_file(&fs, "/db/log", &synced, true);
        fs.sync_dir(p("/db")).unwrap();
        file.append(&unsynced).unwrap();
        fs.crash(CrashMode::TornTail { seed });
        let after = fs.read_file(p("/db/log")).unwrap();
        assert!(after.len() >= synced.len() && after.len() <= synced.len() + unsynced.len());
        assert_eq!(&after[..synced.len()], &synced[..], "seed {seed}");
        let tail = &after[synced.len()..];
        // All but at most the last MAX_GARBLED_TAIL_BYTES are an exact prefix.
        let exact = tail.len().saturating_sub(MAX_GARBLED_TAIL_BYTES);
        assert_eq!(&tail[..exact], &unsynced[..exact], "seed {seed}");
        if tail != &unsynced[..tail.len()] {
            garbled += 1;
        }
        lengths.insert(tail.len());

        // Determinism: the same history and seed give the same bytes.
        let again = fs_with_db();
        let mut file = write_file(&again, "/db/log", &synced, true);
        again.sync_dir(p("/db")).unwrap();
        file.append(&unsynced).unwrap();
        again.crash(CrashMode::TornTail { seed });
        assert_eq!(again.read_file(p("/db/log")).unwrap(), after);
    }
    assert!(lengths.len() > 50, "torn lengths vary: {}", lengths.len());
    assert!(garbled > 10, "some tails are garbled: {garbled}");
}

#[test]
fn hard_links_share_content_and_survive_removal_of_the_original() {
    let fs = fs_with_db();
    fs.create_dir_all(p("/checkpoint")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    let mut file = write_file(&fs, "/db/a", b"shared", true);
    fs.sync_dir(p("/db")).unwrap();
    fs.hard_link(p("/db/a"), p("/checkpoint/a")).unwrap();
    file.append(b"+more").unwrap();
    assert_eq!(fs.read_file(p("/checkpoint/a")).unwrap(), b"shared+more");
    assert!(fs.hard_link(p("/db/a"), p("/checkpoint/a")).is_err());

    fs.sync_dir(p("/checkpoint")).unwrap();
    fs.remove_file(p("/db/a")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.exists(p("/db/a")).unwrap());
    assert_eq!(fs.read_file(p("/checkpoint/a")).unwrap(), b"shared");
}

#[test]
fn create_file_truncates_in_place_and_the_truncation_needs_a_sync() {
    let fs = fs_with_db();
    let _file = write_file(&fs, "/db/a", b"old content", true);
    fs.sync_dir(p("/db")).unwrap();
    let mut file = write_file(&fs, "/db/a", b"new", false);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"new");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"old content");
    assert!(file.append(b"x").is_err());

    let mut file = write_file(&fs, "/db/a", b"new", true);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"new");
    assert!(file.sync_data().is_err());
}

#[test]
fn handles_die_at_a_crash() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"abc", true);
    fs.sync_dir(p("/db")).unwrap();
    let reader = fs.open_random_access(p("/db/a")).unwrap();
    assert_eq!(reader.read_exact_at(1, 2).unwrap(), b"bc");
    assert!(reader.read_exact_at(2, 2).unwrap_err().is_corruption());
    fs.crash(CrashMode::DropUnsynced);
    assert!(matches!(reader.read_exact_at(0, 1), Err(Error::Io { .. })));
    assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
    assert!(matches!(file.sync_data(), Err(Error::Io { .. })));
}

#[test]
fn write_and_sync_faults_fail_until_cleared() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"ok", false);
    fs.set_fail_writes(true);
    assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
    assert!(matches!(file.append(b"x"), Err(Error::Io { .. })));
    file.sync_data().unwrap();
    fs.set_fail_writes(false);
    fs.set_fail_syncs(true);
    file.append(b"!").unwrap();
    assert!(matches!(file.sync_data(), Err(Error::Io { .. })));
    assert!(matches!(fs.sync_dir(p("/db")), Err(Error::Io { .. })));
    fs.clear_faults();
    file.sync_data().unwrap();
    assert_eq!(fs.durable_raw(p("/db/a")).unwrap(), b"ok!");
    assert_eq!(file.len(), 3);
}

#[test]
fn fail_after_operations_fails_exactly_one_operation() {
    let fs = fs_with_db();
    let mut file = write_file(&fs, "/db/a", b"", false);
    let before = fs.operation_count();
    fs.fail_after_operations(2);
    file.append(b"1").unwrap();
    file.append(b"2").unwrap();
    assert!(file.append(b"3").is_err());
    file.append(b"4").unwrap();
    assert_eq!(fs.read_raw(p("/db/a")).unwrap(), b"124");
    // The failed operation is not counted.
    assert_eq!(fs.operation_count(), before + 3);
}

#[test]
fn crash_after_operations_kills_every_later_mutation_until_the_crash() {
    let fs = fs_with_db();
    fs.crash_after_operations(3);
    let mut file = fs.create_file(p("/db/a")).unwrap();
    file.append(b"data").unwrap();
    file.sync_data().unwrap();
    assert!(fs.sync_dir(p("/db")).is_err());
    assert!(fs.create_file(p("/db/b")).is_err());
    assert!(fs.rename(p("/db/a"), p("/db/c")).is_err());
    // Reads still work: the test inspects the dead process's view.
    assert_eq!(fs.read_file(p("/db/a")).unwrap(), b"data");
    fs.crash(CrashMode::DropUnsynced);
    // The directory sync never happened, so the file is gone; the new
    // "process" may mutate again.
    assert!(!fs.exists(p("/db/a")).unwrap());
    let _file = write_file(&fs, "/db/a", b"again", true);
}

#[test]
fn operation_counts_are_deterministic() {
    let run = |fs: &CrashFs| {
        let mut file = write_file(fs, "/db/a", b"x", true);
        file.append(b"y").unwrap();
        fs.sync_dir(p("/db")).unwrap();
        fs.rename(p("/db/a"), p("/db/b")).unwrap();
        fs.operation_count()
    };
    let first = run(&fs_with_db());
    assert_eq!(first, run(&fs_with_db()));
    // create_dir_all + sync_dir(/) + create + append + sync + append + sync_dir + rename
    assert_eq!(first, 8);
}

#[test]
fn locks_are_exclusive_and_released_on_drop_or_crash() {
    let fs = fs_with_db();
    let lock = fs.lock_file(p("/db/LOCK")).unwrap();
    assert!(matches!(fs.lock_file(p("/db/LOCK")), Err(Error::Locked(_))));
    assert!(matches!(
        fs.lock_file(p("db/./LOCK")),
        Err(Error::Locked(_))
    ));
    drop(lock);
    let stale = fs.lock_file(p("/db/LOCK")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    fs.create_dir_all(p("/db")).unwrap();
    let fresh = fs.lock_file(p("/db/LOCK")).unwrap();
    // Dropping the guard from before the crash must not release the new lock.
    drop(stale);
    assert!(matches!(fs.lock_file(p("/db/LOCK")), Err(Error::Locked(_))));
    drop(fresh);
    fs.lock_file(p("/db/LOCK")).unwrap();
}

#[test]
fn raw_helpers_corrupt_durably() {
    let fs = fs_with_db();
    fs.write_raw(p("/db/raw"), &[0b0000_0001, 0xff]).unwrap();
    fs.flip_bit(p("/db/raw"), 0, 0).unwrap();
    fs.flip_bit(p("/db/raw"), 1, 7).unwrap();
    assert!(fs.flip_bit(p("/db/raw"), 2, 0).is_err());
    assert!(fs.flip_bit(p("/db/raw"), 0, 8).is_err());
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.read_raw(p("/db/raw")).unwrap(), vec![0, 0x7f]);
    assert_eq!(fs.read_raw(p("/db/missing")), None);
}

#[test]
fn clones_share_state_and_paths_are_normalised() {
    let fs = fs_with_db();
    let other = fs.clone();
    let _file = write_file(&other, "db/x", b"1", false);
    assert!(fs.exists(p("/db/x")).unwrap());
    assert!(fs.is_dir(p("/db/..")).unwrap());
    assert!(!fs.is_dir(p("/db/x")).unwrap());
    assert!(fs.list_dir(p("/db/x")).is_err());
    assert!(fs.create_file(p("/missing/x")).is_err());
}
