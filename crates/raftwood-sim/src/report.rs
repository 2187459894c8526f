//! What one run found, and how runs add up to a summary.

use std::collections::BTreeMap;

use crate::linearizability::{Operation, Verdict};

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Simulated time the run covered.
    pub simulated_us: u64,
    /// Events the simulator processed.
    pub events: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Client operations invoked.
    pub operations: usize,
    /// Operations whose outcome the client never learned.
    pub unknown_outcomes: usize,
    /// Of those, writes the committed log narrowed down (applied: took
    /// effect by the first apply; never applied after convergence: left
    /// out).
    pub unknown_narrowed: usize,
    /// Operations the linearizability checker searched.
    pub operations_checked: usize,
    /// Writes acknowledged to clients.
    pub acknowledged_writes: usize,
    /// Of the writes acknowledged, those answered by a member that did not
    /// lead when the request reached it: it forwarded the proposal to the
    /// leader inside raft (server-loop mode only; 0 in the raft-core mode).
    pub forwarded_writes_acknowledged: usize,
    /// Entries seen committed.
    pub committed_entries: usize,
    /// Safety violations (the first few).
    pub safety_violations: Vec<String>,
    /// Why the liveness phase failed, if it did.
    pub liveness_failure: Option<String>,
    /// The checker's verdict on the client history.
    pub verdict: Verdict,
    /// The trace, if it was asked for.
    pub trace: Option<String>,
    /// The client history the checker judged.
    pub history: Vec<Operation>,
}

/// How a run ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Safe, live, linearizable.
    Pass,
    /// A safety property broke.
    SafetyViolation,
    /// The cluster did not recover after faults stopped.
    LivenessFailure,
    /// The client history is not linearizable.
    NotLinearizable,
    /// The checker ran out of budget (not a pass).
    CheckerUnknown,
}

impl Outcome {
    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::SafetyViolation => "safety violation",
            Outcome::LivenessFailure => "liveness failure",
            Outcome::NotLinearizable => "not linearizable",
            Outcome::CheckerUnknown => "checker unknown (budget exceeded)",
        }
    }
}

impl RunReport {
    /// The most serious finding.
    pub fn outcome(&self) -> Outcome {
        if !self.safety_violations.is_empty() {
            Outcome::SafetyViolation
        } else if matches!(self.verdict, Verdict::Violation { .. }) {
            Outcome::NotLinearizable
        } else if self.liveness_failure.is_some() {
            Outcome::LivenessFailure
        } else if matches!(self.verdict, Verdict::Unknown { .. }) {
            Outcome::CheckerUnknown
        } else {
            Outcome::Pass
        }
    }

    /// Whether the run found nothing wrong (an exhausted checker budget is
    /// not a pass).
    pub fn passed(&self) -> bool {
        self.outcome() == Outcome::Pass
    }

    /// Every finding, readable.
    pub fn describe_failure(&self) -> String {
        let mut text = String::new();
        for violation in &self.safety_violations {
            text.push_str(&format!("safety: {violation}\n"));
        }
        if let Some(failure) = &self.liveness_failure {
            text.push_str(&format!("liveness: {failure}\n"));
        }
        if !matches!(self.verdict, Verdict::Linearizable) {
            text.push_str(&self.verdict.describe());
            text.push('\n');
        }
        text
    }
}

/// Totals over many runs.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Simulated time, all runs.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// Faults by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Client operations invoked.
    pub operations: u64,
    /// Operations checked for linearizability.
    pub operations_checked: u64,
    /// Operations with unknown outcome.
    pub unknown_outcomes: u64,
    /// Unknown-outcome writes narrowed by the committed log.
    pub unknown_narrowed: u64,
    /// Runs by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Seeds that failed, with their outcome, ascending.
    pub failures: Vec<(u64, Outcome)>,
}

impl Summary {
    /// Adds one run.
    pub fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        self.simulated_us += report.simulated_us;
        self.events += report.events;
        for (kind, count) in &report.faults {
            *self.faults.entry(kind).or_default() += count;
        }
        self.operations += report.operations as u64;
        self.operations_checked += report.operations_checked as u64;
        self.unknown_outcomes += report.unknown_outcomes as u64;
        self.unknown_narrowed += report.unknown_narrowed as u64;
        let outcome = report.outcome();
        *self.outcomes.entry(outcome).or_default() += 1;
        if outcome != Outcome::Pass {
            self.failures.push((report.seed, outcome));
            self.failures.sort_unstable();
        }
    }

    /// The summary as printed.
    pub fn render(&self) -> String {
        let mut text = String::new();
        text.push_str(&format!("seeds run:            {}\n", self.seeds));
        text.push_str(&format!(
            "simulated time:       {:.1} s\n",
            self.simulated_us as f64 / 1e6
        ));
        text.push_str(&format!("events:               {}\n", self.events));
        text.push_str("faults injected:\n");
        for (kind, count) in &self.faults {
            text.push_str(&format!("  {kind:<38}{count}\n"));
        }
        text.push_str(&format!("operations invoked:   {}\n", self.operations));
        text.push_str(&format!(
            "operations checked:   {}\n",
            self.operations_checked
        ));
        text.push_str(&format!(
            "unknown outcomes:     {}\n",
            self.unknown_outcomes
        ));
        text.push_str(&format!(
            "  narrowed by the log: {}\n",
            self.unknown_narrowed
        ));
        text.push_str("verdicts:\n");
        for (outcome, count) in &self.outcomes {
            text.push_str(&format!("  {:<38}{count}\n", outcome.name()));
        }
        text
    }
}
