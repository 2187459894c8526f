//! Where a write's time goes inside one member: the stages the drive loop
//! and its threads measure (log write, fsync, apply, propose -> commit),
//! summarised and logged every `--log-timings-seconds`.
//!
//! A stage is recorded per batch (one lock per batch, not per request),
//! except propose -> commit, which the drive loop records per proposal
//! round. Nothing here changes what the member does; with the interval
//! off no timings are taken at all.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// A measured stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Writing one batch of persistence requests to the raft log (no sync).
    LogWrite,
    /// Making one written batch durable (the fsync, when one is needed).
    LogSync,
    /// Persistence requests in one batch (one fsync covers them all).
    RequestsPerSync,
    /// Applying one batch of committed entries to the state machine.
    Apply,
    /// Committed entries in one apply batch.
    EntriesPerApply,
    /// Leader only: from proposing a round's entries to the round's last
    /// entry being committed (the leader's own fsync in parallel with a
    /// quorum's append, fsync and acknowledgement).
    ProposeToCommit,
}

const STAGES: [Stage; 6] = [
    Stage::LogWrite,
    Stage::LogSync,
    Stage::RequestsPerSync,
    Stage::Apply,
    Stage::EntriesPerApply,
    Stage::ProposeToCommit,
];

impl Stage {
    fn index(self) -> usize {
        // `STAGES` lists the stages in declaration order.
        debug_assert_eq!(STAGES[self as usize], self);
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Stage::LogWrite => "log write",
            Stage::LogSync => "log sync",
            Stage::RequestsPerSync => "requests/sync",
            Stage::Apply => "apply",
            Stage::EntriesPerApply => "entries/apply",
            Stage::ProposeToCommit => "propose->commit",
        }
    }

    /// Durations are kept in microseconds and shown in milliseconds;
    /// counts are shown as they are.
    fn is_duration(self) -> bool {
        !matches!(self, Stage::RequestsPerSync | Stage::EntriesPerApply)
    }
}

/// The stages of one member since the last summary.
#[derive(Debug)]
pub struct StageTimings {
    histograms: Mutex<Vec<Histogram<u64>>>,
}

impl StageTimings {
    /// Empty histograms: values from 1 to an hour in microseconds, two
    /// significant digits (1 % error), a few KiB each.
    pub fn new() -> StageTimings {
        // One per stage, in `STAGES` order (`Stage::index`); should the
        // library refuse the bounds, no stage is recorded rather than the
        // wrong one.
        let histograms = STAGES
            .iter()
            .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 2))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        StageTimings {
            histograms: Mutex::new(histograms),
        }
    }

    /// Records a count or a value.
    pub fn record(&self, stage: Stage, value: u64) {
        if let Some(histogram) = self.histograms.lock().get_mut(stage.index()) {
            histogram.saturating_record(value.max(1));
        }
    }

    /// Records a duration, in microseconds.
    pub fn record_duration(&self, stage: Stage, duration: Duration) {
        self.record(
            stage,
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
        );
    }

    /// One line summarising every stage recorded since the last call, and
    /// resets; `None` if nothing was recorded.
    pub fn take_summary(&self) -> Option<String> {
        let mut histograms = self.histograms.lock();
        let mut line = String::new();
        for (stage, histogram) in STAGES.iter().zip(histograms.iter_mut()) {
            if histogram.is_empty() {
                continue;
            }
            if !line.is_empty() {
                line.push_str("; ");
            }
            let (scale, unit) = if stage.is_duration() {
                (1000.0, " ms")
            } else {
                (1.0, "")
            };
            let value = |v: f64| v / scale;
            let _ = write!(
                line,
                "{} n={} avg={:.2}{unit} p50={:.2} p99={:.2} max={:.2}",
                stage.name(),
                histogram.len(),
                value(histogram.mean()),
                value(histogram.value_at_quantile(0.5) as f64),
                value(histogram.value_at_quantile(0.99) as f64),
                value(histogram.max() as f64),
            );
            histogram.reset();
        }
        (!line.is_empty()).then_some(line)
    }
}

impl Default for StageTimings {
    fn default() -> Self {
        StageTimings::new()
    }
}

/// The leader's propose -> commit time of each proposal round, for the
/// drive loop, which reads no clock of its own: it says when a round was
/// proposed and how far the commit index got, and this reads the clock.
#[derive(Debug)]
pub struct RoundTimer {
    timings: Arc<StageTimings>,
    /// The last index of each round not yet committed, with the moment it
    /// was proposed. Invariant: indexes increase front to back.
    uncommitted: VecDeque<(u64, Instant)>,
}

impl RoundTimer {
    /// A timer recording into `timings`.
    pub fn new(timings: Arc<StageTimings>) -> RoundTimer {
        RoundTimer {
            timings,
            uncommitted: VecDeque::new(),
        }
    }

    /// A round ending at `last_index` was proposed now.
    pub fn proposed(&mut self, last_index: u64) {
        if let Some(&(previous, _)) = self.uncommitted.back() {
            assert!(previous < last_index, "rounds are proposed in log order");
        }
        self.uncommitted.push_back((last_index, Instant::now()));
    }

    /// The commit index reached `committed`: every round up to it is timed.
    pub fn committed(&mut self, committed: u64) {
        while let Some(&(index, proposed)) = self.uncommitted.front() {
            if index > committed {
                break;
            }
            self.timings
                .record_duration(Stage::ProposeToCommit, proposed.elapsed());
            self.uncommitted.pop_front();
        }
    }

    /// Leadership was lost: rounds a new leader may overwrite are dropped.
    pub fn leadership_lost(&mut self) {
        self.uncommitted.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn summary_shows_recorded_stages_and_resets() {
        let timings = StageTimings::new();
        assert_eq!(timings.take_summary(), None);
        timings.record_duration(Stage::LogSync, Duration::from_micros(400));
        timings.record_duration(Stage::LogSync, Duration::from_micros(600));
        timings.record(Stage::RequestsPerSync, 12);
        let summary = timings.take_summary().unwrap();
        assert!(
            summary.starts_with("log sync n=2 avg=0.50 ms p50=0.40 p99=0.60 max=0.60"),
            "{summary}"
        );
        assert!(
            summary.ends_with("; requests/sync n=1 avg=12.00 p50=12.00 p99=12.00 max=12.00"),
            "{summary}"
        );
        assert!(!summary.contains("apply"), "{summary}");
        assert_eq!(timings.take_summary(), None, "reset after a summary");
    }
}
