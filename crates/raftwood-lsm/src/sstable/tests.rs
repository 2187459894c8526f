//! Whole-table tests: round trips against a sorted model, corruption
//! injection, and decoders fed arbitrary bytes.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, RandomAccessFile, StdFs, WritableFile};
use crate::iterator::InternalIterator;
use crate::key::{
    MAX_SEQUENCE_NUMBER, RangeTombstone, ValueKind, compare_internal_keys, internal_key,
    parse_internal_key, seek_key, user_key,
};
use crate::options::{Compression, TableOptions};

type Entry = (Vec<u8>, Vec<u8>);

/// An in-memory file that records every append.
#[derive(Debug, Clone, Default)]
struct MemFile {
    bytes: Arc<Mutex<Vec<u8>>>,
    append_sizes: Arc<Mutex<Vec<usize>>>,
    synced: Arc<Mutex<bool>>,
}

impl WritableFile for MemFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.bytes.lock().unwrap().extend_from_slice(data);
        self.append_sizes.lock().unwrap().push(data.len());
        *self.synced.lock().unwrap() = false;
        Ok(())
    }
    fn sync_data(&mut self) -> Result<()> {
        *self.synced.lock().unwrap() = true;
        Ok(())
    }
    fn zero_extend(&mut self, _len: u64) -> Result<()> {
        unreachable!("table writing never preallocates")
    }
    fn len(&self) -> u64 {
        self.bytes.lock().unwrap().len() as u64
    }
}

/// Read side of a table held in memory.
#[derive(Debug)]
struct MemRandomAccess(Vec<u8>);

impl RandomAccessFile for MemRandomAccess {
    fn read_exact_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let start = usize::try_from(offset).unwrap();
        self.0
            .get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corruption("mem", "read past end"))
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

fn options(
    compression: Compression,
    restart_interval: usize,
    block_size_bytes: usize,
) -> TableOptions {
    TableOptions {
        block_size_bytes,
        block_restart_interval: restart_interval,
        index_block_restart_interval: restart_interval,
        bloom_bits_per_key: 10,
        compression,
        level_overrides: Vec::new(),
    }
}

fn build_in_memory(
    entries: &[Entry],
    tombstones: &[RangeTombstone],
    options: &TableOptions,
) -> (Vec<u8>, TableSummary, MemFile) {
    let file = MemFile::default();
    let mut builder = TableBuilder::new(Box::new(file.clone()), options);
    for (key, value) in entries {
        builder.add(key, value).unwrap();
    }
    for tombstone in tombstones {
        builder.add_range_tombstone(tombstone);
    }
    assert_eq!(builder.num_entries(), entries.len() as u64);
    let summary = builder.finish().unwrap();
    assert!(*file.synced.lock().unwrap(), "finish must sync");
    let bytes = file.bytes.lock().unwrap().clone();
    assert_eq!(summary.file_size_bytes, bytes.len() as u64);
    (bytes, summary, file)
}

fn open_in_memory(bytes: Vec<u8>, cache_bytes: u64) -> Result<Arc<Table>> {
    Table::open(
        Arc::new(MemRandomAccess(bytes)),
        7,
        Arc::new(BlockCache::new(cache_bytes)),
    )
    .map(Arc::new)
}

/// Random entries over a small user-key space with several versions per key,
/// sorted and deduplicated by internal key.
fn random_entries(rng: &mut SmallRng, count: usize, num_user_keys: u32) -> Vec<Entry> {
    let mut entries: Vec<Entry> = (0..count)
        .map(|_| {
            let user = format!("user-{:06}", rng.random_range(0..num_user_keys) * 2);
            let sequence_number = rng.random_range(1..10_000u64);
            let kind = if rng.random_bool(0.2) {
                ValueKind::Deletion
            } else {
                ValueKind::Value
            };
            let value_len = if kind == ValueKind::Deletion {
                0
            } else {
                rng.random_range(0..120)
            };
            // Repetitive values so LZ4 has something to find.
            let value = (0..value_len)
                .map(|i| b'a' + (i % 7) as u8 + (sequence_number % 3) as u8)
                .collect();
            (internal_key(user.as_bytes(), sequence_number, kind), value)
        })
        .collect();
    entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
}

