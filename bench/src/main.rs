//! `lsm-bench`: a db_bench-style comparison of raftwood-lsm with fjall, sled
//! and (with `--features rocksdb`) RocksDB.
//!
//! For each engine, the workloads run in the order given. Every fill
//! (`fillseq`, `fillrandom`, `fillbatch`) starts a fresh database in a fresh
//! directory; the other workloads run on what the last fill left. After each
//! write workload the memtable is flushed, untimed (its time is reported
//! separately). See `docs/benchmarks.md`.

mod engine;
mod engines;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

use crate::engine::{CommonConfig, Engine, ProcessIo, Result, disk_usage_bytes, durability_note};
use crate::report::{DatabaseReport, EngineReport, Run};
use crate::workload::Params;

#[derive(Debug, Parser)]
#[command(version, about = "db_bench-style benchmark: raftwood-lsm vs fjall, sled and RocksDB")]
struct Cli {
    /// Comma-separated workloads, run in this order for each engine
    /// (fillseq, fillrandom, fillbatch, overwrite, readrandom, readmissing,
    /// seekrandom, readwhilewriting).
    #[arg(long, default_value = workload::DEFAULT)]
    benchmarks: String,

    /// Comma-separated engines (raftwood, fjall, sled, rocksdb). Default: all
    /// this build has.
    #[arg(long)]
    engines: Option<String>,

    /// Keys in the data set (16-byte keys).
    #[arg(long, default_value_t = 10_000_000)]
    num: u64,

    /// Operations per read workload. Default: --num.
    #[arg(long)]
    reads: Option<u64>,

    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,

    /// Entries per batch in fillbatch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,

    /// Entries read after each seek in seekrandom.
    #[arg(long, default_value_t = 10)]
    seek_nexts: usize,

    /// Cache budget of every engine, in MiB (raftwood/fjall/RocksDB block
    /// cache including index and filter blocks; sled page cache).
    #[arg(long, default_value_t = 64)]
    cache_mb: u64,

    /// Memtable / write buffer size of every engine that has one, in MiB.
    #[arg(long, default_value_t = 64)]
    memtable_mb: u64,

    /// fsync every write, in every engine. Default: no engine fsyncs per write.
    #[arg(long)]
    sync: bool,

    /// Directory for the databases (one fresh subdirectory per engine and fill).
    /// Default: a new directory under $TMPDIR or /tmp, or under the current
    /// directory if that is a tmpfs.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Keep the databases after the run.
    #[arg(long)]
    keep: bool,

    /// Seed of every random choice.
    #[arg(long, default_value_t = 301)]
    seed: u64,

    /// Fraction of each value that is random (the rest repeats it), as
    /// db_bench's --compression_ratio.
    #[arg(long, default_value_t = 0.5)]
    compression_ratio: f64,

    /// Run every engine this many times, alternating engines between rounds
    /// (raftwood, fjall, sled, raftwood, fjall, sled, ...), and report the
    /// best round of each workload (other processes on a shared machine only
    /// slow a round down) with the spread over the rounds.
    #[arg(long, default_value_t = 1)]
    repeat: usize,

    /// Also write the results as JSON to this file ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("lsm-bench: {error}");
        std::process::exit(1);
    }
}

fn is_tmpfs(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    let Ok(path) = path.canonicalize() else { return false };
    // The longest mount point that is a prefix of the path decides.
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            path.starts_with(mount_point).then(|| (mount_point.len(), fs_type == "tmpfs"))
        })
        .max()
        .is_some_and(|(_, tmpfs)| tmpfs)
}

fn default_dir() -> Result<PathBuf> {
    let temp = std::env::temp_dir();
    let base = if is_tmpfs(&temp) { std::env::current_dir()? } else { temp };
    Ok(base.join(format!("lsm-bench-{}", std::process::id())))
}

