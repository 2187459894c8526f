//! Three members under the load that used to starve them: 10,000 watchers
//! on 100 streams, HashKV and large ranges in a loop, while a put load
//! runs. The leader keeps its leadership (ticks and heartbeats are not
//! starved), every watcher gets exactly its events, and the puts' latency
//! is printed (`cargo test -p raftwood-server --test watch_stress --
//! --nocapture`; the figures are in docs/benchmarks.md).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use raftwood_server::RunningNode;
use raftwood_server::proto::etcdserverpb::kv_client::KvClient;
use raftwood_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use raftwood_server::proto::etcdserverpb::watch_client::WatchClient;
use raftwood_server::proto::etcdserverpb::watch_request::RequestUnion;
use raftwood_server::proto::etcdserverpb::{
    HashKvRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest, request_op,
};
use support::{channel, layout, leader_of, put_eventually, start_all};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const STREAMS: usize = 100;
const WATCHERS_PER_STREAM: usize = 100;
const WATCHED_KEYS: usize = STREAMS * WATCHERS_PER_STREAM;
const PUT_CLIENTS: usize = 10;
/// Every watched key is put once.
const PUTS_PER_CLIENT: usize = WATCHED_KEYS / PUT_CLIENTS;
/// Keys a large range returns.
const RANGE_KEYS: usize = 20_000;

fn watched_key(n: usize) -> Vec<u8> {
    format!("w/{n:05}").into_bytes()
}

/// Writes `RANGE_KEYS` keys under `r/`, 128 to a txn.
async fn preload_range_keys(port: u16) {
    let mut client = KvClient::new(channel(port));
    for first in (0..RANGE_KEYS).step_by(128) {
        let success = (first..(first + 128).min(RANGE_KEYS))
            .map(|n| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("r/{n:05}").into_bytes(),
                    value: vec![b'v'; 100],
                    ..PutRequest::default()
                })),
            })
            .collect();
        let txn = TxnRequest {
            success,
            ..TxnRequest::default()
        };
        client.txn(txn).await.unwrap();
    }
}

/// Opens stream `s` on `port` with its watchers (each watch id is its key's
/// number plus one) and counts, per key, the events they receive. Returns
/// once every watcher is created.
async fn open_stream(s: usize, port: u16, events_per_key: Arc<Vec<AtomicU32>>) {
    let (requests, outgoing) = mpsc::channel(WATCHERS_PER_STREAM);
    let mut client = WatchClient::new(channel(port));
    for w in 0..WATCHERS_PER_STREAM {
        let n = s * WATCHERS_PER_STREAM + w;
        let create = WatchCreateRequest {
            key: watched_key(n),
            watch_id: n as i64 + 1,
            ..WatchCreateRequest::default()
        };
        requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await
            .unwrap();
    }
    let mut responses = client
        .watch(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let mut created = 0;
    while created < WATCHERS_PER_STREAM {
        let response = responses.message().await.unwrap().unwrap();
        assert!(!response.canceled, "{response:?}");
        created += usize::from(response.created);
    }
    tokio::spawn(async move {
        let _keep_open = requests;
        while let Ok(Some(response)) = responses.message().await {
            let n = usize::try_from(response.watch_id - 1).unwrap();
            let events = u32::try_from(response.events.len()).unwrap();
            events_per_key[n].fetch_add(events, Ordering::Relaxed);
        }
    });
}

/// Until `stop`: HashKV on every member in turn, and large linearizable
/// ranges; returns how many of each completed.
async fn background_reads(ports: Vec<u16>, stop: Arc<AtomicBool>) -> (u32, u32) {
    let hashing = {
        let (ports, stop) = (ports.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let port = ports[done as usize % ports.len()];
                let mut client = MaintenanceClient::new(channel(port));
                client.hash_kv(HashKvRequest::default()).await.unwrap();
                done += 1;
            }
            done
        })
    };
    let ranging = tokio::spawn(async move {
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            let port = ports[done as usize % ports.len()];
            let mut client = KvClient::new(channel(port));
            let range = RangeRequest {
                key: b"r/".to_vec(),
                range_end: b"r0".to_vec(),
                ..RangeRequest::default()
            };
            let response = client.range(range).await.unwrap().into_inner();
            assert_eq!(response.kvs.len(), RANGE_KEYS);
            done += 1;
        }
        done
    });
    (hashing.await.unwrap(), ranging.await.unwrap())
}