/// The model's answer to `Table::get`.
fn model_get(entries: &[Entry], user: &[u8], snapshot: u64) -> Option<Entry> {
    let target = seek_key(user, snapshot);
    entries
        .iter()
        .find(|(key, _)| compare_internal_keys(key, &target) != Ordering::Less)
        .filter(|(key, _)| user_key(key) == user)
        .cloned()
}

fn collect_forward(iter: &mut TableIterator) -> Vec<Entry> {
    let mut out = Vec::new();
    iter.seek_to_first().unwrap();
    while iter.valid() {
        out.push((iter.key().to_vec(), iter.value().to_vec()));
        iter.next().unwrap();
    }
    out
}

fn collect_backward(iter: &mut TableIterator) -> Vec<Entry> {
    let mut out = Vec::new();
    iter.seek_to_last().unwrap();
    while iter.valid() {
        out.push((iter.key().to_vec(), iter.value().to_vec()));
        iter.prev().unwrap();
    }
    out.reverse();
    out
}

/// Checks gets, full scans in both directions, seeks and a random walk.
fn check_table_against_model(
    table: &Arc<Table>,
    entries: &[Entry],
    rng: &mut SmallRng,
    num_user_keys: u32,
) {
    for user_index in 0..num_user_keys * 2 + 2 {
        // Odd indexes were never written.
        let user = format!("user-{:06}", user_index);
        for snapshot in [0, 1, 500, 5_000, 9_999, MAX_SEQUENCE_NUMBER, u64::MAX] {
            let expected = model_get(entries, user.as_bytes(), snapshot.min(MAX_SEQUENCE_NUMBER));
            assert_eq!(
                table.get(user.as_bytes(), snapshot).unwrap(),
                expected,
                "get {user} @ {snapshot}"
            );
        }
    }

    let mut iter = table.iter();
    assert!(!iter.valid());
    assert_eq!(collect_forward(&mut iter), entries);
    assert_eq!(collect_backward(&mut iter), entries);

    for _ in 0..500 {
        let user = format!("user-{:06}", rng.random_range(0..num_user_keys * 2 + 2));
        let target = internal_key(
            user.as_bytes(),
            rng.random_range(0..10_001u64),
            if rng.random_bool(0.5) {
                ValueKind::Value
            } else {
                ValueKind::Deletion
            },
        );
        iter.seek(&target).unwrap();
        let at_or_after = entries
            .iter()
            .position(|(k, _)| compare_internal_keys(k, &target) != Ordering::Less);
        assert_eq!(
            iter.valid().then(|| iter.key().to_vec()),
            at_or_after.map(|i| entries[i].0.clone())
        );

        iter.seek_for_prev(&target).unwrap();
        let at_or_before = entries
            .iter()
            .rposition(|(k, _)| compare_internal_keys(k, &target) != Ordering::Greater);
        assert_eq!(
            iter.valid().then(|| iter.key().to_vec()),
            at_or_before.map(|i| entries[i].0.clone())
        );

        // A short random walk from the seek position.
        let mut position = at_or_before;
        for _ in 0..20 {
            let Some(current) = position else { break };
            if rng.random_bool(0.5) {
                iter.next().unwrap();
                position = (current + 1 < entries.len()).then_some(current + 1);
            } else {
                iter.prev().unwrap();
                position = current.checked_sub(1);
            }
            assert_eq!(
                iter.valid().then(|| iter.key().to_vec()),
                position.map(|i| entries[i].0.clone())
            );
            if let Some(i) = position {
                assert_eq!(iter.value(), entries[i].1.as_slice());
            }
        }
    }
}

