//! Corruption tests on the crash-modelling filesystem: damage one bit of a
//! cleanly closed database (or cut a file short, or remove one), reopen it,
//! and check that every answer is either a typed error or exactly what was
//! written: never a wrong value, a silently missing or resurrected key, or a
//! panic.
//!
//! - SSTables: a seeded sample of single-bit flips in every table plus every
//!   byte of every footer; after each, point reads of every key and scans in
//!   both directions, over a database whose newer tables shadow older values
//!   (a read that skipped a damaged table would return a stale value).
//! - WAL: a flip in any record but the last makes the default recovery fail
//!   with `Error::Corruption` without damaging anything (repairing the bit
//!   recovers every write); point-in-time recovery keeps exactly the records
//!   before the damaged one; a cut anywhere drops exactly the cut record and
//!   those after it.
//! - Manifest and `CURRENT`: a flip anywhere in the live manifest, a
//!   `CURRENT` naming a missing manifest or holding garbage, a missing live
//!   table.
//!
//! - Recovery leaves the directory untouched when it refuses to open, and
//!   a damaged last manifest record falls back to the previous version
//!   (whose files and WALs the engine keeps for exactly this reason).
//!
//! Every trial starts from a fresh `CrashFs` holding a byte-for-byte copy of
//! the closed database, so trials cannot influence each other, and every
//! random choice comes from a fixed seed, so a failure replays exactly.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftwood_lsm::fs::{CrashFs, FileSystem};
use raftwood_lsm::log::LogReader;
use raftwood_lsm::sstable::FOOTER_LEN;
use raftwood_lsm::{Db, Error, Options, RangeIter, TableOptions, WalRecovery, WriteOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const DB: &str = "/data/db";

/// Keys of the leveled database are `key00000 .. key{NUM_KEYS - 1}`.
const NUM_KEYS: u32 = 2400;

/// Random single-bit flips per table, in addition to every footer byte.
const SAMPLED_FLIPS_PER_TABLE: usize = 200;

/// Random single-bit flips per table when opening compacts the table.
const COMPACTION_FLIPS_PER_TABLE: usize = 40;

/// Tables at most this long get a flip in every byte instead of a sample.
const FLIP_EVERY_BYTE_UP_TO_BYTES: usize = 600;

fn db_path() -> PathBuf {
    PathBuf::from(DB)
}

fn file_path(name: &str) -> PathBuf {
    Path::new(DB).join(name)
}

fn options(fs: &CrashFs, wal_recovery: WalRecovery) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        wal_recovery,
        memtable_size_bytes: 32 << 10,
        target_file_size_bytes: 24 << 10,
        level1_size_bytes: 64 << 10,
        level_size_multiplier: 4,
        level0_compaction_trigger_files: 4,
        num_levels: 4,
        block_cache_size_bytes: 1 << 20,
        background_threads: false,
        table: TableOptions {
            block_size_bytes: 1024,
            ..TableOptions::default()
        },
        ..Options::default()
    }
}

