//! The summary of a run, as text for people and as JSON (`--json`) for
//! scripts such as `bench/compare-etcd.sh`.
//!
//! The JSON field names are an interface: scripts read `count`,
//! `error_count`, `requests_per_second`, `latency_ms.*` and `client_cpu.*`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::bench::BenchArgs;
use crate::bench::runner::Outcome;

/// Latency percentiles of the successful requests, in milliseconds.
///
/// Invariant (when `count > 0`): min <= p50 <= p90 <= p99 <= p99_9 <= max
/// and min <= avg <= max.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyMs {
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl LatencyMs {
    fn from_histogram_us(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Self {
                min: 0.0,
                avg: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Self {
            min: ms(histogram.min()),
            avg: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The load generator's own CPU use during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientCpu {
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// user + system over the elapsed time: 100 means one core busy.
    pub percent_of_one_core: f64,
    /// Cores the machine offers (the server shares them in a local run).
    pub cores: usize,
}

/// Everything a run reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub workload: String,
    pub endpoints: Vec<String>,
    pub target_leader: bool,
    pub clients: usize,
    pub conns: usize,
    /// Requests asked for (`--total`).
    pub total: u64,
    /// Requests answered with success. Invariant: count + error_count == total.
    pub count: u64,
    pub error_count: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_seconds: f64,
    /// Successful requests per second of elapsed time.
    pub requests_per_second: f64,
    pub latency_ms: LatencyMs,
    /// `None` where the process's CPU time cannot be read.
    pub client_cpu: Option<ClientCpu>,
}

impl Report {
    /// The report of `workload` (its name), which asked for `total`
    /// measurements.
    pub fn new(
        workload: String,
        total: u64,
        args: &BenchArgs,
        targets: &[String],
        outcome: &Outcome,
    ) -> Self {
        let elapsed_seconds = outcome.elapsed.as_secs_f64();
        let count = outcome.successes();
        let requests_per_second = if elapsed_seconds > 0.0 {
            count as f64 / elapsed_seconds
        } else {
            0.0
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let client_cpu = outcome.cpu.map(|cpu| ClientCpu {
            user_seconds: cpu.user.as_secs_f64(),
            system_seconds: cpu.system.as_secs_f64(),
            percent_of_one_core: if elapsed_seconds > 0.0 {
                100.0 * cpu.total().as_secs_f64() / elapsed_seconds
            } else {
                0.0
            },
            cores,
        });
        Self {
            workload,
            endpoints: targets.to_vec(),
            target_leader: args.target_leader,
            clients: args.clients,
            conns: args.conns,
            total,
            count,
            error_count: outcome.error_count(),
            errors: outcome.errors.clone(),
            elapsed_seconds,
            requests_per_second,
            latency_ms: LatencyMs::from_histogram_us(&outcome.latency_us),
            client_cpu,
        }
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{}: {}, {} over {} to {}{}",
            self.workload,
            plural(self.total, "request"),
            plural(self.clients as u64, "client"),
            plural(self.conns as u64, "connection"),
            self.endpoints.join(","),
            if self.target_leader { " (leader)" } else { "" }
        );
        let _ = writeln!(text, "  elapsed       {:.3} s", self.elapsed_seconds);
        let _ = writeln!(
            text,
            "  throughput    {:.1} requests/s ({} succeeded)",
            self.requests_per_second, self.count
        );
        let l = &self.latency_ms;
        let _ = writeln!(text, "  latency (ms)");
        for (name, value) in [
            ("min", l.min),
            ("avg", l.avg),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p99_9),
            ("max", l.max),
        ] {
            let _ = writeln!(text, "    {name:<6} {value:>10.3}");
        }
        if self.errors.is_empty() {
            let _ = writeln!(text, "  errors        none");
        } else {
            let _ = writeln!(text, "  errors        {}", self.error_count);
            for (kind, count) in &self.errors {
                let _ = writeln!(text, "    {count:>8}  {kind}");
            }
        }
        match &self.client_cpu {
            Some(cpu) => {
                let _ = writeln!(
                    text,
                    "  client CPU    user {:.2} s + system {:.2} s = {:.0}% of one core ({} cores)",
                    cpu.user_seconds, cpu.system_seconds, cpu.percent_of_one_core, cpu.cores
                );
            }
            None => {
                let _ = writeln!(text, "  client CPU    unknown (no /proc/self/stat)");
            }
        }
        text
    }
}

/// "1 client", "2 clients".
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn sample_report() -> Report {
        Report {
            workload: "put".into(),
            endpoints: vec!["http://127.0.0.1:2379".into()],
            target_leader: true,
            clients: 100,
            conns: 10,
            total: 1000,
            count: 997,
            error_count: 3,
            errors: BTreeMap::from([("Unavailable: etcdserver: leader changed".into(), 3)]),
            elapsed_seconds: 0.5,
            requests_per_second: 1994.0,
            latency_ms: LatencyMs {
                min: 0.25,
                avg: 1.5,
                p50: 1.25,
                p90: 2.0,
                p99: 4.5,
                p99_9: 7.0,
                max: 9.125,
            },
            client_cpu: Some(ClientCpu {
                user_seconds: 0.12,
                system_seconds: 0.08,
                percent_of_one_core: 40.0,
                cores: 2,
            }),
        }
    }

    #[test]
    fn text_report_shows_every_figure() {
        let text = sample_report().to_text();
        assert!(
            text.starts_with(
                "put: 1000 requests, 100 clients over 10 connections to http://127.0.0.1:2379 (leader)\n"
            ),
            "{text}"
        );
        assert!(text.contains("  throughput    1994.0 requests/s (997 succeeded)\n"));
        assert!(text.contains("    p99.9       7.000\n"), "{text}");
        assert!(text.contains("    max         9.125\n"), "{text}");
        assert!(text.contains("  errors        3\n"));
        assert!(text.contains("         3  Unavailable: etcdserver: leader changed\n"));
        assert!(text.contains("user 0.12 s + system 0.08 s = 40% of one core (2 cores)"));
    }

    #[test]
    fn text_report_says_none_without_errors() {
        let mut report = sample_report();
        report.clients = 1;
        report.conns = 1;
        report.errors.clear();
        report.error_count = 0;
        report.client_cpu = None;
        let text = report.to_text();
        assert!(text.contains("  errors        none\n"), "{text}");
        assert!(text.contains(", 1 client over 1 connection to "), "{text}");
        assert!(text.contains("client CPU    unknown"), "{text}");
    }

    #[test]
    fn json_report_has_the_field_names_scripts_read() {
        let value = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(value["count"], 997);
        assert_eq!(value["error_count"], 3);
        assert_eq!(value["requests_per_second"], 1994.0);
        assert_eq!(value["latency_ms"]["p99_9"], 7.0);
        assert_eq!(value["client_cpu"]["percent_of_one_core"], 40.0);
        assert_eq!(
            value["errors"]["Unavailable: etcdserver: leader changed"],
            3
        );
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_order() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for us in 1..=10_000u64 {
            histogram.record(us).unwrap();
        }
        let l = LatencyMs::from_histogram_us(&histogram);
        assert_eq!(l.min, 0.001);
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99 - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99);
        assert!(l.p99 <= l.p99_9 && l.p99_9 <= l.max);
        assert!(l.min <= l.avg && l.avg <= l.max);
        let empty = LatencyMs::from_histogram_us(&Histogram::<u64>::new(3).unwrap());
        assert_eq!(empty.max, 0.0);
    }
}
