//! How long one DeleteRange over many keys takes to apply, and how much
//! memory it needs: `etcdctl check perf` ends with such a delete of every
//! key it wrote, under the server's 7 s request timeout.
//!
//! `cargo run --release -p raftwood-kv --example big_delete -- [keys] [compact]`
//! (default 500,000 keys of 256-byte values). Prints the time of the puts,
//! of the delete, and the process's peak and current RSS after each. With
//! `compact`, then compacts at the last revision (the first compaction
//! after check perf: two history entries and two revision log entries per
//! key to delete), and prints its time and the peak RSS during it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool")]

use std::time::Instant;

use prost::Message;
use raftwood_kv::proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::{ApplyResponse, CommittedEntry, KvOptions, KvStore};

const PREFIX: &[u8] = b"/etcdctl-check-perf/";

fn encode(request: internal_request::Request) -> Vec<u8> {
    InternalRequest {
        request: Some(request),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Peak and current resident memory, from /proc.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or("?".to_string(), |kib| format!("{} MiB", kib / 1024))
    };
    format!("peak RSS {}, RSS {}", field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("the number of keys"))
        .unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), KvOptions::default()).unwrap();
    let mut index = store.applied_index() + 1;

    let started = Instant::now();
    let numbers: Vec<u64> = (0..keys).collect();
    for chunk in numbers.chunks(1000) {
        // Scattered keys under one prefix, as check perf writes them.
        let requests: Vec<Vec<u8>> = chunk
            .iter()
            .map(|n| {
                let mut key = PREFIX.to_vec();
                key.extend_from_slice(
                    format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_bytes(),
                );
                encode(internal_request::Request::Put(PutRequest {
                    key,
                    value: vec![b'v'; 256],
                    ..Default::default()
                }))
            })
            .collect();
        let entries: Vec<CommittedEntry<'_>> = requests
            .iter()
            .map(|request| {
                index += 1;
                CommittedEntry {
                    index: index - 1,
                    request: Some(request),
                }
            })
            .collect();
        store.apply(&entries).unwrap();
    }
    println!("put {keys} keys: {:.2?}; {}", started.elapsed(), memory());

    let mut range_end = PREFIX.to_vec();
    *range_end.last_mut().unwrap() += 1;
    let delete = encode(internal_request::Request::DeleteRange(DeleteRangeRequest {
        key: PREFIX.to_vec(),
        range_end,
        ..Default::default()
    }));
    let started = Instant::now();
    let outcomes = store
        .apply(&[CommittedEntry {
            index,
            request: Some(&delete),
        }])
        .unwrap();
    let elapsed = started.elapsed();
    let deleted = match outcomes.first() {
        Some(Ok(ApplyResponse::DeleteRange(response))) => response.deleted,
        other => panic!("unexpected outcome {other:?}"),
    };
    assert_eq!(deleted as u64, keys, "every key deleted");
    println!(
        "delete range of {deleted} keys: {elapsed:.2?}; {}",
        memory()
    );
    if std::env::args().nth(2).as_deref() == Some("compact") {
        compact(&store, index + 1);
    }
}

/// Compacts at the store's current revision as entry `index`.
fn compact(store: &KvStore, index: u64) {
    // Resets the peak RSS to the current one (Linux: clear_refs 5).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let compaction = encode(internal_request::Request::Compaction(CompactionRequest {
        revision: store.current_revision(),
        physical: false,
    }));
    let started = Instant::now();
    let outcomes = store
        .apply(&[CommittedEntry {
            index,
            request: Some(&compaction),
        }])
        .unwrap();
    assert!(matches!(
        outcomes.first(),
        Some(Ok(ApplyResponse::Compaction(_)))
    ));
    println!("compaction: {:.2?}; {}", started.elapsed(), memory());
}
