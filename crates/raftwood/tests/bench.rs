//! `raftwood bench` against `raftwood dev`: the load generator runs, every
//! request succeeds, and the JSON report is consistent.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{DevCluster, free_ports};

/// A running `raftwood dev` on free ports and its client addresses.
fn start_dev(data_dir: &Path) -> DevCluster {
    let ports = free_ports(6);
    let (client, peer) = ports.split_at(3);
    support::start_dev(data_dir, client, peer)
}

fn bench(endpoints: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raftwood"))
        .arg("bench")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `raftwood bench ... --json` and returns the report.
fn bench_json(endpoints: &str, args: &[&str]) -> Value {
    let output = bench(endpoints, &[args, &["--json"]].concat());
    assert!(
        output.status.success(),
        "raftwood bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The checks every successful report must pass.
fn assert_clean_report(report: &Value, total: u64) {
    assert_eq!(report["total"], total, "{report:#}");
    assert_eq!(report["count"], total, "{report:#}");
    assert_eq!(report["error_count"], 0, "{report:#}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    assert!(report["requests_per_second"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_ms"];
    let field = |name: &str| latency[name].as_f64().unwrap();
    let ordered = ["min", "p50", "p90", "p99", "p99_9", "max"].map(field);
    assert!(ordered[0] > 0.0, "{report:#}");
    assert!(
        ordered.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {report:#}"
    );
    assert!(field("min") <= field("avg") && field("avg") <= field("max"));
    let cpu = &report["client_cpu"];
    assert!(cpu["percent_of_one_core"].as_f64().unwrap() >= 0.0);
    assert!(cpu["cores"].as_u64().unwrap() >= 1);
}

/// Waits until a leader is elected and a put succeeds.
fn wait_for_writes(endpoints: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = bench(endpoints, &["--no-progress", "put", "--total", "1"]);
        if output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains("errors        none")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no put succeeded within 30 s: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn put_and_range_against_a_dev_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_dev(dir.path());
    wait_for_writes(&cluster.addresses());

    let put = bench_json(
        &cluster.addresses(),
        &[
            "--clients=8",
            "--conns=2",
            "put",
            "--total=200",
            "--key-space-size=50",
            "--val-size=64",
        ],
    );
    assert_clean_report(&put, 200);
    assert_eq!(put["workload"], "put");
    assert_eq!(put["clients"], 8);
    assert_eq!(put["conns"], 2);

    // Ranges read one key whether or not it exists; a missing key is an
    // empty, successful answer, as with etcd.
    for consistency in ["l", "s"] {
        let range = bench_json(
            &cluster.addresses(),
            &[
                "--clients=4",
                "--target-leader",
                "range",
                "bench-key",
                "--total=200",
                &format!("--consistency={consistency}"),
            ],
        );
        assert_clean_report(&range, 200);
        assert_eq!(range["target_leader"], true);
        assert_eq!(range["endpoints"].as_array().unwrap().len(), 1);
    }

    let txn = bench_json(
        &cluster.addresses(),
        &[
            "txn-put",
            "--total=50",
            "--txn-ops=2",
            "--key-space-size=10",
        ],
    );
    assert_clean_report(&txn, 50);

    // Every watcher sees every put: 3 watchers x 40 puts measurements.
    let watch = bench_json(
        &cluster.addresses(),
        &[
            "--clients=3",
            "--conns=3",
            "watch-latency",
            "--put-total=40",
            "--put-rate=200",
        ],
    );
    assert_clean_report(&watch, 120);
    assert_eq!(watch["workload"], "watch-latency");
}

#[test]
fn an_unreachable_endpoint_is_reported_not_hung_on() {
    let port = free_ports(1)[0];
    let started = Instant::now();
    let output = bench(
        &format!("127.0.0.1:{port}"),
        &["--dial-timeout=2", "put", "--total=1"],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
