//! The results as a text table and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use crate::engine::{EngineStats, ProcessIo};
use crate::workload::{Measurement, Params};

/// One database's life: which fill created it and what it looked like at the end.
#[derive(Debug)]
pub struct DatabaseReport {
    /// Which round of `--repeat` this was (0-based).
    pub repetition: usize,
    pub created_by: String,
    /// Bytes on disk after the final flush, before close.
    pub disk_bytes: u64,
    pub disk_bytes_after_close: u64,
    /// num * (key + value) bytes: the live data.
    pub logical_bytes: u64,
    pub close_elapsed: Duration,
    pub stats: Option<EngineStats>,
    /// Keys written by the workloads times (key + value) bytes.
    pub user_bytes_written: u64,
    /// The process's writes from opening the database to closing it.
    pub io: ProcessIo,
}

impl DatabaseReport {
    pub fn space_amplification(&self) -> f64 {
        self.disk_bytes as f64 / self.logical_bytes as f64
    }

    /// Bytes the engine wrote (write(2) and friends) per user byte, for any
    /// engine; `None` if nothing was written by the workloads.
    pub fn write_amplification(&self) -> Option<f64> {
        (self.user_bytes_written > 0)
            .then(|| self.io.bytes_handed_to_kernel as f64 / self.user_bytes_written as f64)
    }

    /// Bytes the device is asked to write (whole dirtied pages) per user
    /// byte.
    pub fn device_write_amplification(&self) -> Option<f64> {
        (self.user_bytes_written > 0).then(|| self.io.bytes_to_device as f64 / self.user_bytes_written as f64)
    }
}

#[derive(Debug)]
pub struct EngineReport {
    pub name: String,
    pub durability: String,
    pub results: Vec<(String, Measurement)>,
    pub databases: Vec<DatabaseReport>,
}

impl EngineReport {
    /// Every round's measurement of `workload`, slowest first.
    fn rounds(&self, workload: &str) -> Vec<&Measurement> {
        let mut rounds: Vec<&Measurement> =
            self.results.iter().filter(|(w, _)| w == workload).map(|(_, m)| m).collect();
        rounds.sort_by(|a, b| a.ops_per_second().total_cmp(&b.ops_per_second()));
        rounds
    }

    /// The round with the best throughput. Other processes on a shared
    /// machine only ever slow a round down, so the best round is the least
    /// disturbed one; the spread table shows how much the rounds differed.
    fn result(&self, workload: &str) -> Option<&Measurement> {
        self.rounds(workload).last().copied()
    }
}

