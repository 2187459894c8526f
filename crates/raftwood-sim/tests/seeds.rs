//! The CI run of the simulator: a fixed range of seeds in each mode, on
//! every core, each checked for safety after every event, for liveness
//! after faults stop, and for linearizability of its client history.
//! Prints the seed count and the measured seeds per minute.
//!
//! The raft-core mode (the simulator drives `raftwood-raft` cores itself,
//! with membership churn and snapshots) and the server-loop mode (every
//! member is the server's own drive loop) share the budget; the two tests
//! run one after the other (a lock), each on every core.
//!
//! `RAFTWOOD_SIM_SEEDS=<n>` / `RAFTWOOD_SIM_START=<s>` change the raft-core
//! range, `RAFTWOOD_SIM_SERVER_LOOP_SEEDS` / `RAFTWOOD_SIM_SERVER_LOOP_START`
//! the server-loop one; the open-ended search is the binary:
//! `cargo run -p raftwood-sim --release -- --seeds 100000 [--server-loop]`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use raftwood_sim::{SimOptions, Summary, run};

/// Raft-core seeds per CI run. Was 12 000 (3–4 minutes on 2 cores in the
/// test profile, see docs/testing.md); 9 000 since the server-loop mode
/// takes a quarter of the budget.
const CI_SEEDS: u64 = 9_000;

/// Server-loop seeds per CI run: a seed costs about what a raft-core seed
/// does, so the two together take as long as the 12 000 did.
const CI_SERVER_LOOP_SEEDS: u64 = 3_000;

/// The two runs take turns: each uses every core.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_seeds(
    mode: &str,
    seeds: u64,
    start: u64,
    options: fn(u64) -> SimOptions,
    replay_flags: &str,
) {
    let _turn = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let threads = std::thread::available_parallelism()
        .map(std::num::NonZero::get)
        .unwrap_or(1);
    let next = AtomicU64::new(start);
    let summary = Mutex::new(Summary::default());
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= start + seeds {
                        break;
                    }
                    // A panic names its seed, like any other failure.
                    let report = match std::panic::catch_unwind(|| run(options(seed))) {
                        Ok(report) => report,
                        Err(panic) => {
                            let text = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            failures.lock().unwrap().push(format!(
                                "{mode} seed {seed} panicked: {text}; replay: cargo run -p raftwood-sim --release --{replay_flags} --seed {seed} --trace"
                            ));
                            continue;
                        }
                    };
                    if !report.passed() {
                        failures.lock().unwrap().push(format!(
                            "{mode} seed {seed} ({}); replay: cargo run -p raftwood-sim --release --{replay_flags} --seed {seed} --trace\n{}",
                            report.outcome().name(),
                            report.describe_failure()
                        ));
                    }
                    summary.lock().unwrap().add(&report);
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let summary = summary.into_inner().unwrap();
    println!("{mode} mode:\n{}", summary.render());
    println!(
        "{mode} mode: {seeds} seeds from {start} in {elapsed:.1} s on {threads} threads: {:.0} seeds/minute",
        seeds as f64 * 60.0 / elapsed.max(1e-9)
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(summary.seeds, seeds);
    assert!(
        summary.operations_checked > seeds * 10,
        "clients did too little"
    );
}

#[test]
fn ci_seeds_are_safe_live_and_linearizable() {
    run_seeds(
        "raft-core",
        env_u64("RAFTWOOD_SIM_SEEDS").unwrap_or(CI_SEEDS),
        env_u64("RAFTWOOD_SIM_START").unwrap_or(0),
        SimOptions::from_seed,
        "",
    );
}

#[test]
fn ci_server_loop_seeds_are_safe_live_and_linearizable() {
    run_seeds(
        "server-loop",
        env_u64("RAFTWOOD_SIM_SERVER_LOOP_SEEDS").unwrap_or(CI_SERVER_LOOP_SEEDS),
        env_u64("RAFTWOOD_SIM_SERVER_LOOP_START").unwrap_or(0),
        SimOptions::server_loop_from_seed,
        " --server-loop",
    );
}
