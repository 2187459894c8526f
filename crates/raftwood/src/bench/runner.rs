//! The clients: `--clients` tasks, each with one request in flight, pull
//! request numbers from a shared counter until `--total` are taken, and
//! time every request.
//!
//! The hot path is kept small so the tool measures the server, not itself:
//! a client appends each latency to its own vector (4 bytes per request)
//! and everything goes into one HDR histogram after the run. A histogram
//! per client would cost tens of kilobytes each, a shared one a lock per
//! request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use raftwood_server::proto::etcdserverpb::kv_client::KvClient;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tonic::transport::Channel;

use crate::bench::cpu::CpuTimes;
use crate::bench::workload::{Request, Workload};

/// How the run is driven.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub clients: usize,
    pub show_progress: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Latency of every successful request, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failed requests by kind (gRPC code and message).
    pub errors: BTreeMap<String, u64>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// CPU the whole tool used during the run; `None` without `/proc`.
    pub cpu: Option<CpuTimes>,
}

impl Outcome {
    pub fn successes(&self) -> u64 {
        self.latency_us.len()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one client task brings back.
#[derive(Debug, Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

/// A failed request's kind: its gRPC code and message, as etcd's tool
/// groups errors by their text.
pub fn error_kind(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn send(client: &mut KvClient<Channel>, request: Request) -> Result<(), tonic::Status> {
    match request {
        Request::Put(put) => client.put(put).await.map(drop),
        Request::Range(range) => client.range(range).await.map(drop),
        Request::Txn(txn) => client.txn(txn).await.map(drop),
    }
}

async fn run_client(
    client_index: usize,
    workload: Arc<Workload>,
    channel: Channel,
    next_request: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
) -> ClientResult {
    let total = workload.total();
    let mut client = KvClient::new(channel);
    let mut rng = SmallRng::seed_from_u64(client_index as u64);
    let mut result = ClientResult::default();
    loop {
        let request_index = next_request.fetch_add(1, Ordering::Relaxed);
        if request_index >= total {
            break;
        }
        let request = workload.request(request_index, &mut rng);
        let started = Instant::now();
        let answer = send(&mut client, request).await;
        let latency = started.elapsed();
        match answer {
            Ok(()) => result
                .latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX)),
            Err(status) => *result.errors.entry(error_kind(&status)).or_default() += 1,
        }
        completed.fetch_add(1, Ordering::Relaxed);
    }
    result
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    // Drawn on stderr; indicatif hides it when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs `workload` with `settings.clients` clients; client `i` sends on
/// `channels[i % channels.len()]`.
///
/// Precondition: `channels` is not empty and `settings.clients >= 1`.
pub async fn run(
    workload: &Workload,
    channels: &[Channel],
    settings: &RunSettings,
) -> Result<Outcome, String> {
    assert!(!channels.is_empty() && settings.clients >= 1);
    let workload = Arc::new(workload.clone());
    let next_request = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(workload.total(), settings.show_progress);

    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    let tasks: Vec<_> = (0..settings.clients)
        .map(|i| {
            tokio::spawn(run_client(
                i,
                workload.clone(),
                channels[i % channels.len()].clone(),
                next_request.clone(),
                completed.clone(),
            ))
        })
        .collect();
    let ticker = {
        let bar = bar.clone();
        let completed = completed.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            loop {
                interval.tick().await;
                bar.set_position(completed.load(Ordering::Relaxed));
            }
        })
    };
    let mut results = Vec::with_capacity(tasks.len());
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok(result) => results.push(result),
            Err(join_error) => {
                *errors
                    .entry(format!("client task failed: {join_error}"))
                    .or_default() += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = match (CpuTimes::now(), cpu_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    ticker.abort();
    bar.finish_and_clear();

    // Up to u32::MAX microseconds (what a client stores), three significant
    // digits: about 0.1% error.
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, u64::from(u32::MAX), 3)
        .map_err(|e| format!("cannot make a histogram: {e}"))?;
    for result in results {
        for latency in result.latencies_us {
            latency_us.saturating_record(u64::from(latency));
        }
        for (kind, count) in result.errors {
            *errors.entry(kind).or_default() += count;
        }
    }
    Ok(Outcome {
        latency_us,
        errors,
        elapsed,
        cpu,
    })
}
