//! `raftwood bench`: a load generator speaking etcd's v3 gRPC API, so the
//! same tool measures raftwood and etcd side by side.
//!
//! The flags follow etcd's own `benchmark` tool: global `--endpoints`,
//! `--conns`, `--clients`, `--target-leader`; subcommands `put`, `range`,
//! `txn-put`, `watch-latency`. Clients share connections as with etcd's tool: client `i`
//! sends on connection `i % conns`, and connection `j` goes to endpoint
//! `j % endpoints`. The report (`report.rs`) gives throughput, latency
//! percentiles from an HDR histogram, errors by kind and the tool's own CPU
//! use, so a reader can see the client was not the bottleneck.
//!
//! One concept per file: `keys.rs` (which key request `i` touches),
//! `workload.rs` (the request each subcommand sends), `watch_latency.rs`
//! (watchers and a paced writer, for `watch-latency`), `connect.rs`
//! (endpoints, channels, the leader), `runner.rs` (clients, timing,
//! progress), `report.rs` (the summary, as text or JSON), `cpu.rs` (the
//! process's CPU time).

mod connect;
mod cpu;
mod keys;
mod report;
mod runner;
mod watch_latency;
mod workload;

use clap::{Args, Subcommand};

use crate::bench::report::Report;
use crate::bench::watch_latency::{WatchLatency, WatchLatencyArgs};
use crate::bench::workload::{PutArgs, RangeArgs, TxnPutArgs, Workload};

/// Flags of `raftwood bench` shared by every workload.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Client URLs, comma-separated (`host:port` or `http://host:port`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        global = true
    )]
    pub endpoints: Vec<String>,
    /// Number of gRPC connections (HTTP/2), shared by the clients.
    #[arg(long, default_value_t = 1, global = true)]
    pub conns: usize,
    /// Number of concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1, global = true)]
    pub clients: usize,
    /// Find the leader with Maintenance.Status and send only to it.
    #[arg(long = "target-leader", global = true)]
    pub target_leader: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not draw the progress bar (it is drawn on stderr, and only on a
    /// terminal).
    #[arg(long = "no-progress", global = true)]
    pub no_progress: bool,
    /// Seconds to wait for each connection.
    #[arg(long = "dial-timeout", default_value_t = 5, global = true)]
    pub dial_timeout_seconds: u64,
    #[command(subcommand)]
    pub workload: BenchCommand,
}

/// The workloads.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Put keys: `--total` puts over `--key-space-size` keys.
    Put(PutArgs),
    /// Range requests for one key (or `[key, range_end)`).
    Range(RangeArgs),
    /// Transactions of `--txn-ops` puts each, without compares.
    #[command(name = "txn-put")]
    TxnPut(TxnPutArgs),
    /// Time from a put to its event at `--clients` watchers of the key.
    #[command(name = "watch-latency")]
    WatchLatency(WatchLatencyArgs),
}

/// What a run does: requests from clients, or puts seen by watchers.
enum Job {
    Requests(Workload),
    WatchLatency(WatchLatency),
}

impl BenchArgs {
    /// Refuses settings that cannot run, before any connection is made.
    fn validate(&self) -> Result<(), String> {
        if self.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err("--endpoints names no endpoint".into());
        }
        if self.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        Ok(())
    }
}

/// Runs the benchmark and prints its report on stdout.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    args.validate()?;
    let job = match &args.workload {
        BenchCommand::WatchLatency(watch) => Job::WatchLatency(WatchLatency::from_args(watch)?),
        command => Job::Requests(Workload::from_command(command)?),
    };
    let endpoints = connect::normalize_endpoints(&args.endpoints)?;
    let dial_timeout = std::time::Duration::from_secs(args.dial_timeout_seconds);
    let targets = if args.target_leader {
        vec![connect::find_leader(&endpoints, dial_timeout).await?]
    } else {
        endpoints
    };
    // Only the first `conns` endpoints get a connection; report those.
    let targets: Vec<String> = targets.into_iter().take(args.conns).collect();
    let channels = connect::dial_all(&targets, args.conns, dial_timeout).await?;
    let (name, total, outcome) = match job {
        Job::Requests(workload) => {
            let settings = runner::RunSettings {
                clients: args.clients,
                show_progress: !args.no_progress && !args.json,
            };
            let outcome = runner::run(&workload, &channels, &settings).await?;
            (workload.name(), workload.total(), outcome)
        }
        Job::WatchLatency(watch) => {
            let outcome = watch_latency::run(&watch, &channels, args.clients).await?;
            let total = watch.put_total.saturating_mul(args.clients as u64);
            ("watch-latency".to_string(), total, outcome)
        }
    };
    let report = Report::new(name, total, &args, &targets, &outcome);
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("cannot encode the report: {e}"))?;
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::bench::workload::Consistency;
    use clap::Parser;

    /// A stand-in for the binary's command line, so flags parse as they do
    /// under `raftwood bench`.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn put_flags_parse_as_etcds_benchmark_spells_them() {
        let args = parse(&[
            "--endpoints=127.0.0.1:2379,127.0.0.1:22379",
            "--conns=10",
            "--clients=100",
            "--target-leader",
            "put",
            "--key-size=8",
            "--val-size=256",
            "--total=100000",
            "--key-space-size=100000",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(args.endpoints, ["127.0.0.1:2379", "127.0.0.1:22379"]);
        assert_eq!((args.conns, args.clients), (10, 100));
        assert!(args.target_leader && !args.json);
        let BenchCommand::Put(put) = args.workload else {
            panic!("put parsed as {:?}", args.workload);
        };
        assert_eq!((put.key_size, put.val_size), (8, 256));
        assert_eq!((put.total, put.key_space_size), (100_000, 100_000));
        assert!(put.sequential_keys);
    }

    #[test]
    fn defaults_are_etcds() {
        let args = parse(&["put"]).unwrap();
        assert_eq!(args.endpoints, ["127.0.0.1:2379"]);
        assert_eq!((args.conns, args.clients), (1, 1));
        let BenchCommand::Put(put) = args.workload else {
            panic!("put parsed as {:?}", args.workload);
        };
        assert_eq!((put.key_size, put.val_size, put.total), (8, 8, 10_000));
        assert_eq!(put.key_space_size, 1);
        assert!(!put.sequential_keys);
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let args = parse(&[
            "range",
            "foo",
            "--consistency",
            "s",
            "--clients",
            "4",
            "--json",
        ])
        .unwrap();
        assert_eq!(args.clients, 4);
        assert!(args.json);
        let BenchCommand::Range(range) = args.workload else {
            panic!("range parsed as {:?}", args.workload);
        };
        assert_eq!(range.key, "foo");
        assert_eq!(range.range_end, None);
        assert_eq!(range.consistency, Consistency::S);
        assert_eq!(range.total, 10_000);
    }

    #[test]
    fn txn_put_and_bad_values() {
        let args = parse(&["txn-put", "--txn-ops", "4", "--key-space-size", "1000"]).unwrap();
        let BenchCommand::TxnPut(txn) = args.workload else {
            panic!("txn-put parsed as {:?}", args.workload);
        };
        assert_eq!((txn.txn_ops, txn.key_space_size), (4, 1000));
        assert!(parse(&["range", "foo", "--consistency", "x"]).is_err());
        assert!(parse(&["range"]).is_err(), "range needs a key");
        assert!(parse(&["put", "--total", "-1"]).is_err());
        assert!(parse(&["--conns", "0", "put"]).unwrap().validate().is_err());
        assert!(
            parse(&["--clients", "0", "put"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--clients", "3", "put"])
                .unwrap()
                .validate()
                .is_ok()
        );
    }
}