#[test]
fn table_round_trip_through_std_fs_matches_model() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StdFs;
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for (round, (compression, restart_interval, block_size)) in [
        (Compression::Lz4, 16, 4096),
        (Compression::None, 1, 256),
        (Compression::Lz4, 2, 700),
    ]
    .into_iter()
    .enumerate()
    {
        let num_user_keys = 800;
        let entries = random_entries(&mut rng, 4000, num_user_keys);
        let path = dir.path().join(format!("{round:06}.sst"));
        let mut builder = TableBuilder::new(
            fs.create_file(&path).unwrap(),
            &options(compression, restart_interval, block_size),
        );
        for (key, value) in &entries {
            builder.add(key, value).unwrap();
        }
        let estimate = builder.estimated_file_size_bytes();
        let summary = builder.finish().unwrap();
        assert!(estimate <= summary.file_size_bytes);
        assert_eq!(summary.file_size_bytes, fs.file_size(&path).unwrap());
        assert_eq!(summary.num_entries, entries.len() as u64);
        assert_eq!(summary.smallest_key, entries[0].0);
        assert_eq!(summary.largest_key, entries[entries.len() - 1].0);

        let cache = Arc::new(BlockCache::new(1 << 20));
        let table = Arc::new(
            Table::open(
                fs.open_random_access(&path).unwrap(),
                round as u64,
                cache.clone(),
            )
            .unwrap(),
        );
        let properties = table.properties();
        assert_eq!(properties.num_entries, entries.len() as u64);
        let deletions = entries
            .iter()
            .filter(|(k, _)| parse_internal_key(k).unwrap().kind == ValueKind::Deletion)
            .count();
        assert_eq!(properties.num_deletions, deletions as u64);
        assert_eq!(
            properties.raw_key_bytes,
            entries.iter().map(|e| e.0.len() as u64).sum::<u64>()
        );
        assert_eq!(
            properties.raw_value_bytes,
            entries.iter().map(|e| e.1.len() as u64).sum::<u64>()
        );
        let sequence_numbers = entries
            .iter()
            .map(|(k, _)| parse_internal_key(k).unwrap().sequence_number);
        assert_eq!(
            properties.smallest_sequence_number,
            sequence_numbers.clone().min().unwrap()
        );
        assert_eq!(
            properties.largest_sequence_number,
            sequence_numbers.max().unwrap()
        );
        assert!(properties.num_data_blocks > 1);
        assert_eq!(table.file_number(), round as u64);
        assert_eq!(table.file_size_bytes(), summary.file_size_bytes);

        check_table_against_model(&table, &entries, &mut rng, num_user_keys);
        assert!(cache.hits() > 0 && cache.misses() > 0);
        assert!(cache.usage_bytes() <= cache.capacity_bytes());
    }
}

#[test]
fn readers_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Table>();
    assert_send::<TableIterator>();
    let mut rng = SmallRng::seed_from_u64(5);
    let entries = random_entries(&mut rng, 1000, 300);
    let (bytes, _, _) = build_in_memory(&entries, &[], &options(Compression::Lz4, 16, 512));
    let table = open_in_memory(bytes, 64 * 1024).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut iter = table.iter();
                assert_eq!(collect_forward(&mut iter), entries);
            });
        }
    });
}

#[test]
fn tables_with_tiny_blocks_and_one_entry_per_block_work() {
    // Every entry exceeds the block size: one entry per block, so the index
    // separators and empty-block skipping are exercised on every step.
    let mut rng = SmallRng::seed_from_u64(99);
    let entries = random_entries(&mut rng, 300, 100);
    let (bytes, _, _) = build_in_memory(&entries, &[], &options(Compression::None, 16, 1));
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    assert_eq!(table.properties().num_data_blocks, entries.len() as u64);
    check_table_against_model(&table, &entries, &mut rng, 100);
}

#[test]
fn cache_budget_of_zero_still_reads_correctly() {
    let mut rng = SmallRng::seed_from_u64(3);
    let entries = random_entries(&mut rng, 500, 100);
    let (bytes, _, _) = build_in_memory(&entries, &[], &options(Compression::Lz4, 4, 300));
    let table = open_in_memory(bytes, 0).unwrap();
    check_table_against_model(&table, &entries, &mut rng, 100);
}

#[test]
fn builder_appends_in_large_chunks() {
    let mut rng = SmallRng::seed_from_u64(1);
    let entries = random_entries(&mut rng, 20_000, 10_000);
    let (_, _, file) = build_in_memory(&entries, &[], &options(Compression::None, 16, 4096));
    let sizes = file.append_sizes.lock().unwrap().clone();
    assert!(sizes.len() > 2);
    let (last, all_but_last) = sizes.split_last().unwrap();
    assert!(*last > 0);
    assert!(
        all_but_last.iter().all(|&size| size >= 64 * 1024),
        "{sizes:?}"
    );
}

