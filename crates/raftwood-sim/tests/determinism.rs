//! One seed decides everything: the trace of a run (every event, in
//! order, with its simulated time) is byte-identical across runs, and
//! different seeds give different runs.
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use raftwood_sim::{SimOptions, run};

fn trace_of(seed: u64) -> String {
    support::trace_of(SimOptions::from_seed(seed))
}

#[test]
fn the_trace_of_a_seed_is_byte_identical_across_runs() {
    support::assert_traces_repeat(SimOptions::from_seed);
}

#[test]
fn different_seeds_give_different_runs() {
    assert_ne!(trace_of(1), trace_of(2));
}

#[test]
fn the_summary_of_a_seed_is_reproducible() {
    let a = run(SimOptions::from_seed(5));
    let b = run(SimOptions::from_seed(5));
    assert_eq!(a.events, b.events);
    assert_eq!(a.simulated_us, b.simulated_us);
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.history, b.history);
}
