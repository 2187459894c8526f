//! `watch-latency`: how long a change takes to reach watchers.
//!
//! `--clients` watchers each open a watch stream on one key (watcher `i`
//! on connection `i % conns`) and wait until the server confirms it. Then
//! one writer puts the key `--put-total` times at `--put-rate` puts per
//! second. Put `n` carries `n` in its value's first eight bytes, so a
//! watcher that receives an event knows which put it comes from and
//! measures from the moment that put was sent. Every (put, watcher) pair
//! is one measurement, as in etcd's `benchmark watch-latency`: the report's
//! total is puts x watchers, and a pair whose event never came is an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use raftwood_server::proto::etcdserverpb::kv_client::KvClient;
use raftwood_server::proto::etcdserverpb::watch_client::WatchClient;
use raftwood_server::proto::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, watch_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::bench::cpu::CpuTimes;
use crate::bench::runner::{Outcome, error_kind};

/// Flags of `raftwood bench watch-latency` (etcd's names and defaults).
#[derive(Debug, Clone, Args)]
pub struct WatchLatencyArgs {
    /// Number of puts.
    #[arg(long = "put-total", default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second.
    #[arg(long = "put-rate", default_value_t = 100)]
    pub put_rate: u64,
    /// Bytes of the watched key.
    #[arg(long = "key-size", default_value_t = 32)]
    pub key_size: usize,
    /// Bytes per value (at least 8: the put's number).
    #[arg(long = "val-size", default_value_t = 32)]
    pub val_size: usize,
}

/// How long a watcher waits for the last events after the last put.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The key and value sizes, checked.
#[derive(Debug, Clone)]
pub struct WatchLatency {
    pub key: Vec<u8>,
    pub val_size: usize,
    pub put_total: u64,
    pub put_rate: u64,
}

impl WatchLatency {
    pub fn from_args(args: &WatchLatencyArgs) -> Result<Self, String> {
        if args.put_total == 0 {
            return Err("--put-total must be at least 1".into());
        }
        if args.put_rate == 0 {
            return Err("--put-rate must be at least 1".into());
        }
        if args.key_size == 0 {
            return Err("--key-size must be at least 1".into());
        }
        if args.val_size < 8 {
            return Err("--val-size must be at least 8 (the put's number)".into());
        }
        Ok(Self {
            key: vec![b'w'; args.key_size],
            val_size: args.val_size,
            put_total: args.put_total,
            put_rate: args.put_rate,
        })
    }

    /// Put `n`'s value: `n` little-endian, then padding.
    pub fn value(&self, n: u64) -> Vec<u8> {
        let mut value = vec![b'v'; self.val_size];
        value[..8].copy_from_slice(&n.to_le_bytes());
        value
    }
}

/// The put number a value carries.
fn put_number(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Sent times of the puts, in nanoseconds since the run's start, 0 until
/// sent; shared by the writer and the watchers without a lock.
struct SentTimes {
    start: Instant,
    nanos: Vec<AtomicU64>,
}

impl SentTimes {
    fn mark(&self, n: u64) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(slot) = self.nanos.get(n as usize) {
            // At least 1: 0 means "not sent".
            slot.store(nanos.max(1), Ordering::Release);
        }
    }

    /// Microseconds from put `n`'s sending to now.
    fn latency_us(&self, n: u64) -> Option<u64> {
        let sent = self.nanos.get(n as usize)?.load(Ordering::Acquire);
        if sent == 0 {
            return None;
        }
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Some(now.saturating_sub(sent) / 1_000)
    }
}

/// What one watcher brings back.
#[derive(Debug, Default)]
struct WatcherResult {
    latencies_us: Vec<u32>,
    /// Problems on the stream (not per event).
    failure: Option<String>,
}

/// Opens a watch on `key` and waits until it is created. Returns the
/// response stream and the request sender (kept open: dropping it ends
/// the stream).
async fn open_watch(
    channel: Channel,
    key: &[u8],
) -> Result<
    (
        tonic::Streaming<raftwood_server::proto::etcdserverpb::WatchResponse>,
        mpsc::Sender<WatchRequest>,
    ),
    String,
> {
    let (requests, receiver) = mpsc::channel(1);
    requests
        .send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.to_vec(),
                    ..WatchCreateRequest::default()
                },
            )),
        })
        .await
        .map_err(|_| "watch request channel closed".to_string())?;
    let mut client = WatchClient::new(channel);
    let mut stream = client
        .watch(ReceiverStream::new(receiver))
        .await
        .map_err(|status| format!("watch: {}", error_kind(&status)))?
        .into_inner();
    match stream.message().await {
        Ok(Some(response)) if response.created && !response.canceled => Ok((stream, requests)),
        Ok(Some(response)) => Err(format!("watch not created: {}", response.cancel_reason)),
        Err(status) => Err(format!("watch: {}", error_kind(&status))),
        Ok(None) => Err("watch stream ended before it was created".into()),
    }
}