/// Client `c` puts its share of the watched keys through member `port`;
/// returns each put's latency.
async fn put_load(c: usize, port: u16) -> Vec<Duration> {
    let mut client = KvClient::new(channel(port));
    let mut latencies = Vec::with_capacity(PUTS_PER_CLIENT);
    for i in 0..PUTS_PER_CLIENT {
        let started = Instant::now();
        client
            .put(PutRequest {
                key: watched_key(c * PUTS_PER_CLIENT + i),
                value: b"x".to_vec(),
                ..PutRequest::default()
            })
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies
}

fn leader_and_term(nodes: &[Option<RunningNode>], leader: usize) -> (usize, u64) {
    let status = *nodes[leader].as_ref().unwrap().context.status.borrow();
    (leader, status.term)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_hash_kv_and_large_ranges_under_a_put_load() {
    // etcd's default timing, as operators run it.
    let (_dir, ports, configs) = layout(|c| {
        c.heartbeat_interval_ms = 100;
        c.election_timeout_ms = 1000;
    });
    let nodes: Vec<Option<RunningNode>> = start_all(&configs).await.into_iter().map(Some).collect();
    let leader = leader_of(&nodes).await;
    let mut first = KvClient::new(channel(ports[leader]));
    put_eventually(&mut first, "start", "x").await;
    preload_range_keys(ports[leader]).await;

    let events_per_key: Arc<Vec<AtomicU32>> =
        Arc::new((0..WATCHED_KEYS).map(|_| AtomicU32::new(0)).collect());
    for s in 0..STREAMS {
        open_stream(s, ports[s % ports.len()], Arc::clone(&events_per_key)).await;
    }
    let before = leader_and_term(&nodes, leader);

    let stop = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(background_reads(ports.clone(), Arc::clone(&stop)));
    let started = Instant::now();
    let load: Vec<_> = (0..PUT_CLIENTS)
        .map(|c| tokio::spawn(put_load(c, ports[c % ports.len()])))
        .collect();
    let mut latencies = Vec::new();
    for client in load {
        latencies.extend(client.await.unwrap());
    }
    let put_seconds = started.elapsed().as_secs_f64();

    // Every watcher gets its key's one event.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered = events_per_key
            .iter()
            .filter(|count| count.load(Ordering::Relaxed) == 1)
            .count();
        if delivered == WATCHED_KEYS {
            break;
        }
        let extra = events_per_key
            .iter()
            .find(|c| c.load(Ordering::Relaxed) > 1);
        assert!(extra.is_none(), "a watcher got an event twice");
        assert!(
            Instant::now() < deadline,
            "{delivered} of {WATCHED_KEYS} watchers got their event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (hashes, ranges) = background.await.unwrap();

    let after = leader_and_term(&nodes, leader_of(&nodes).await);
    assert_eq!(after, before, "leadership changed under the load");
    assert!(hashes > 0 && ranges > 0, "{hashes} HashKV, {ranges} ranges");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let p50 = latencies[latencies.len() / 2];
    println!(
        "{} puts in {put_seconds:.1} s ({:.0}/s) beside {WATCHED_KEYS} watchers, {hashes} HashKV \
         and {ranges} ranges of {RANGE_KEYS} keys: put p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / put_seconds,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    for node in nodes.into_iter().flatten() {
        assert_eq!(node.shutdown().await, None);
    }
}