/// Options for reopening a damaged database: compaction never triggers, so
/// reads meet the damaged files exactly as they were written.
fn reopen_options(fs: &CrashFs, wal_recovery: WalRecovery) -> Options {
    Options {
        level0_compaction_trigger_files: 1000,
        level0_slowdown_writes_files: 1000,
        level0_stop_writes_files: 1000,
        level1_size_bytes: 1 << 40,
        ..options(fs, wal_recovery)
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// A value that names its key and generation, so a stale or misplaced value
/// can never pass for the right one. The filler makes blocks compressible
/// (LZ4) and values of varied length.
fn value(i: u32, generation: u32) -> Vec<u8> {
    let mut value = format!("v{generation}-{i}-").into_bytes();
    let filler_len = (i as usize * 37 + generation as usize * 11) % 90;
    value.extend((0..filler_len).map(|j| b'a' + ((i as usize / 7 + j) % 26) as u8));
    value
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > 40 {
        format!("{:?}...", &text[..40])
    } else {
        format!("{text:?}")
    }
}

/// Every file of a closed database, by name.
#[derive(Debug, Clone)]
struct Image {
    files: BTreeMap<String, Vec<u8>>,
}

impl Image {
    fn capture(fs: &CrashFs) -> Image {
        let names = fs.list_dir(&db_path()).unwrap();
        let files = names
            .into_iter()
            .filter_map(|name| fs.read_raw(&file_path(&name)).map(|bytes| (name, bytes)))
            .collect();
        Image { files }
    }

    fn names_ending_in(&self, suffix: &str) -> Vec<String> {
        self.files
            .keys()
            .filter(|name| name.ends_with(suffix))
            .cloned()
            .collect()
    }

    fn bytes(&self, name: &str) -> &[u8] {
        self.files
            .get(name)
            .unwrap_or_else(|| panic!("the image has no {name}"))
    }

    /// The manifest `CURRENT` names.
    fn live_manifest(&self) -> String {
        let current = String::from_utf8(self.bytes("CURRENT").to_vec()).unwrap();
        current.trim_end().to_string()
    }

    /// A fresh filesystem holding exactly these files, all durable.
    fn materialize(&self) -> CrashFs {
        let fs = CrashFs::new();
        fs.create_dir_all(&db_path()).unwrap();
        for (name, bytes) in &self.files {
            fs.write_raw(&file_path(name), bytes).unwrap();
        }
        fs
    }

    /// Like `materialize`, with one file's content replaced.
    fn materialize_with(&self, name: &str, bytes: &[u8]) -> CrashFs {
        let fs = self.materialize();
        fs.write_raw(&file_path(name), bytes).unwrap();
        fs
    }
}

/// Errors a damaged file may legitimately produce. Anything else (a closed
/// or poisoned handle, an invalid argument) means the damage reached a
/// place it should not have.
fn check_error_kind(error: &Error) -> Result<(), String> {
    match error {
        Error::Corruption { .. }
        | Error::UnsupportedFormatVersion { .. }
        | Error::NotADatabase { .. }
        | Error::Io { .. } => Ok(()),
        other => Err(format!("unexpected kind of error: {other}")),
    }
}

/// Walks a scan and compares it with `expected`: the entries returned before
/// an error (if any) must be exactly a prefix of `expected`, and without an
/// error, all of it. Returns whether an error ended the scan.
fn check_scan<'a>(
    scan: raftwood_lsm::Result<RangeIter>,
    mut expected: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    what: &str,
) -> Result<bool, String> {
    let scan = match scan {
        Ok(scan) => scan,
        Err(error) => {
            check_error_kind(&error)?;
            return Ok(true);
        }
    };
    for (position, item) in scan.enumerate() {
        match item {
            Ok((key, value)) => match expected.next() {
                Some((want_key, want_value)) if *want_key == key && *want_value == value => {}
                Some((want_key, want_value)) => {
                    return Err(format!(
                        "{what}: entry {position} is {} = {}, expected {} = {}",
                        show(&key),
                        show(&value),
                        show(want_key),
                        show(want_value)
                    ));
                }
                None => {
                    return Err(format!(
                        "{what}: extra entry {} = {} after the last expected one",
                        show(&key),
                        show(&value)
                    ));
                }
            },
            Err(error) => {
                check_error_kind(&error)?;
                return Ok(true);
            }
        }
    }
    match expected.next() {
        Some((missing, _)) => Err(format!(
            "{what}: ended without an error but {} is missing",
            show(missing)
        )),
        None => Ok(false),
    }
}

/// Point-reads every key in `keys` and scans the whole database forwards and
/// backwards and a middle range both ways. `Err` describes the first wrong
/// answer; `Ok` counts the reads that failed with a (legitimate) error.
fn verify(db: &Db, model: &Model, keys: &[Vec<u8>]) -> Result<usize, String> {
    let mut errors = 0;
    for key in keys {
        match db.get(key) {
            Ok(got) if got.as_ref() == model.get(key) => {}
            Ok(got) => {
                return Err(format!(
                    "get({}) returned {}, expected {}",
                    show(key),
                    got.map_or("None".into(), |v| show(&v)),
                    model.get(key).map_or("None".into(), |v| show(v))
                ));
            }
            Err(error) => {
                check_error_kind(&error)?;
                errors += 1;
            }
        }
    }
    let scans = [
        check_scan(db.range(None, None), model.iter(), "forward scan")?,
        check_scan(
            db.range_rev(None, None),
            model.iter().rev(),
            "backward scan",
        )?,
    ];
    let (low, high) = (key(NUM_KEYS / 3), key(2 * NUM_KEYS / 3));
    let middle = || model.range(low.clone()..high.clone());
    let bounded = [
        check_scan(
            db.range(Some(low.as_slice()), Some(high.as_slice())),
            middle(),
            "bounded forward scan",
        )?,
        check_scan(
            db.range_rev(Some(low.as_slice()), Some(high.as_slice())),
            middle().rev(),
            "bounded backward scan",
        )?,
    ];
    Ok(errors
        + scans
            .iter()
            .chain(&bounded)
            .filter(|&&failed| failed)
            .count())
}

/// The whole database, read by a forward scan that must not fail.
fn contents(db: &Db) -> Result<Model, String> {
    db.range(None, None)
        .map_err(|e| format!("opening a scan failed: {e}"))?
        .map(|entry| entry.map_err(|e| format!("scan failed: {e}")))
        .collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a non-string panic".into())
}

/// Runs one trial; a wrong answer or a panic is recorded in `failures`
/// under `what` (which says how to reproduce it).
fn guarded<T>(
    what: &str,
    failures: &mut Vec<String>,
    trial: impl FnOnce() -> Result<T, String>,
) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(trial)) {
        Ok(Ok(outcome)) => Some(outcome),
        Ok(Err(message)) => {
            failures.push(format!("{what}: {message}"));
            None
        }
        Err(payload) => {
            failures.push(format!(
                "{what}: panicked: {}",
                panic_message(payload.as_ref())
            ));
            None
        }
    }
}

