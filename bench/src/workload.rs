//! The workloads, named as in LevelDB's `db_bench`, and the keys and values
//! they write.
//!
//! Keys are 16 ASCII decimal digits. Key number `i` of the data set is
//! `2 * i`, so that `readmissing` can ask for `2 * i + 1`: a key that is
//! absent but falls between present keys, which no file-range check can
//! rule out (only a filter or a search can). Every value starts with its
//! key, so reads and scans check that they got the right entry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::engine::{Engine, Result};

pub const KEY_SIZE_BYTES: usize = 16;

/// Every workload the tool knows, in a sensible default order: each fill
/// starts a fresh database; the later workloads run on what the last fill
/// (and `overwrite`) left.
pub const ALL: &[&str] = &[
    "fillseq",
    "fillrandom",
    "fillbatch",
    "overwrite",
    "readrandom",
    "readmissing",
    "seekrandom",
    "readwhilewriting",
];

pub const DEFAULT: &str = "fillseq,fillrandom,overwrite,readrandom,readmissing,seekrandom,readwhilewriting";

/// Workloads that start from a fresh, empty database.
pub fn starts_fresh_database(workload: &str) -> bool {
    matches!(workload, "fillseq" | "fillrandom" | "fillbatch")
}

/// Workloads that write (their memtable is flushed, untimed, afterwards).
pub fn writes(workload: &str) -> bool {
    matches!(workload, "fillseq" | "fillrandom" | "fillbatch" | "overwrite")
}

/// Parameters shared by all workloads.
#[derive(Debug, Clone)]
pub struct Params {
    /// Keys in the data set.
    pub num: u64,
    /// Operations of each read workload.
    pub reads: u64,
    pub value_size_bytes: usize,
    /// Entries per batch in `fillbatch`.
    pub batch_size: usize,
    /// Entries read after each seek in `seekrandom`.
    pub seek_nexts: usize,
    pub seed: u64,
    /// Fraction of a value's random tail that is incompressible.
    pub compression_ratio: f64,
}

/// What one workload measured.
#[derive(Debug)]
pub struct Measurement {
    pub ops: u64,
    pub elapsed: Duration,
    /// Per-operation latency in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Time of the untimed flush after a write workload.
    pub flush_elapsed: Option<Duration>,
    /// Human-readable remarks (hit counts, the writer's rate, ...).
    pub notes: Vec<String>,
    /// Which round of `--repeat` this was (0-based).
    pub repetition: usize,
    /// Keys the workload wrote (puts, counting each entry of a batch), the
    /// denominator of write amplification.
    pub user_writes: u64,
}

impl Measurement {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Throughput if the flush that followed is charged to the workload.
    pub fn ops_per_second_with_flush(&self) -> Option<f64> {
        self.flush_elapsed
            .map(|flush| self.ops as f64 / (self.elapsed + flush).as_secs_f64())
    }
}