#[derive(Debug)]
pub struct Run {
    pub params: Params,
    pub cache_mb: u64,
    pub memtable_mb: u64,
    pub sync: bool,
    pub workloads: Vec<String>,
    /// Rounds of every engine (see `--repeat`).
    pub repeat: usize,
    pub engines: Vec<EngineReport>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn us(histogram_ns: &hdrhistogram::Histogram<u64>, quantile: f64) -> f64 {
    histogram_ns.value_at_quantile(quantile) as f64 / 1e3
}

/// The human-readable report.
pub fn text(run: &Run) -> String {
    let mut out = String::new();
    let p = &run.params;
    let _ = writeln!(
        out,
        "\nnum={} reads={} key=16 B value={} B (compression ratio {}) cache={} MiB memtable={} MiB sync={} seed={}",
        p.num, p.reads, p.value_size_bytes, p.compression_ratio, run.cache_mb, run.memtable_mb, run.sync, p.seed
    );
    let _ = writeln!(out, "\nDurability per engine (sync={}):", run.sync);
    for engine in &run.engines {
        let _ = writeln!(out, "  {:<9} {}", engine.name, engine.durability);
    }

    let raftwood = run.engines.iter().find(|e| e.name == "raftwood");
    let others: Vec<&EngineReport> = run.engines.iter().filter(|e| e.name != "raftwood").collect();

    let _ = writeln!(
        out,
        "\nThroughput, ops/s{} (ratio = raftwood / other; > 1 means raftwood is faster):",
        if run.repeat > 1 { format!(", best of {} alternating rounds", run.repeat) } else { String::new() }
    );
    let mut header = format!("  {:<17}", "workload");
    for engine in &run.engines {
        let _ = write!(header, " {:>12}", engine.name);
    }
    if raftwood.is_some() {
        for other in &others {
            let _ = write!(header, " {:>12}", format!("rw/{}", other.name));
        }
    }
    let _ = writeln!(out, "{header}");
    for workload in &run.workloads {
        let mut line = format!("  {workload:<17}");
        for engine in &run.engines {
            match engine.result(workload) {
                Some(m) => {
                    let _ = write!(line, " {:>12.0}", m.ops_per_second());
                }
                None => {
                    let _ = write!(line, " {:>12}", "-");
                }
            }
        }
        if let Some(rw) = raftwood.and_then(|r| r.result(workload)) {
            for other in &others {
                match other.result(workload) {
                    Some(m) => {
                        let _ = write!(line, " {:>11.2}x", rw.ops_per_second() / m.ops_per_second());
                    }
                    None => {
                        let _ = write!(line, " {:>12}", "-");
                    }
                }
            }
        }
        let _ = writeln!(out, "{line}");
    }

    if run.repeat > 1 {
        let _ = writeln!(out, "\nSpread over the rounds, min - max ops/s:");
        let mut header = format!("  {:<17}", "workload");
        for engine in &run.engines {
            let _ = write!(header, " {:>21}", engine.name);
        }
        let _ = writeln!(out, "{header}");
        for workload in &run.workloads {
            let mut line = format!("  {workload:<17}");
            for engine in &run.engines {
                let rounds = engine.rounds(workload);
                match (rounds.first(), rounds.last()) {
                    (Some(low), Some(high)) => {
                        let cell = format!("{:.0} - {:.0}", low.ops_per_second(), high.ops_per_second());
                        let _ = write!(line, " {cell:>21}");
                    }
                    _ => {
                        let _ = write!(line, " {:>21}", "-");
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }
    }

    let write_workloads: Vec<&String> = run
        .workloads
        .iter()
        .filter(|w| run.engines.iter().any(|e| e.result(w).is_some_and(|m| m.flush_elapsed.is_some())))
        .collect();
    if !write_workloads.is_empty() {
        let _ = writeln!(out, "\nWrite workloads charged with the flush that followed them, ops/s:");
        let _ = writeln!(out, "{header}");
        for workload in write_workloads {
            let mut line = format!("  {workload:<17}");
            for engine in &run.engines {
                match engine.result(workload).and_then(Measurement::ops_per_second_with_flush) {
                    Some(v) => {
                        let _ = write!(line, " {v:>12.0}");
                    }
                    None => {
                        let _ = write!(line, " {:>12}", "-");
                    }
                }
            }
            if let Some(rw) = raftwood.and_then(|r| r.result(workload)).and_then(Measurement::ops_per_second_with_flush) {
                for other in &others {
                    match other.result(workload).and_then(Measurement::ops_per_second_with_flush) {
                        Some(v) => {
                            let _ = write!(line, " {:>11.2}x", rw / v);
                        }
                        None => {
                            let _ = write!(line, " {:>12}", "-");
                        }
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }
    }

    let _ = writeln!(out, "\nLatency per operation (of the best round), p50 / p99 / p99.9 in microseconds:");
    let mut header = format!("  {:<17}", "workload");
    for engine in &run.engines {
        let _ = write!(header, " {:>22}", engine.name);
    }
    let _ = writeln!(out, "{header}");
    for workload in &run.workloads {
        let mut line = format!("  {workload:<17}");
        for engine in &run.engines {
            match engine.result(workload) {
                Some(m) => {
                    let cell = format!(
                        "{:.1} / {:.1} / {:.0}",
                        us(&m.latency_ns, 0.5),
                        us(&m.latency_ns, 0.99),
                        us(&m.latency_ns, 0.999)
                    );
                    let _ = write!(line, " {cell:>22}");
                }
                None => {
                    let _ = write!(line, " {:>22}", "-");
                }
            }
        }
        let _ = writeln!(out, "{line}");
    }

    let _ = writeln!(out, "\nNotes (best round; wrong results from any round):");
    for engine in &run.engines {
        for workload in &run.workloads {
            let Some(m) = engine.result(workload) else { continue };
            let mut notes = m.notes.clone();
            for other in engine.rounds(workload) {
                if !std::ptr::eq(other, m) {
                    notes.extend(other.notes.iter().filter(|n| n.starts_with("WRONG")).cloned());
                }
            }
            if let Some(flush) = m.flush_elapsed {
                notes.push(format!("flush afterwards {:.2} s", flush.as_secs_f64()));
            }
            if !notes.is_empty() {
                let _ = writeln!(out, "  {:<9} {:<17} {}", engine.name, workload, notes.join("; "));
            }
        }
    }

    let _ = writeln!(
        out,
        "\nSpace (after the final flush; space amp = bytes on disk / (num x {} B)) and write amplification\n\
         (write amp = bytes the process wrote with write(2) and friends, open to close, / bytes the workloads put;\n\
         device = pages it dirtied, less those dropped before writeback, / the same; engine = the engine's own count):",
        16 + p.value_size_bytes
    );
    let _ = writeln!(
        out,
        "  {:<9} {:<5} {:<11} {:>10} {:>12} {:>9} {:>9} {:>7} {:>7}  levels (MiB (files), L0 first)",
        "engine", "round", "database", "disk MiB", "after close", "space amp", "write amp", "device", "engine"
    );
    let ratio = |value: Option<f64>| value.map(|w| format!("{w:.2}")).unwrap_or_else(|| "n/a".to_owned());
    for engine in &run.engines {
        for db in &engine.databases {
            let engine_write_amp = ratio(db.stats.as_ref().and_then(|s| s.write_amplification));
            let levels = db
                .stats
                .as_ref()
                .map(|s| {
                    s.level_sizes_bytes
                        .iter()
                        .zip(&s.level_files)
                        .map(|(bytes, files)| format!("{:.0}({files})", mib(*bytes)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<9} {:<5} {:<11} {:>10.1} {:>12.1} {:>9.2} {:>9} {:>7} {:>7}  {}",
                engine.name,
                db.repetition + 1,
                db.created_by,
                mib(db.disk_bytes),
                mib(db.disk_bytes_after_close),
                db.space_amplification(),
                ratio(db.write_amplification()),
                ratio(db.device_write_amplification()),
                engine_write_amp,
                levels
            );
            if let Some(stats) = &db.stats {
                let _ = writeln!(out, "  {:<27} {}", "", stats.summary);
            }
        }
    }
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "null".to_owned() }
}

/// The machine-readable report (hand-written to keep the tool's
/// dependencies to what it measures).
pub fn json(run: &Run) -> String {
    let p = &run.params;
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"num\":{},\"reads\":{},\"key_size_bytes\":16,\"value_size_bytes\":{},\"compression_ratio\":{},\"cache_mb\":{},\"memtable_mb\":{},\"sync\":{},\"seed\":{},\"repeat\":{},\"engines\":[",
        p.num,
        p.reads,
        p.value_size_bytes,
        json_number(p.compression_ratio),
        run.cache_mb,
        run.memtable_mb,
        run.sync,
        p.seed,
        run.repeat
    );
    for (i, engine) in run.engines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"durability\":{},\"workloads\":[",
            json_string(&engine.name),
            json_string(&engine.durability)
        );
        for (j, (workload, m)) in engine.results.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let notes: Vec<String> = m.notes.iter().map(|n| json_string(n)).collect();
            let _ = write!(
                out,
                "{{\"name\":{},\"round\":{},\"ops\":{},\"seconds\":{},\"ops_per_second\":{},\"flush_seconds\":{},\"latency_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{}}},\"notes\":[{}]}}",
                json_string(workload),
                m.repetition + 1,
                m.ops,
                json_number(m.elapsed.as_secs_f64()),
                json_number(m.ops_per_second()),
                m.flush_elapsed.map(|f| json_number(f.as_secs_f64())).unwrap_or_else(|| "null".to_owned()),
                json_number(us(&m.latency_ns, 0.5)),
                json_number(us(&m.latency_ns, 0.99)),
                json_number(us(&m.latency_ns, 0.999)),
                json_number(m.latency_ns.max() as f64 / 1e3),
                notes.join(",")
            );
        }
        out.push_str("],\"databases\":[");
        for (j, db) in engine.databases.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"round\":{},\"created_by\":{},\"disk_bytes\":{},\"disk_bytes_after_close\":{},\"logical_bytes\":{},\"space_amplification\":{},\"close_seconds\":{},\"user_bytes_written\":{},\"process_bytes_written\":{},\"process_bytes_to_device\":{},\"process_write_amplification\":{},\"process_device_write_amplification\":{}",
                db.repetition + 1,
                json_string(&db.created_by),
                db.disk_bytes,
                db.disk_bytes_after_close,
                db.logical_bytes,
                json_number(db.space_amplification()),
                json_number(db.close_elapsed.as_secs_f64()),
                db.user_bytes_written,
                db.io.bytes_handed_to_kernel,
                db.io.bytes_to_device,
                db.write_amplification().map(json_number).unwrap_or_else(|| "null".to_owned()),
                db.device_write_amplification().map(json_number).unwrap_or_else(|| "null".to_owned())
            );
            if let Some(stats) = &db.stats {
                let _ = write!(
                    out,
                    ",\"write_amplification\":{},\"level_sizes_bytes\":{:?},\"level_files\":{:?},\"summary\":{}",
                    stats.write_amplification.map(json_number).unwrap_or_else(|| "null".to_owned()),
                    stats.level_sizes_bytes,
                    stats.level_files,
                    json_string(&stats.summary)
                );
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}
