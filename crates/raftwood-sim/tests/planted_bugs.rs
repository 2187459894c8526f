//! Proves the harness can fail: with a bug planted in the raft core
//! (feature `planted-bugs` of raftwood-raft, enabled for these tests only),
//! the simulator must find it within a bounded number of seeds; the same
//! seeds must pass with the bug absent.
//!
//! Each test walks seeds from 0 and stops at the first failure. The bounds
//! below were measured (first failing seed, with room to spare); a change
//! of the simulator that moves a first failure past its bound makes the
//! simulator weaker and fails the test.
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use raftwood_raft::Config;
use raftwood_sim::{Outcome, SimOptions, run};
use support::{
    plant_commit_previous_term, plant_follower_acks_early, plant_leader_counts_early,
    plant_vote_twice,
};

/// Runs seeds 0.. with the bug until one fails; returns the seed and what
/// was found. Panics if none fails within `bound` seeds. With
/// `check_leader_commits` off, only end-to-end consequences count (lost
/// or changed committed entries, two leaders, a stuck cluster, a
/// non-linearizable history), not the direct check of each commit.
fn first_failure(
    name: &str,
    plant: fn(&mut Config),
    bound: u64,
    check_leader_commits: bool,
) -> (u64, Outcome) {
    let bugged = |seed| {
        let mut options = SimOptions::from_seed(seed);
        options.configure = Some(plant);
        options.check_leader_commits = check_leader_commits;
        options
    };
    let (seed, report) =
        support::first_finding(name, bound, bugged, SimOptions::from_seed, |report| {
            !report.passed()
        });
    (seed, report.outcome())
}

/// The seed a bug was found in passes without it (the seeds before it
/// pass with and without the bug: the search went on; and the CI test
/// `seeds.rs` runs all of them clean).
fn clean_seed_passes(seed: u64) {
    let report = run(SimOptions::from_seed(seed));
    assert!(
        report.passed(),
        "seed {seed} fails without any planted bug:\n{}",
        report.describe_failure()
    );
}

#[test]
fn finds_commit_of_previous_term_entry_by_counting() {
    let (_, outcome) = first_failure(
        "commit previous term by counting (Figure 8)",
        plant_commit_previous_term,
        20,
        true,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

#[test]
fn finds_two_votes_in_one_term() {
    let (_, outcome) = first_failure("vote twice in one term", plant_vote_twice, 100, true);
    assert_eq!(outcome, Outcome::SafetyViolation);
}

#[test]
fn finds_leader_counting_its_entries_before_persisting() {
    let (_, outcome) = first_failure(
        "leader counts its entries before persisting",
        plant_leader_counts_early,
        20,
        true,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

#[test]
fn finds_follower_acknowledging_before_persisting() {
    let (_, outcome) = first_failure(
        "follower acknowledges before persisting",
        plant_follower_acks_early,
        20,
        true,
    );
    assert_eq!(outcome, Outcome::SafetyViolation);
}

/// Without the per-commit check, the leader's early count still shows:
/// a crash loses the leader's only copy, and a new leader lacks a
/// committed entry (measured first at seed 693).
#[test]
fn finds_leader_counting_early_by_its_consequences() {
    first_failure(
        "leader counts its entries before persisting (end to end)",
        plant_leader_counts_early,
        1_000,
        false,
    );
}

/// Without the per-commit check, a follower's early acknowledgement still
/// shows: committed entries lost in a crash, or a leader stuck believing
/// a follower holds entries it lost (measured first at seed 101).
#[test]
fn finds_follower_acking_early_by_its_consequences() {
    first_failure(
        "follower acknowledges before persisting (end to end)",
        plant_follower_acks_early,
        300,
        false,
    );
}

/// A member whose state machine diverges from the others (it skips some
/// commands) is caught by the state digest checks — at a compaction point
/// or at convergence — as a safety violation.
#[test]
fn finds_a_state_machine_that_diverges() {
    let bound = 20;
    for seed in 0..bound {
        let mut options = SimOptions::from_seed(seed);
        options.planted_state_machine_bug = Some(1);
        let report = run(options);
        if report
            .safety_violations
            .iter()
            .any(|v| v.contains("state machines diverged"))
        {
            println!(
                "planted state machine bug: found at seed {seed} (bound {bound}):\n{}",
                report.describe_failure()
            );
            clean_seed_passes(seed);
            return;
        }
    }
    panic!("planted state machine bug not found in {bound} seeds");
}