#[test]
fn bloom_filter_rejects_most_absent_keys_and_never_present_ones() {
    let entries: Vec<Entry> = (0..5000u32)
        .map(|i| {
            (
                internal_key(format!("present-{i:08}").as_bytes(), 1, ValueKind::Value),
                vec![],
            )
        })
        .collect();
    let (bytes, _, _) = build_in_memory(&entries, &[], &options(Compression::Lz4, 16, 4096));
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    for (key, _) in &entries {
        assert!(table.may_contain_user_key(user_key(key)).unwrap());
    }
    let false_positives = (0..20_000u32)
        .filter(|i| {
            table
                .may_contain_user_key(format!("absent-{i:08}").as_bytes())
                .unwrap()
        })
        .count();
    assert!(
        false_positives < 400,
        "{false_positives} false positives in 20000"
    );

    let no_filter = TableOptions {
        bloom_bits_per_key: 0,
        ..options(Compression::Lz4, 16, 4096)
    };
    let (bytes, _, _) = build_in_memory(&entries, &[], &no_filter);
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    assert!(table.may_contain_user_key(b"absent").unwrap());
    assert_eq!(table.get(b"absent", MAX_SEQUENCE_NUMBER).unwrap(), None);
    assert!(table.get(b"present-00000042", 1).unwrap().is_some());
}

fn tombstone(start: &[u8], end: &[u8], sequence_number: u64) -> RangeTombstone {
    RangeTombstone {
        start: start.to_vec(),
        end: end.to_vec(),
        sequence_number,
    }
}

#[test]
fn range_tombstones_round_trip_and_widen_bounds() {
    let entries = vec![
        (internal_key(b"b", 10, ValueKind::Value), b"vb".to_vec()),
        (internal_key(b"m", 11, ValueKind::Value), b"vm".to_vec()),
    ];
    let tombstones = [
        tombstone(b"k", b"z", 20),
        tombstone(b"a", b"c", 3),
        tombstone(b"q", b"q", 5),
    ];
    let (bytes, summary, _) = build_in_memory(&entries, &tombstones, &TableOptions::default());
    // The empty [q, q) tombstone is dropped.
    assert_eq!(summary.num_range_tombstones, 2);
    assert_eq!(
        summary.smallest_key,
        internal_key(b"a", 3, ValueKind::Deletion)
    );
    assert_eq!(
        summary.largest_key,
        internal_key(b"z", MAX_SEQUENCE_NUMBER, ValueKind::Value)
    );
    assert_eq!(
        (
            summary.smallest_sequence_number,
            summary.largest_sequence_number
        ),
        (3, 20)
    );
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    assert_eq!(
        table.range_tombstones(),
        &[tombstone(b"a", b"c", 3), tombstone(b"k", b"z", 20)]
    );
    assert_eq!(table.properties().smallest_key, summary.smallest_key);
    assert_eq!(table.properties().largest_key, summary.largest_key);
    // Point lookups ignore tombstones: that is the caller's job.
    assert_eq!(table.get(b"m", 100).unwrap(), Some(entries[1].clone()));

    // A table holding only tombstones.
    let (bytes, summary, _) =
        build_in_memory(&[], &[tombstone(b"d", b"f", 9)], &TableOptions::default());
    assert_eq!(summary.num_entries, 0);
    assert_eq!(
        summary.smallest_key,
        internal_key(b"d", 9, ValueKind::Deletion)
    );
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    assert_eq!(table.get(b"d", 100).unwrap(), None);
    let mut iter = table.iter();
    iter.seek_to_first().unwrap();
    assert!(!iter.valid());
}

#[test]
fn empty_table_opens_and_iterates_nothing() {
    let (bytes, summary, _) = build_in_memory(&[], &[], &TableOptions::default());
    assert!(summary.smallest_key.is_empty() && summary.largest_key.is_empty());
    let table = open_in_memory(bytes, 1 << 20).unwrap();
    assert_eq!(table.get(b"x", 1).unwrap(), None);
    let mut iter = table.iter();
    for position in [
        InternalIterator::seek_to_first,
        InternalIterator::seek_to_last,
    ] {
        position(&mut iter).unwrap();
        assert!(!iter.valid());
    }
    iter.seek(&internal_key(b"x", 1, ValueKind::Value)).unwrap();
    assert!(!iter.valid());
    iter.seek_for_prev(&internal_key(b"x", 1, ValueKind::Value))
        .unwrap();
    assert!(!iter.valid());
}