/// Receives events until every put was seen, the stream fails, or
/// `deadline` (set once the last put was sent) passes.
async fn watch_events(
    mut stream: tonic::Streaming<raftwood_server::proto::etcdserverpb::WatchResponse>,
    sent: Arc<SentTimes>,
    put_total: u64,
    deadline: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
) -> WatcherResult {
    let mut result = WatcherResult::default();
    let mut seen = 0u64;
    while seen < put_total {
        let until = *deadline.borrow();
        let next = match until {
            Some(until) => match tokio::time::timeout_at(until, stream.message()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            // Puts still going: wait as long as it takes, rechecking the
            // deadline once a second.
            None => match tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
                Ok(next) => next,
                Err(_) => continue,
            },
        };
        match next {
            Ok(Some(response)) => {
                for event in response.events {
                    let Some(n) = event.kv.as_ref().and_then(|kv| put_number(&kv.value)) else {
                        continue;
                    };
                    if let Some(us) = sent.latency_us(n) {
                        result
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                        seen += 1;
                    }
                }
                if response.canceled {
                    result.failure = Some(format!("watch canceled: {}", response.cancel_reason));
                    break;
                }
            }
            Err(status) => {
                result.failure = Some(format!("watch: {}", error_kind(&status)));
                break;
            }
            Ok(None) => {
                result.failure = Some("watch stream ended".into());
                break;
            }
        }
    }
    result
}

/// Runs the workload with `watchers` watchers over `channels`.
///
/// Precondition: `channels` is not empty and `watchers >= 1`.
pub async fn run(
    workload: &WatchLatency,
    channels: &[Channel],
    watchers: usize,
) -> Result<Outcome, String> {
    assert!(!channels.is_empty() && watchers >= 1);
    let mut streams = Vec::with_capacity(watchers);
    for i in 0..watchers {
        streams.push(open_watch(channels[i % channels.len()].clone(), &workload.key).await?);
    }
    let sent = Arc::new(SentTimes {
        start: Instant::now(),
        nanos: (0..workload.put_total).map(|_| AtomicU64::new(0)).collect(),
    });
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(None);
    let mut tasks = Vec::with_capacity(watchers);
    let mut request_senders = Vec::with_capacity(watchers);
    for (stream, requests) in streams {
        request_senders.push(requests);
        tasks.push(tokio::spawn(watch_events(
            stream,
            sent.clone(),
            workload.put_total,
            deadline_rx.clone(),
        )));
    }

    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    let mut writer = KvClient::new(channels[0].clone());
    let mut put_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut interval = tokio::time::interval(Duration::from_nanos(
        1_000_000_000 / workload.put_rate.max(1),
    ));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..workload.put_total {
        interval.tick().await;
        sent.mark(n);
        let put = PutRequest {
            key: workload.key.clone(),
            value: workload.value(n),
            ..PutRequest::default()
        };
        if let Err(status) = writer.put(put).await {
            *put_errors.entry(error_kind(&status)).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let _ = deadline_tx.send(Some(tokio::time::Instant::now() + DRAIN_TIMEOUT));

    let mut latency_us = Histogram::<u64>::new_with_bounds(1, u64::from(u32::MAX), 3)
        .map_err(|e| format!("cannot make a histogram: {e}"))?;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let result = task
            .await
            .map_err(|e| format!("watcher task failed: {e}"))?;
        let received = result.latencies_us.len() as u64;
        for latency in result.latencies_us {
            latency_us.saturating_record(u64::from(latency));
        }
        // Every (put, watcher) pair without an event is an error: the put
        // failed, or the event did not come.
        let mut missing = workload.put_total.saturating_sub(received);
        for (kind, count) in &put_errors {
            let charged = (*count).min(missing);
            *errors.entry(format!("put failed: {kind}")).or_default() += charged;
            missing -= charged;
        }
        if missing > 0 {
            let kind = result.failure.unwrap_or_else(|| {
                format!(
                    "event not received within {} s of the last put",
                    DRAIN_TIMEOUT.as_secs()
                )
            });
            *errors.entry(kind).or_default() += missing;
        }
    }
    drop(request_senders);
    let cpu = match (CpuTimes::now(), cpu_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    Ok(Outcome {
        latency_us,
        errors,
        elapsed,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn args(put_total: u64, val_size: usize) -> WatchLatencyArgs {
        WatchLatencyArgs {
            put_total,
            put_rate: 100,
            key_size: 32,
            val_size,
        }
    }

    #[test]
    fn values_carry_the_put_number() {
        let workload = WatchLatency::from_args(&args(10, 32)).unwrap();
        let value = workload.value(123_456);
        assert_eq!(value.len(), 32);
        assert_eq!(put_number(&value), Some(123_456));
        assert_eq!(workload.key.len(), 32);
        assert_eq!(put_number(b"short"), None);
    }

    #[test]
    fn impossible_settings_are_refused() {
        assert!(WatchLatency::from_args(&args(0, 32)).is_err());
        assert!(WatchLatency::from_args(&args(10, 7)).is_err());
        let mut zero_rate = args(10, 32);
        zero_rate.put_rate = 0;
        assert!(WatchLatency::from_args(&zero_rate).is_err());
    }

    #[test]
    fn latency_is_measured_from_the_put_that_was_sent() {
        let sent = SentTimes {
            start: Instant::now() - Duration::from_millis(50),
            nanos: (0..2).map(|_| AtomicU64::new(0)).collect(),
        };
        assert_eq!(sent.latency_us(0), None, "not sent yet");
        sent.mark(0);
        let us = sent.latency_us(0).unwrap();
        assert!(us < 50_000, "measured from the mark, not the start: {us}");
        assert_eq!(sent.latency_us(7), None, "no such put");
    }
}