fn assert_no_failures(failures: &[String], trials: usize, kind: &str) {
    assert!(
        failures.is_empty(),
        "{} of {trials} {kind} trials went wrong; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A closed database and what it holds.
struct Leveled {
    image: Image,
    model: Model,
}

/// A database spread over several tables on more than one level, in which
/// newer tables overwrite, delete and range-delete keys of older ones.
fn build_leveled_db() -> Leveled {
    let fs = CrashFs::new();
    let db = Db::open(db_path(), options(&fs, WalRecovery::default())).unwrap();
    let no_sync = WriteOptions::default();
    let mut model = Model::new();
    for i in 0..NUM_KEYS {
        db.put(key(i), value(i, 1), no_sync).unwrap();
        model.insert(key(i), value(i, 1));
    }
    db.flush().unwrap();
    db.compact_range(None, None).unwrap();
    for i in (0..NUM_KEYS).step_by(3) {
        db.put(key(i), value(i, 2), no_sync).unwrap();
        model.insert(key(i), value(i, 2));
    }
    db.flush().unwrap();
    for i in (0..NUM_KEYS).step_by(7) {
        db.delete(key(i), no_sync).unwrap();
        model.remove(&key(i));
    }
    let (start, end) = (key(NUM_KEYS / 2), key(NUM_KEYS / 2 + 40));
    db.delete_range(&start, &end, no_sync).unwrap();
    model.retain(|k, _| !(*k >= start && *k < end));
    db.flush().unwrap();
    for i in (0..NUM_KEYS).step_by(11) {
        db.put(key(i), value(i, 3), no_sync).unwrap();
        model.insert(key(i), value(i, 3));
    }
    db.flush().unwrap();
    let files_per_level: Vec<usize> = db.stats().levels.iter().map(|l| l.files).collect();
    assert_eq!(
        verify(&db, &model, &all_keys()),
        Ok(0),
        "the undamaged database reads back"
    );
    db.close().unwrap();
    drop(db);
    println!("leveled database: files per level {files_per_level:?}");
    assert!(
        files_per_level.iter().filter(|&&n| n > 0).count() >= 2,
        "tables on more than one level: {files_per_level:?}"
    );
    assert!(
        files_per_level.iter().sum::<usize>() >= 6,
        "several tables: {files_per_level:?}"
    );
    let image = Image::capture(&fs);
    // The copy reads back exactly, and reopening it rewrites no table.
    let db = Db::open(
        db_path(),
        reopen_options(&image.materialize(), WalRecovery::default()),
    )
    .unwrap();
    assert_eq!(
        verify(&db, &model, &all_keys()),
        Ok(0),
        "the copied database reads back"
    );
    let reopened: Vec<usize> = db.stats().levels.iter().map(|l| l.files).collect();
    assert_eq!(reopened, files_per_level, "reopening must not compact");
    Leveled { image, model }
}

fn all_keys() -> Vec<Vec<u8>> {
    (0..NUM_KEYS).map(key).collect()
}

/// Opens a damaged database and reads everything. `Ok(true)` if some step
/// failed with a legitimate error, `Ok(false)` if everything read back
/// exactly.
fn open_and_verify(options: Options, model: &Model, keys: &[Vec<u8>]) -> Result<bool, String> {
    match Db::open(db_path(), options) {
        Ok(db) => Ok(verify(&db, model, keys)? > 0),
        Err(error) => {
            check_error_kind(&error)?;
            Ok(true)
        }
    }
}

/// (byte offset, bit) pairs to flip in a table of `len` bytes.
fn table_flip_positions(len: usize, rng: &mut SmallRng) -> Vec<(usize, u8)> {
    let footer_start = len.saturating_sub(FOOTER_LEN);
    let mut positions: Vec<(usize, u8)> = if len <= FLIP_EVERY_BYTE_UP_TO_BYTES {
        (0..footer_start)
            .map(|offset| (offset, rng.random_range(0..8)))
            .collect()
    } else {
        (0..SAMPLED_FLIPS_PER_TABLE)
            .map(|_| (rng.random_range(0..footer_start), rng.random_range(0..8)))
            .collect()
    };
    positions.extend((footer_start..len).map(|offset| (offset, rng.random_range(0..8))));
    positions
}

#[test]
fn a_flipped_bit_in_a_table_never_yields_wrong_data_or_a_panic() {
    let Leveled { image, model, .. } = build_leveled_db();
    let keys = all_keys();
    let tables = image.names_ending_in(".sst");
    let mut rng = SmallRng::seed_from_u64(0x5eed_0001);
    let mut failures = Vec::new();
    let (mut trials, mut detected) = (0, 0);
    for name in &tables {
        let len = image.bytes(name).len();
        for (offset, bit) in table_flip_positions(len, &mut rng) {
            let what = format!("{name} ({len} bytes), bit {bit} of byte {offset}");
            let fs = image.materialize();
            fs.flip_bit(&file_path(name), offset as u64, bit).unwrap();
            trials += 1;
            if guarded(&what, &mut failures, || {
                open_and_verify(reopen_options(&fs, WalRecovery::default()), &model, &keys)
            }) == Some(true)
            {
                detected += 1;
            }
        }
    }
    println!(
        "sst: {trials} single-bit flips over {} tables; {detected} reported as errors, the rest read back exactly",
        tables.len()
    );
    assert_no_failures(&failures, trials, "sst");
    assert!(
        tables.len() >= 6
            && trials >= tables.len() * (SAMPLED_FLIPS_PER_TABLE.min(100) + FOOTER_LEN)
    );
    // Every byte of a table is covered by a checksum, and every read touches
    // every table (the scans do), so no flip can go unnoticed.
    assert_eq!(detected, trials, "some flips were not reported");
}

#[test]
fn a_damaged_table_is_never_compacted_into_wrong_data() {
    let Leveled { image, model, .. } = build_leveled_db();
    let keys = all_keys();
    let tables = image.names_ending_in(".sst");
    let mut rng = SmallRng::seed_from_u64(0x5eed_0002);
    let mut failures = Vec::new();
    let mut trials = 0;
    for name in &tables {
        let len = image.bytes(name).len();
        for _ in 0..COMPACTION_FLIPS_PER_TABLE {
            let (offset, bit) = (rng.random_range(0..len), rng.random_range(0..8));
            let what =
                format!("{name} ({len} bytes), bit {bit} of byte {offset}, compacted at open");
            let fs = image.materialize();
            fs.flip_bit(&file_path(name), offset as u64, bit).unwrap();
            trials += 1;
            // The build's options: level 0 is over its trigger, so opening
            // compacts it, reading the damaged table (its filter excepted).
            guarded(&what, &mut failures, || {
                open_and_verify(options(&fs, WalRecovery::default()), &model, &keys)
            });
        }
    }
    println!("sst: {trials} single-bit flips in tables compacted at open");
    assert_no_failures(&failures, trials, "sst compaction");
    assert!(trials >= 6 * COMPACTION_FLIPS_PER_TABLE);
}

#[test]
fn a_truncated_or_emptied_table_is_reported() {
    let Leveled { image, model, .. } = build_leveled_db();
    let keys = all_keys();
    let mut failures = Vec::new();
    let mut trials = 0;
    for name in image.names_ending_in(".sst") {
        let original = image.bytes(&name);
        for cut in [
            0,
            1,
            FOOTER_LEN - 1,
            FOOTER_LEN,
            original.len() / 2,
            original.len() - FOOTER_LEN - 1,
            original.len() - 1,
        ] {
            let what = format!("{name} ({} bytes) cut to {cut} bytes", original.len());
            let fs = image.materialize_with(&name, &original[..cut]);
            trials += 1;
            if guarded(&what, &mut failures, || {
                open_and_verify(reopen_options(&fs, WalRecovery::default()), &model, &keys)
            }) == Some(false)
            {
                failures.push(format!("{what}: nothing reported the damage"));
            }
        }
    }
    println!("sst: {trials} truncations");
    assert_no_failures(&failures, trials, "sst truncation");
    assert!(trials >= 6 * 7);
}

/// A database whose last writes live only in its WAL, one record per write.
struct WalFixture {
    image: Image,
    /// What the tables hold.
    base: Model,
    /// The writes in the WAL, in order.
    writes: Vec<(Vec<u8>, Vec<u8>)>,
    wal_name: String,
    /// Byte range of each write's record in the WAL.
    spans: Vec<Range<usize>>,
}

const WAL_WRITES: u32 = 24;

impl WalFixture {
    fn build() -> WalFixture {
        let fs = CrashFs::new();
        let db = Db::open(db_path(), options(&fs, WalRecovery::default())).unwrap();
        let mut base = Model::new();
        for i in 0..200 {
            db.put(key(i), value(i, 1), WriteOptions::default())
                .unwrap();
            base.insert(key(i), value(i, 1));
        }
        db.flush().unwrap();
        let wal_name = fs
            .list_dir(&db_path())
            .unwrap()
            .into_iter()
            .filter(|name| name.ends_with(".wal"))
            .max()
            .unwrap();
        let wal_len = || fs.read_raw(&file_path(&wal_name)).unwrap().len();
        let mut writes = Vec::new();
        let mut spans = Vec::new();
        for i in 0..WAL_WRITES {
            let start = wal_len();
            // Overwrites and new keys alike: a dropped record must show.
            let write = (key(i * 13 % 250), value(i, 9));
            db.put(&write.0, &write.1, WriteOptions { sync: true })
                .unwrap();
            spans.push(start..wal_len());
            writes.push(write);
        }
        db.close().unwrap();
        drop(db);
        let image = Image::capture(&fs);
        assert_eq!(image.bytes(&wal_name).len(), spans.last().unwrap().end);
        for pair in spans.windows(2) {
            assert!(
                pair[0].end == pair[1].start && !pair[0].is_empty(),
                "one record per write"
            );
        }
        WalFixture {
            image,
            base,
            writes,
            wal_name,
            spans,
        }
    }

    /// The database after the first `n` WAL writes.
    fn expected(&self, n: usize) -> Model {
        let mut model = self.base.clone();
        model.extend(self.writes[..n].iter().cloned());
        model
    }

    /// The index of the record holding byte `offset`.
    fn record_at(&self, offset: usize) -> usize {
        self.spans
            .iter()
            .position(|span| span.contains(&offset))
            .unwrap()
    }

    /// Opens `fs` and checks it holds the first `n` writes exactly.
    fn expect_prefix(&self, fs: &CrashFs, recovery: WalRecovery, n: usize) -> Result<(), String> {
        let db = Db::open(db_path(), reopen_options(fs, recovery))
            .map_err(|e| format!("{recovery:?}: open failed: {e}"))?;
        let recovered = contents(&db)?;
        if recovered == self.expected(n) {
            return Ok(());
        }
        let prefix = (0..=self.writes.len()).find(|&m| recovered == self.expected(m));
        Err(match prefix {
            Some(m) => format!("{recovery:?}: recovered the first {m} writes, expected {n}"),
            None => format!("{recovery:?}: recovered state is no prefix of the writes"),
        })
    }
}

#[test]
fn a_flipped_bit_in_the_wal_is_refused_or_recovered_to_a_prefix() {
    let fixture = WalFixture::build();
    let wal = file_path(&fixture.wal_name);
    let wal_bytes = fixture.image.bytes(&fixture.wal_name);
    let last = fixture.writes.len() - 1;
    let mut failures = Vec::new();
    let (mut trials, mut refused, mut directory_modified) = (0, 0, 0);
    for offset in 0..wal_bytes.len() {
        let bit = (offset % 8) as u8;
        let record = fixture.record_at(offset);
        let what = format!(
            "{} ({} bytes), bit {bit} of byte {offset} (record {record} of {})",
            fixture.wal_name,
            wal_bytes.len(),
            last + 1
        );

        // Default recovery: damage before the last record is corruption, and
        // the failed open loses nothing; damage in the last one is a torn tail.
        let fs = fixture.image.materialize();
        fs.flip_bit(&wal, offset as u64, bit).unwrap();
        trials += 1;
        let outcome = guarded(&what, &mut failures, || {
            if record == last {
                return fixture
                    .expect_prefix(&fs, WalRecovery::TolerateTornTail, last)
                    .map(|()| false);
            }
            match Db::open(
                db_path(),
                reopen_options(&fs, WalRecovery::TolerateTornTail),
            ) {
                Ok(_) => return Err("opened a WAL damaged before its last record".into()),
                Err(error) if error.is_corruption() => {}
                Err(error) => return Err(format!("expected Error::Corruption, got {error}")),
            }
            let mut modified = false;
            for (name, bytes) in &fixture.image.files {
                match fs.read_raw(&file_path(name)) {
                    Some(now) if name == &fixture.wal_name => {
                        let mut damaged = bytes.clone();
                        damaged[offset] ^= 1 << bit;
                        if now != damaged {
                            return Err("the failed open changed the WAL".into());
                        }
                    }
                    Some(now) if now == *bytes => {}
                    _ if name.ends_with(".sst") || name.ends_with(".wal") => {
                        return Err(format!("the failed open changed or removed {name}"));
                    }
                    _ => modified = true,
                }
            }
            modified |= fs.list_dir(&db_path()).unwrap().len() != fixture.image.files.len();
            // Repairing the bit recovers every acknowledged write.
            fs.flip_bit(&wal, offset as u64, bit).unwrap();
            fixture.expect_prefix(&fs, WalRecovery::TolerateTornTail, last + 1)?;
            Ok(modified)
        });
        if record < last && outcome.is_some() {
            refused += 1;
        }
        if outcome == Some(true) {
            directory_modified += 1;
        }

        // Point in time: exactly the records before the damaged one.
        let fs = fixture.image.materialize();
        fs.flip_bit(&wal, offset as u64, bit).unwrap();
        trials += 1;
        guarded(&what, &mut failures, || {
            fixture.expect_prefix(&fs, WalRecovery::PointInTime, record)
        });
    }
    println!(
        "wal: {trials} single-bit flips over {} bytes in {} records, both recovery modes; \
         {refused} refused with Error::Corruption; {directory_modified} failed opens rewrote CURRENT or added a manifest",
        wal_bytes.len(),
        last + 1
    );
    assert_no_failures(&failures, trials, "wal");
    assert_eq!(trials, 2 * wal_bytes.len());
    assert_eq!(refused, fixture.spans[last].start);
    assert_eq!(
        directory_modified, 0,
        "a refused open must not touch the directory"
    );
}

#[test]
fn a_cut_wal_recovers_every_record_before_the_cut() {
    let fixture = WalFixture::build();
    let wal_bytes = fixture.image.bytes(&fixture.wal_name);
    let mut failures = Vec::new();
    let mut trials = 0;
    for cut in 0..=wal_bytes.len() {
        let complete = fixture.spans.iter().filter(|span| span.end <= cut).count();
        let what = format!(
            "{} cut to {cut} of {} bytes",
            fixture.wal_name,
            wal_bytes.len()
        );
        for recovery in [WalRecovery::TolerateTornTail, WalRecovery::PointInTime] {
            let fs = fixture
                .image
                .materialize_with(&fixture.wal_name, &wal_bytes[..cut]);
            trials += 1;
            guarded(&what, &mut failures, || {
                fixture.expect_prefix(&fs, recovery, complete)
            });
        }
    }
    println!("wal: {trials} truncations (every offset, both recovery modes)");
    assert_no_failures(&failures, trials, "wal truncation");
    let last = fixture.spans.last().unwrap();
    assert!(trials >= 2 * last.end && last.len() > 20);
}

/// Byte range of each record of a log (WAL or manifest) file.
fn record_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut reader = LogReader::new(bytes.to_vec(), WalRecovery::TolerateTornTail);
    let mut spans = Vec::new();
    let mut start = 0;
    while reader.next_record().unwrap().is_some() {
        let end = reader.valid_prefix_len() as usize;
        spans.push(start..end);
        start = end;
    }
    assert_eq!(start, bytes.len(), "the undamaged log reads to its end");
    spans
}

#[test]
fn a_flipped_bit_in_the_manifest_never_yields_wrong_data() {
    let Leveled { image, model, .. } = build_leveled_db();
    let keys = all_keys();
    let manifest = image.live_manifest();
    let bytes = image.bytes(&manifest);
    let spans = record_spans(bytes);
    let last_record = spans.last().unwrap().clone();
    let mut failures = Vec::new();
    let (mut trials, mut refused) = (0, 0);
    for offset in 0..bytes.len() {
        let bit = (offset % 8) as u8;
        let what = format!(
            "{manifest} ({} bytes, {} records), bit {bit} of byte {offset}",
            bytes.len(),
            spans.len()
        );
        let fs = image.materialize();
        fs.flip_bit(&file_path(&manifest), offset as u64, bit)
            .unwrap();
        trials += 1;
        let outcome = guarded(&what, &mut failures, || {
            let db = match Db::open(db_path(), reopen_options(&fs, WalRecovery::default())) {
                Ok(db) => db,
                Err(error) => return check_error_kind(&error).map(|()| "refused"),
            };
            match verify(&db, &model, &keys) {
                Ok(0) => Ok("exact"),
                Ok(_) => Ok("refused"),
                Err(wrong) => Err(wrong),
            }
        });
        if outcome == Some("refused") {
            refused += 1;
        }
    }
    println!(
        "manifest: {trials} single-bit flips over every byte of {manifest} ({} records); {refused} reported as errors, \
         the rest read back exactly (a damaged last edit falls back to the previous version, whose files and WALs are kept)",
        spans.len()
    );
    assert_no_failures(&failures, trials, "manifest");
    assert_eq!(trials, bytes.len());
    assert!(spans.len() >= 3, "the manifest holds several edits");
    // Every flip before the last record is reported; a flip in the last
    // record reads back exactly (checked above by `verify`).
    assert_eq!(
        refused, last_record.start,
        "flips before the last record are refused"
    );
}

#[test]
fn a_bad_current_or_a_missing_file_is_a_typed_error() {
    let Leveled { image, model, .. } = build_leveled_db();
    let keys = all_keys();
    let open = |fs: &CrashFs| Db::open(db_path(), reopen_options(fs, WalRecovery::default()));
    let mut trials = 0;

    // CURRENT names a manifest that does not exist.
    let fs = image.materialize_with("CURRENT", b"MANIFEST-999999\n");
    let error = open(&fs).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    trials += 1;

    // CURRENT holds garbage, or is gone while the tables remain.
    for garbage in [&b""[..], b"MANIFEST-000001", b"\xff\xfe\n", b"000005.sst\n"] {
        let fs = image.materialize_with("CURRENT", garbage);
        let error = open(&fs).unwrap_err();
        assert!(
            matches!(error, Error::NotADatabase { .. } | Error::Corruption { .. }),
            "{garbage:?}: {error}"
        );
        trials += 1;
    }
    // CURRENT is gone while the tables and WALs remain: refused, and the
    // files are left alone (never a new database over the old one).
    let fs = image.materialize();
    fs.remove_file(&file_path("CURRENT")).unwrap();
    let before = fs.list_dir(&db_path()).unwrap();
    let error = open(&fs).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert_eq!(
        fs.list_dir(&db_path()).unwrap(),
        before,
        "nothing was touched"
    );
    trials += 1;

    // The live manifest is gone.
    let fs = image.materialize();
    fs.remove_file(&file_path(&image.live_manifest())).unwrap();
    let error = open(&fs).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    trials += 1;

    // Each live table in turn is gone.
    for name in image.names_ending_in(".sst") {
        let fs = image.materialize();
        fs.remove_file(&file_path(&name)).unwrap();
        match open(&fs) {
            Err(error) => assert!(error.is_corruption(), "{name} removed: {error}"),
            Ok(db) => panic!(
                "{name} removed, yet the database opened ({:?})",
                verify(&db, &model, &keys)
            ),
        }
        trials += 1;
    }
    println!("current/missing files: {trials} trials");
    assert!(trials >= 6 + 6);
}