#[test]
fn builder_rejects_bad_keys_and_out_of_order_in_release() {
    let mut builder = TableBuilder::new(Box::new(MemFile::default()), &TableOptions::default());
    assert!(matches!(
        builder.add(b"short", b""),
        Err(Error::InvalidArgument(_))
    ));
    builder
        .add(&internal_key(b"b", 1, ValueKind::Value), b"")
        .unwrap();
    // The same key again is out of order; debug builds assert instead.
    if !cfg!(debug_assertions) {
        let again = builder.add(&internal_key(b"a", 1, ValueKind::Value), b"");
        assert!(matches!(again, Err(Error::InvalidArgument(_))));
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "strictly increasing")]
fn builder_asserts_key_order_in_debug() {
    let mut builder = TableBuilder::new(Box::new(MemFile::default()), &TableOptions::default());
    builder
        .add(&internal_key(b"b", 1, ValueKind::Value), b"")
        .unwrap();
    let _ = builder.add(&internal_key(b"a", 1, ValueKind::Value), b"");
}

#[test]
fn builder_with_invalid_tombstone_fails_at_finish() {
    let mut builder = TableBuilder::new(Box::new(MemFile::default()), &TableOptions::default());
    builder.add_range_tombstone(&tombstone(b"a", b"b", MAX_SEQUENCE_NUMBER + 1));
    assert!(matches!(
        builder.add(&internal_key(b"k", 1, ValueKind::Value), b""),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(builder.finish(), Err(Error::InvalidArgument(_))));
}

#[test]
fn open_rejects_short_files_bad_magic_and_newer_versions() {
    let entries = vec![(internal_key(b"k", 1, ValueKind::Value), b"v".to_vec())];
    let (bytes, _, _) = build_in_memory(&entries, &[], &TableOptions::default());
    for len in [0, 10, FOOTER_LEN - 1] {
        assert!(
            open_in_memory(bytes[..len].to_vec(), 0)
                .unwrap_err()
                .is_corruption()
        );
    }
    let mut not_a_table = bytes.clone();
    let last = not_a_table.len() - 1;
    not_a_table[last] ^= 0x20;
    assert!(open_in_memory(not_a_table, 0).unwrap_err().is_corruption());

    let mut newer = bytes.clone();
    let version_offset = newer.len() - FOOTER_LEN + 64;
    newer[version_offset..version_offset + 4].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        open_in_memory(newer, 0),
        Err(Error::UnsupportedFormatVersion {
            what: "sstable",
            found: 2,
            supported: FORMAT_VERSION
        })
    ));
}

/// Flips one bit in every byte of a small table, one byte at a time, and
/// checks that each read returns the right data or a corruption error.
#[test]
fn every_damaged_byte_yields_corruption_or_correct_data() {
    let mut rng = SmallRng::seed_from_u64(0xbad);
    for compression in [Compression::None, Compression::Lz4] {
        let entries = random_entries(&mut rng, 80, 40);
        let tombstones = [tombstone(b"user-000010", b"user-000020", 50)];
        let (bytes, _, _) = build_in_memory(&entries, &tombstones, &options(compression, 4, 200));
        let version_field = bytes.len() - FOOTER_LEN + 64..bytes.len() - FOOTER_LEN + 68;
        let mut opened = 0;
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 1 << (position % 8);
            let table = match open_in_memory(damaged, 1 << 20) {
                Ok(table) => table,
                Err(Error::UnsupportedFormatVersion { .. })
                    if version_field.contains(&position) =>
                {
                    continue;
                }
                Err(error) => {
                    assert!(error.is_corruption(), "byte {position}: {error}");
                    continue;
                }
            };
            opened += 1;
            assert_eq!(table.range_tombstones(), &tombstones, "byte {position}");
            check_damaged_table(&table, &entries, position);
        }
        // Damage to data, index and filter blocks is found lazily.
        assert!(
            opened > bytes.len() / 2,
            "{opened} of {} opened",
            bytes.len()
        );
    }
}

