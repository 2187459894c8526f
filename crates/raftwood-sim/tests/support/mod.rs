//! What the simulator's test files share: a seed's trace, the
//! byte-identical-trace check, the bugs planted in the core, and the
//! search for the first seed that finds a planted bug. Each mode (raft
//! core, server loop) passes its own `SimOptions` constructor.

#![allow(dead_code, reason = "each test file uses a different subset")]

use raftwood_raft::Config;
use raftwood_sim::{Outcome, RunReport, SimOptions, run};

/// The trace of a passing run of `options`.
pub fn trace_of(mut options: SimOptions) -> String {
    let seed = options.seed;
    options.trace = true;
    let report = run(options);
    assert!(
        report.passed(),
        "seed {seed}:\n{}",
        report.describe_failure()
    );
    report.trace.unwrap()
}

/// Seeds 1, 7 and 42 each give a long trace, byte-identical across two
/// runs.
pub fn assert_traces_repeat(options_for: fn(u64) -> SimOptions) {
    for seed in [1, 7, 42] {
        let first = trace_of(options_for(seed));
        let second = trace_of(options_for(seed));
        assert!(
            first.lines().count() > 1_000,
            "seed {seed}: trace too short"
        );
        if first != second {
            let line = first
                .lines()
                .zip(second.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!("seed {seed}: traces differ from line {line}");
        }
    }
}

pub fn plant_commit_previous_term(config: &mut Config) {
    config.planted_bug = Some(Config::PLANTED_COMMIT_PREVIOUS_TERM_BY_COUNTING);
}

pub fn plant_vote_twice(config: &mut Config) {
    config.planted_bug = Some(Config::PLANTED_VOTE_TWICE_IN_ONE_TERM);
}

pub fn plant_leader_counts_early(config: &mut Config) {
    config.planted_bug = Some(Config::PLANTED_LEADER_COUNTS_ENTRIES_BEFORE_PERSIST);
}

pub fn plant_follower_acks_early(config: &mut Config) {
    config.planted_bug = Some(Config::PLANTED_FOLLOWER_ACKS_BEFORE_PERSIST);
}

pub fn plant_duplicate_forwarded_batches(config: &mut Config) {
    config.planted_bug = Some(Config::PLANTED_APPEND_DUPLICATE_FORWARDED_BATCHES);
}

/// Runs seeds 0.. of `bugged` (the mode's options with a bug planted)
/// until `found` says a report found it; returns that seed and report.
/// Panics if none does within `bound` seeds. The seed must pass with
/// `clean` (the same mode without the bug) and must not end in the
/// checker's "unknown".
pub fn first_finding(
    name: &str,
    bound: u64,
    bugged: impl Fn(u64) -> SimOptions,
    clean: fn(u64) -> SimOptions,
    found: impl Fn(&RunReport) -> bool,
) -> (u64, RunReport) {
    for seed in 0..bound {
        let report = run(bugged(seed));
        if found(&report) {
            println!(
                "planted bug {name}: found at seed {seed} (bound {bound}): {}\n{}",
                report.outcome().name(),
                report.describe_failure()
            );
            assert_ne!(report.outcome(), Outcome::CheckerUnknown);
            let clean_report = run(clean(seed));
            assert!(
                clean_report.passed(),
                "seed {seed} fails without any planted bug:\n{}",
                clean_report.describe_failure()
            );
            return (seed, report);
        }
    }
    panic!("planted bug {name} not found in {bound} seeds");
}