fn run(cli: Cli) -> Result<()> {
    let workloads: Vec<&str> = cli.benchmarks.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
    for w in &workloads {
        if !workload::ALL.contains(w) {
            return Err(format!("unknown workload {w:?}; known: {:?}", workload::ALL).into());
        }
    }
    let engine_names: Vec<String> = match &cli.engines {
        Some(list) => list.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect(),
        None => engines::available().iter().map(|e| (*e).to_owned()).collect(),
    };
    if cli.num == 0 {
        return Err("--num must be positive".into());
    }
    let params = Params {
        num: cli.num,
        reads: cli.reads.unwrap_or(cli.num),
        value_size_bytes: cli.value_size,
        batch_size: cli.batch_size,
        seek_nexts: cli.seek_nexts,
        seed: cli.seed,
        compression_ratio: cli.compression_ratio,
    };
    if params.value_size_bytes < workload::KEY_SIZE_BYTES {
        return Err(format!("--value-size must be at least {} (values embed their key)", workload::KEY_SIZE_BYTES).into());
    }
    let config = CommonConfig {
        cache_size_bytes: cli.cache_mb << 20,
        memtable_size_bytes: cli.memtable_mb << 20,
        sync: cli.sync,
    };
    let root = match &cli.dir {
        Some(dir) => dir.clone(),
        None => default_dir()?,
    };
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;

    eprintln!(
        "lsm-bench: num={} reads={} key=16 B value={} B cache={} MiB memtable={} MiB sync={} dir={}",
        params.num,
        params.reads,
        params.value_size_bytes,
        cli.cache_mb,
        cli.memtable_mb,
        cli.sync,
        root.display()
    );

    let mut run = Run {
        params: params.clone(),
        cache_mb: cli.cache_mb,
        memtable_mb: cli.memtable_mb,
        sync: cli.sync,
        workloads: workloads.iter().map(|w| (*w).to_owned()).collect(),
        repeat: cli.repeat.max(1),
        engines: Vec::new(),
    };
    for repetition in 0..run.repeat {
        if run.repeat > 1 {
            eprintln!("-- round {} of {}", repetition + 1, run.repeat);
        }
        for name in &engine_names {
            let report = run_engine(name, &workloads, &params, &config, &root.join(name), cli.keep, repetition)?;
            match run.engines.iter_mut().find(|e| e.name == report.name) {
                Some(existing) => {
                    existing.results.extend(report.results);
                    existing.databases.extend(report.databases);
                }
                None => run.engines.push(report),
            }
        }
    }
    if !cli.keep && cli.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }

    print!("{}", report::text(&run));
    if let Some(path) = &cli.json {
        let json = report::json(&run);
        if path.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// An open database and what it is called in the report.
struct OpenDatabase {
    engine: Box<dyn Engine>,
    created_by: String,
    dir: PathBuf,
    /// The process's I/O counters just before the database was opened.
    io_at_open: ProcessIo,
    /// Keys written to it by the workloads so far.
    user_writes: u64,
}

fn run_engine(
    name: &str,
    workloads: &[&str],
    params: &Params,
    config: &CommonConfig,
    engine_dir: &Path,
    keep: bool,
    repetition: usize,
) -> Result<EngineReport> {
    if engine_dir.exists() {
        std::fs::remove_dir_all(engine_dir).map_err(|e| format!("clearing {}: {e}", engine_dir.display()))?;
    }
    std::fs::create_dir_all(engine_dir)?;
    let mut report = EngineReport {
        name: name.to_owned(),
        durability: durability_note(name, config.sync).to_owned(),
        results: Vec::new(),
        databases: Vec::new(),
    };
    let mut current: Option<OpenDatabase> = None;
    for &workload in workloads {
        if workload::starts_fresh_database(workload) || current.is_none() {
            if let Some(open) = current.take() {
                report.databases.push(retire(open, params, keep, repetition)?);
            }
            let dir = engine_dir.join(workload);
            std::fs::create_dir_all(&dir)?;
            let io_at_open = ProcessIo::now();
            let engine = engines::open(name, &dir, config).map_err(|e| format!("opening {name}: {e}"))?;
            current = Some(OpenDatabase {
                engine,
                created_by: workload.to_owned(),
                dir,
                io_at_open,
                user_writes: 0,
            });
        }
        let Some(open) = current.as_mut() else { unreachable!("opened above") };
        eprint!("{:>9} {workload:<17}", open.engine.name());
        let start = Instant::now();
        let mut measurement =
            workload::run(workload, open.engine.as_ref(), params).map_err(|e| format!("{name} {workload}: {e}"))?;
        measurement.repetition = repetition;
        open.user_writes += measurement.user_writes;
        eprintln!(
            " {:>12.0} ops/s  p50 {:>7.1} us  p99 {:>8.1} us{}  [{:.1} s]  {}",
            measurement.ops_per_second(),
            measurement.latency_ns.value_at_quantile(0.5) as f64 / 1e3,
            measurement.latency_ns.value_at_quantile(0.99) as f64 / 1e3,
            measurement
                .flush_elapsed
                .map(|f| format!("  flush {:.2} s", f.as_secs_f64()))
                .unwrap_or_default(),
            start.elapsed().as_secs_f64(),
            measurement.notes.join("; ")
        );
        report.results.push((workload.to_owned(), measurement));
    }
    if let Some(open) = current.take() {
        report.databases.push(retire(open, params, keep, repetition)?);
    }
    Ok(report)
}

/// Flushes, measures and closes a database, then deletes it unless `keep`.
fn retire(open: OpenDatabase, params: &Params, keep: bool, repetition: usize) -> Result<DatabaseReport> {
    open.engine.flush()?;
    let disk_bytes = disk_usage_bytes(&open.dir)?;
    let stats = open.engine.stats();
    let start = Instant::now();
    open.engine.close()?;
    let close_elapsed = start.elapsed();
    // After close, so that work the engine finishes on closing counts.
    let io = ProcessIo::now().since(open.io_at_open);
    let disk_bytes_after_close = disk_usage_bytes(&open.dir)?;
    if !keep {
        std::fs::remove_dir_all(&open.dir)?;
    }
    let logical_bytes = params.num * (workload::KEY_SIZE_BYTES + params.value_size_bytes) as u64;
    Ok(DatabaseReport {
        repetition,
        created_by: open.created_by,
        disk_bytes,
        disk_bytes_after_close,
        logical_bytes,
        close_elapsed,
        stats,
        user_bytes_written: open.user_writes * (workload::KEY_SIZE_BYTES + params.value_size_bytes) as u64,
        io,
    })
}