fn check_damaged_table(table: &Arc<Table>, entries: &[Entry], position: usize) {
    let expect_ok_or_corruption = |result: Result<()>| -> bool {
        match result {
            Ok(()) => true,
            Err(error) => {
                assert!(error.is_corruption(), "byte {position}: {error}");
                false
            }
        }
    };
    for user_index in 0..82 {
        let user = format!("user-{:06}", user_index);
        match table.get(user.as_bytes(), MAX_SEQUENCE_NUMBER) {
            Ok(found) => assert_eq!(
                found,
                model_get(entries, user.as_bytes(), MAX_SEQUENCE_NUMBER),
                "byte {position}"
            ),
            Err(error) => assert!(error.is_corruption(), "byte {position}: {error}"),
        }
    }
    // Forward: a prefix of the model, then either an error or the full model.
    let mut iter = table.iter();
    let mut seen = 0;
    let mut ok = expect_ok_or_corruption(iter.seek_to_first());
    while ok && iter.valid() {
        assert_eq!(
            (iter.key(), iter.value()),
            (entries[seen].0.as_slice(), entries[seen].1.as_slice()),
            "byte {position}"
        );
        seen += 1;
        ok = expect_ok_or_corruption(iter.next());
    }
    if ok {
        assert_eq!(
            seen,
            entries.len(),
            "byte {position}: scan ended early without an error"
        );
    }
    // Backward likewise.
    let mut seen = 0;
    let mut ok = expect_ok_or_corruption(iter.seek_to_last());
    while ok && iter.valid() {
        let expected = &entries[entries.len() - 1 - seen];
        assert_eq!(
            (iter.key(), iter.value()),
            (expected.0.as_slice(), expected.1.as_slice()),
            "byte {position}"
        );
        seen += 1;
        ok = expect_ok_or_corruption(iter.prev());
    }
    if ok {
        assert_eq!(
            seen,
            entries.len(),
            "byte {position}: reverse scan ended early without an error"
        );
    }
}

proptest! {
    #[test]
    fn block_decoder_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode_block(&data);
    }

    #[test]
    fn block_decoder_never_panics_on_mutated_valid_blocks(
        keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..12), 1..40),
        restart_interval in 1usize..5,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut builder = BlockBuilder::new(restart_interval);
        for user in &keys {
            builder.add(&internal_key(user, 1, ValueKind::Value), user);
        }
        let mut data = builder.finish().to_vec();
        let len = data.len();
        for (position, byte) in mutations {
            data[position % len] = byte;
        }
        fuzz_decode_block(&data);
    }

    #[test]
    fn footer_decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        fuzz_decode_footer(&data);
    }

    #[test]
    fn footer_decoder_never_panics_on_near_valid_footers(
        handles in proptest::collection::vec(any::<u64>(), 8),
        data_end in any::<u64>(),
    ) {
        let handle = |i: usize| BlockHandle { offset: handles[i * 2], size_bytes: handles[i * 2 + 1] };
        let footer = Footer { index: handle(0), filter: Some(handle(1)), range_deletions: handle(2), properties: handle(3) };
        let _ = Footer::decode(&footer.encode(), data_end, "t");
    }

    #[test]
    fn small_tables_round_trip(
        raw in proptest::collection::btree_map(
            (proptest::collection::vec(0u8..4, 0..6), 0u64..50),
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..60,
        ),
        restart_interval in 1usize..4,
        block_size in 1usize..300,
        lz4 in any::<bool>(),
    ) {
        let mut entries: Vec<Entry> = raw
            .into_iter()
            .map(|((user, seq), (is_value, value))| {
                let kind = if is_value { ValueKind::Value } else { ValueKind::Deletion };
                (internal_key(&user, seq, kind), value)
            })
            .collect();
        entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let (bytes, _, _) = build_in_memory(&entries, &[], &options(compression, restart_interval, block_size));
        let table = open_in_memory(bytes, 1 << 16).unwrap();
        let mut iter = table.iter();
        prop_assert_eq!(collect_forward(&mut iter), entries.clone());
        prop_assert_eq!(collect_backward(&mut iter), entries.clone());
        for (key, value) in &entries {
            let parsed = parse_internal_key(key).unwrap();
            let found = table.get(parsed.user_key, parsed.sequence_number).unwrap();
            prop_assert_eq!(found, Some((key.clone(), value.clone())));
        }
    }
}
