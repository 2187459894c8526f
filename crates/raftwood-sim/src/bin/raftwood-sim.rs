//! Runs simulated seeds: `--seeds N` runs seeds `--start .. start + N` on
//! every core and prints a summary; `--seed S` runs one seed (with
//! `--trace`, printing every event). Exit status 1 if any seed failed.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use clap::Parser;
use raftwood_sim::{RunReport, SimOptions, Summary, run};

#[derive(Debug, Parser)]
#[command(about = "Deterministic simulation of raftwood clusters")]
struct Args {
    /// Run this many seeds, in parallel.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of a multi-seed run.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run exactly this seed (and print its findings in full).
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print the trace of every event.
    #[arg(long)]
    trace: bool,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Every member is the server's own drive loop
    /// (`raftwood_server::driver::DriveLoop`) instead of a raft core the
    /// simulator drives itself.
    #[arg(long)]
    server_loop: bool,
}

impl Args {
    fn options(&self, seed: u64) -> SimOptions {
        if self.server_loop {
            SimOptions::server_loop_from_seed(seed)
        } else {
            SimOptions::from_seed(seed)
        }
    }

    fn replay_command(&self, seed: u64) -> String {
        let mode = if self.server_loop {
            " --server-loop"
        } else {
            ""
        };
        format!("cargo run -p raftwood-sim --release --{mode} --seed {seed} --trace")
    }
}

fn main() {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        let mut options = args.options(seed);
        options.trace = args.trace;
        let report = run(options);
        if let Some(trace) = &report.trace {
            print!("{trace}");
        }
        let mut summary = Summary::default();
        summary.add(&report);
        print!("{}", summary.render());
        if !report.passed() {
            println!("seed {seed} FAILED ({}):", report.outcome().name());
            print!("{}", report.describe_failure());
            std::process::exit(1);
        }
        return;
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZero::get)
            .unwrap_or(1)
    });
    let started = Instant::now();
    let next = AtomicU64::new(args.start);
    let end = args.start + args.seeds;
    let (sender, receiver) = mpsc::channel::<(u64, Result<RunReport, String>)>();
    let mut summary = Summary::default();
    let mut panics = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let next = &next;
            let args = &args;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let outcome =
                        std::panic::catch_unwind(|| run(args.options(seed))).map_err(|panic| {
                            panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_else(|| "panic".to_owned())
                        });
                    if sender.send((seed, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (seed, outcome) in receiver {
            match outcome {
                Ok(report) => {
                    if !report.passed() {
                        println!(
                            "seed {seed} FAILED ({}); replay: {}",
                            report.outcome().name(),
                            args.replay_command(seed)
                        );
                        print!("{}", report.describe_failure());
                    }
                    summary.add(&report);
                }
                Err(message) => {
                    println!(
                        "seed {seed} PANICKED: {message}; replay: {}",
                        args.replay_command(seed)
                    );
                    panics.push(seed);
                }
            }
            if summary.seeds % 100 == 0 {
                eprint!("\r{} seeds", summary.seeds);
                let _ = std::io::stderr().flush();
            }
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!();
    print!("{}", summary.render());
    if !panics.is_empty() {
        println!("  {:<38}{}", "panicked", panics.len());
    }
    println!(
        "wall time {elapsed:.1} s on {threads} threads: {:.0} seeds/minute",
        summary.seeds as f64 * 60.0 / elapsed.max(1e-9)
    );
    if !summary.failures.is_empty() || !panics.is_empty() {
        println!("failing seeds:");
        for (seed, outcome) in &summary.failures {
            println!(
                "  {seed} ({}): {}",
                outcome.name(),
                args.replay_command(*seed)
            );
        }
        for seed in &panics {
            println!("  {seed} (panicked): {}", args.replay_command(*seed));
        }
        std::process::exit(1);
    }
}