/// Writes the key of data-set entry `number` (the stored key is `2 * number`).
pub fn encode_key(stored: u64, out: &mut [u8; KEY_SIZE_BYTES]) {
    let mut n = stored;
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn present_key(number: u64) -> [u8; KEY_SIZE_BYTES] {
    let mut key = [0; KEY_SIZE_BYTES];
    encode_key(2 * number, &mut key);
    key
}

fn missing_key(number: u64) -> [u8; KEY_SIZE_BYTES] {
    let mut key = [0; KEY_SIZE_BYTES];
    encode_key(2 * number + 1, &mut key);
    key
}

/// Values in the manner of db_bench's `RandomGenerator`: slices of a 1 MiB
/// pool in which every 100-byte piece is `compression_ratio` random bytes
/// repeated, so blocks compress to roughly that ratio.
pub struct ValueSource {
    pool: Vec<u8>,
    position: usize,
    value_size_bytes: usize,
    buffer: Vec<u8>,
}

impl ValueSource {
    pub fn new(seed: u64, value_size_bytes: usize, compression_ratio: f64) -> ValueSource {
        assert!(value_size_bytes >= KEY_SIZE_BYTES, "values embed their key");
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_0f_7a1e);
        let piece = 100;
        let random_len = ((piece as f64 * compression_ratio).ceil() as usize).clamp(1, piece);
        let mut pool = Vec::with_capacity((1 << 20) + value_size_bytes);
        while pool.len() < (1 << 20) + value_size_bytes {
            let random: Vec<u8> = (0..random_len).map(|_| rng.random_range(b' '..=b'~')).collect();
            pool.extend(random.iter().cycle().take(piece));
        }
        ValueSource {
            pool,
            position: 0,
            value_size_bytes,
            buffer: vec![0; value_size_bytes],
        }
    }

    /// The next value, beginning with `key`.
    pub fn next(&mut self, key: &[u8]) -> &[u8] {
        if self.position + self.value_size_bytes > self.pool.len() {
            self.position = 0;
        }
        let tail = &self.pool[self.position..self.position + self.value_size_bytes - key.len()];
        self.position += self.value_size_bytes;
        self.buffer[..key.len()].copy_from_slice(key);
        self.buffer[key.len()..].copy_from_slice(tail);
        &self.buffer
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds are valid")
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Counts wrong answers; the first few are described.
#[derive(Default)]
struct Errors {
    count: u64,
    examples: Vec<String>,
}

impl Errors {
    fn record(&mut self, description: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < 3 {
            self.examples.push(description());
        }
    }

    fn into_notes(self, notes: &mut Vec<String>) {
        if self.count > 0 {
            notes.push(format!("WRONG RESULTS: {} (e.g. {})", self.count, self.examples.join("; ")));
        }
    }
}

/// Runs `workload` against `engine`.
pub fn run(workload: &str, engine: &dyn Engine, params: &Params) -> Result<Measurement> {
    let mut measurement = match workload {
        "fillseq" => fill(engine, params, (0..params.num).collect(), 1)?,
        "fillrandom" => {
            // A random permutation: every key written exactly once, so that
            // readrandom afterwards can only hit.
            let mut order: Vec<u64> = (0..params.num).collect();
            order.shuffle(&mut SmallRng::seed_from_u64(params.seed));
            fill(engine, params, order, 1)?
        }
        "fillbatch" => fill(engine, params, (0..params.num).collect(), params.batch_size)?,
        "overwrite" => {
            let mut rng = SmallRng::seed_from_u64(params.seed + 1);
            let order = (0..params.num).map(|_| rng.random_range(0..params.num)).collect();
            fill(engine, params, order, 1)?
        }
        "readrandom" => read_random(engine, params, params.seed + 2)?,
        "readmissing" => read_missing(engine, params)?,
        "seekrandom" => seek_random(engine, params)?,
        "readwhilewriting" => read_while_writing(engine, params)?,
        other => return Err(format!("unknown workload {other:?}; known: {ALL:?}").into()),
    };
    if writes(workload) {
        let start = Instant::now();
        engine.flush()?;
        measurement.flush_elapsed = Some(start.elapsed());
    }
    Ok(measurement)
}

fn fill(engine: &dyn Engine, params: &Params, order: Vec<u64>, batch_size: usize) -> Result<Measurement> {
    let mut values = ValueSource::new(params.seed, params.value_size_bytes, params.compression_ratio);
    let mut latency_ns = new_histogram();
    let start = Instant::now();
    if batch_size <= 1 {
        for &number in &order {
            let key = present_key(number);
            let value = values.next(&key);
            let op_start = Instant::now();
            engine.put(&key, value)?;
            latency_ns.saturating_record(elapsed_ns(op_start));
        }
    } else {
        let mut keys = Vec::with_capacity(batch_size);
        let mut value_bytes = Vec::with_capacity(batch_size);
        for chunk in order.chunks(batch_size) {
            keys.clear();
            value_bytes.clear();
            for &number in chunk {
                let key = present_key(number);
                value_bytes.push(values.next(&key).to_vec());
                keys.push(key);
            }
            let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| &k[..]).zip(value_bytes.iter().map(|v| &v[..])).collect();
            let op_start = Instant::now();
            engine.put_batch(&pairs)?;
            latency_ns.saturating_record(elapsed_ns(op_start));
        }
    }
    let elapsed = start.elapsed();
    let mut notes = Vec::new();
    if batch_size > 1 {
        notes.push(format!("{batch_size} entries per batch; latency is per batch"));
    }
    Ok(Measurement {
        ops: order.len() as u64,
        elapsed,
        latency_ns,
        flush_elapsed: None,
        repetition: 0,
        notes,
        user_writes: order.len() as u64,
    })
}

/// `reads` gets of random present keys; `stop` (if given) is set when done.
fn read_random_until(
    engine: &dyn Engine,
    params: &Params,
    seed: u64,
    stop: Option<&AtomicBool>,
) -> Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut latency_ns = new_histogram();
    let mut found = 0u64;
    let mut errors = Errors::default();
    let start = Instant::now();
    let result = (|| -> Result<()> {
        for _ in 0..params.reads {
            let key = present_key(rng.random_range(0..params.num));
            // Outcome of the check of the value, made inside the visitor.
            let mut value_error: Option<String> = None;
            let op_start = Instant::now();
            let hit = engine.get(&key, &mut |value| {
                if value.len() != params.value_size_bytes || !value.starts_with(&key) {
                    value_error = Some(format!(
                        "get({}) returned a {}-byte value starting {:?}",
                        String::from_utf8_lossy(&key),
                        value.len(),
                        String::from_utf8_lossy(&value[..value.len().min(KEY_SIZE_BYTES)])
                    ));
                }
            })?;
            latency_ns.saturating_record(elapsed_ns(op_start));
            match (hit, value_error) {
                (true, None) => found += 1,
                (true, Some(error)) => errors.record(|| error),
                (false, _) => errors.record(|| format!("get({}) found nothing", String::from_utf8_lossy(&key))),
            }
        }
        Ok(())
    })();
    if let Some(stop) = stop {
        stop.store(true, Ordering::Release);
    }
    result?;
    let elapsed = start.elapsed();
    let mut notes = vec![format!("{found} of {} found", params.reads)];
    errors.into_notes(&mut notes);
    Ok(Measurement {
        ops: params.reads,
        elapsed,
        latency_ns,
        flush_elapsed: None,
        repetition: 0,
        notes,
        user_writes: 0,
    })
}

