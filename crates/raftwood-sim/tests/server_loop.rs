#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The server-loop mode: every member is the server's own drive loop
//! (`raftwood_server::driver::DriveLoop`, its persistence and apply
//! batches), under the raft-core mode's faults and checks. Its seeds pass
//! with a linearizable history, its trace is a function of the seed, and
//! bugs planted in the core under it are found within a bounded number of
//! seeds.

mod support;

use raftwood_raft::Config;
use raftwood_sim::{Outcome, SimOptions, Summary, linearizability::Verdict, run};
use support::{
    plant_commit_previous_term, plant_duplicate_forwarded_batches, plant_follower_acks_early,
    plant_leader_counts_early, plant_vote_twice,
};

fn trace_of(seed: u64) -> String {
    support::trace_of(SimOptions::server_loop_from_seed(seed))
}

#[test]
fn server_loop_seeds_pass_with_a_linearizable_history() {
    let mut summary = Summary::default();
    let mut forwarded = 0;
    for seed in 0..40 {
        let report = run(SimOptions::server_loop_from_seed(seed));
        assert!(
            report.passed(),
            "server-loop seed {seed} ({}); replay: cargo run -p raftwood-sim --release -- --server-loop --seed {seed} --trace\n{}",
            report.outcome().name(),
            report.describe_failure()
        );
        assert_eq!(report.verdict, Verdict::Linearizable, "seed {seed}");
        forwarded += report.forwarded_writes_acknowledged;
        summary.add(&report);
    }
    // Clients send to whichever member they believe leads, so many writes
    // reach followers, which forward them inside raft and answer them from
    // their own apply: the checker covers that path too.
    assert!(
        forwarded > 40,
        "only {forwarded} writes were acknowledged by a follower"
    );
    println!("{}", summary.render());
    println!("writes acknowledged by a follower: {forwarded}");
    // Some storm seeds complete nothing (as in the raft-core mode); the
    // run as a whole must check plenty.
    assert!(
        summary.operations_checked > 40 * 10,
        "clients did too little: {} operations checked",
        summary.operations_checked
    );
    let count = |kind: &str| summary.faults.get(kind).copied().unwrap_or(0);
    assert!(count("crash") > 0, "no crash was injected");
    // The whole member's life is covered: snapshots installed and crashes
    // inside their steps, and membership changes through the drive loop
    // (applied ones, ones its strict reconfiguration check refused, and
    // members that applied their own removal and stopped).
    for kind in [
        "snapshot-installed",
        "crash-in-snapshot-take",
        "crash-in-snapshot-install",
        "membership-add-learner",
        "membership-promote",
        "membership-remove-voter",
        "membership-applied",
        "membership-refused",
        "member-removed-stopped",
    ] {
        assert!(count(kind) > 0, "no {kind} in 40 seeds");
    }
}

#[test]
fn the_server_loop_trace_of_a_seed_is_byte_identical_across_runs() {
    support::assert_traces_repeat(SimOptions::server_loop_from_seed);
}

#[test]
fn the_server_loop_mode_is_not_the_raft_core_mode() {
    let mut core = SimOptions::from_seed(7);
    core.trace = true;
    let core = run(core).trace.unwrap();
    let server_loop = trace_of(7);
    assert_ne!(server_loop, core);
    assert!(server_loop.contains("is Leader"), "someone leads");
    assert!(
        server_loop.contains("persisted"),
        "the disk completes writes"
    );
}

/// Runs server-loop seeds 0.. with the bug until one fails; panics if none
/// fails within `bound`. The failing seed must pass without the bug.
fn first_failure(name: &str, plant: fn(&mut Config), bound: u64) -> (u64, Outcome) {
    let bugged = |seed| {
        let mut options = SimOptions::server_loop_from_seed(seed);
        options.configure = Some(plant);
        options
    };
    let (seed, report) = support::first_finding(
        &format!("{name} (server-loop mode)"),
        bound,
        bugged,
        SimOptions::server_loop_from_seed,
        |report| !report.passed(),
    );
    (seed, report.outcome())
}

// Bounds: first failing server-loop seed as measured (9, 16, 0, 0, and
// 13 for the duplicated forwarded batch), with room to spare.

#[test]
fn finds_commit_of_previous_term_entry_by_counting_under_the_drive_loop() {
    let (_, outcome) = first_failure(
        "commit previous term by counting (Figure 8)",
        plant_commit_previous_term,
        40,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

#[test]
fn finds_two_votes_in_one_term_under_the_drive_loop() {
    let (_, outcome) = first_failure("vote twice in one term", plant_vote_twice, 100);
    assert_eq!(outcome, Outcome::SafetyViolation);
}

/// The drive loop reports a persist ticket only after its batch's sync;
/// a leader that counts its entries before that is caught by the
/// per-commit durability check.
#[test]
fn finds_leader_counting_its_entries_before_persisting_under_the_drive_loop() {
    let (_, outcome) = first_failure(
        "leader counts its entries before persisting",
        plant_leader_counts_early,
        20,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

/// The network duplicates messages; a leader that appended a follower's
/// forwarded batch once per copy would commit a client's command twice
/// (the safety checker's "duplicated command"). The batch-id check is what
/// prevents it.
#[test]
fn finds_a_duplicated_forwarded_batch_appended_twice_under_the_drive_loop() {
    let (_, outcome) = first_failure(
        "leader appends a duplicated forwarded batch",
        plant_duplicate_forwarded_batches,
        40,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

#[test]
fn finds_follower_acknowledging_before_persisting_under_the_drive_loop() {
    let (_, outcome) = first_failure(
        "follower acknowledges before persisting",
        plant_follower_acks_early,
        20,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

/// A bug in the persistence path rather than the core: the disk's fsync
/// acknowledges without making the batch durable, so the loop reports
/// tickets for writes a crash loses. Found by the durability check of
/// leader commits.
#[test]
fn finds_a_disk_whose_fsync_lies_under_the_drive_loop() {
    let lying = |seed| {
        let mut options = SimOptions::server_loop_from_seed(seed);
        options.planted_fsync_lies = true;
        options
    };
    let (_, report) = support::first_finding(
        "lying fsync (server-loop mode)",
        20,
        lying,
        SimOptions::server_loop_from_seed,
        |report| !report.passed(),
    );
    assert_eq!(report.outcome(), Outcome::SafetyViolation);
    assert!(
        report
            .safety_violations
            .iter()
            .any(|v| v.contains("durability")),
        "{:?}",
        report.safety_violations
    );
}