fn read_random(engine: &dyn Engine, params: &Params, seed: u64) -> Result<Measurement> {
    read_random_until(engine, params, seed, None)
}

fn read_missing(engine: &dyn Engine, params: &Params) -> Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(params.seed + 3);
    let mut latency_ns = new_histogram();
    let mut errors = Errors::default();
    let start = Instant::now();
    for _ in 0..params.reads {
        let key = missing_key(rng.random_range(0..params.num));
        let op_start = Instant::now();
        let hit = engine.get(&key, &mut |value| {
            std::hint::black_box(value);
        })?;
        latency_ns.saturating_record(elapsed_ns(op_start));
        if hit {
            errors.record(|| format!("get({}) found a value for an absent key", String::from_utf8_lossy(&key)));
        }
    }
    let elapsed = start.elapsed();
    let mut notes = Vec::new();
    errors.into_notes(&mut notes);
    Ok(Measurement {
        ops: params.reads,
        elapsed,
        latency_ns,
        flush_elapsed: None,
        repetition: 0,
        notes,
        user_writes: 0,
    })
}

fn seek_random(engine: &dyn Engine, params: &Params) -> Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(params.seed + 4);
    let mut latency_ns = new_histogram();
    let mut entries = 0u64;
    let mut errors = Errors::default();
    let mut scanned: Vec<([u8; KEY_SIZE_BYTES], bool)> = Vec::with_capacity(params.seek_nexts);
    let start = Instant::now();
    for _ in 0..params.reads {
        let number = rng.random_range(0..params.num);
        let key = present_key(number);
        scanned.clear();
        let op_start = Instant::now();
        let count = engine.seek_and_scan(&key, params.seek_nexts, &mut |k, v| {
            let mut copy = [0u8; KEY_SIZE_BYTES];
            let valid = k.len() == KEY_SIZE_BYTES && v.starts_with(k);
            if valid {
                copy.copy_from_slice(k);
            }
            scanned.push((copy, valid));
        })?;
        latency_ns.saturating_record(elapsed_ns(op_start));
        entries += count as u64;
        // The data set is dense: entries number, number + 1, ... follow.
        let expected = (params.num - number).min(params.seek_nexts as u64);
        if count as u64 != expected || scanned.len() != count {
            errors.record(|| format!("seek({}) read {count} entries, expected {expected}", String::from_utf8_lossy(&key)));
        } else if let Some(offset) = scanned.iter().zip(number..).position(|((k, valid), n)| !valid || *k != present_key(n)) {
            errors.record(|| {
                format!(
                    "seek({}): entry {offset} is {} (value matches key: {}), expected key {}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&scanned[offset].0),
                    scanned[offset].1,
                    String::from_utf8_lossy(&present_key(number + offset as u64))
                )
            });
        }
    }
    let elapsed = start.elapsed();
    let mut notes = vec![format!("{entries} entries read ({} per seek)", params.seek_nexts)];
    errors.into_notes(&mut notes);
    Ok(Measurement {
        ops: params.reads,
        elapsed,
        latency_ns,
        flush_elapsed: None,
        repetition: 0,
        notes,
        user_writes: 0,
    })
}

/// One reader doing `readrandom` while one writer overwrites random keys as
/// fast as it can; the reader's rate is the result.
fn read_while_writing(engine: &dyn Engine, params: &Params) -> Result<Measurement> {
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let writer_start = Instant::now();
    let (reader, writer) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<()> {
            let mut rng = SmallRng::seed_from_u64(params.seed + 5);
            let mut values = ValueSource::new(params.seed + 5, params.value_size_bytes, params.compression_ratio);
            while !stop.load(Ordering::Acquire) {
                let key = present_key(rng.random_range(0..params.num));
                let value = values.next(&key);
                if let Err(e) = engine.put(&key, value) {
                    stop.store(true, Ordering::Release);
                    return Err(e);
                }
                writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let reader = read_random_until(engine, params, params.seed + 6, Some(&stop));
        let writer = writer.join().map_err(|_| "the writer thread panicked");
        (reader, writer)
    });
    writer??;
    let writer_elapsed = writer_start.elapsed();
    let mut measurement = reader?;
    let writes = writes.load(Ordering::Relaxed);
    measurement.user_writes = writes;
    measurement.notes.push(format!(
        "writer: {writes} overwrites, {:.0} ops/s",
        writes as f64 / writer_elapsed.as_secs_f64()
    ));
    Ok(measurement)
}
