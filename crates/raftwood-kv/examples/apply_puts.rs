//! The apply thread's cost of a put, without the server around it: puts of
//! 256-byte values over a key space of 100,000 8-byte keys (the
//! `put, 100 clients` workload of bench/compare-etcd.sh), applied 40
//! entries per call as the server's apply thread receives them.
//!
//! `cargo run --release -p raftwood-kv --example apply_puts -- [puts] [live-cache-bytes]`
//! (defaults 1,000,000 and KvOptions' default). Prints wall time and the
//! process's CPU time (apply plus the engine's flush and compaction
//! threads) per put; run it with a cache budget of 0 beside the default to
//! see what the apply path's live-entry cache saves.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool")]

use std::time::Instant;

use prost::Message;
use raftwood_kv::proto::etcdserverpb::PutRequest;
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::{CommittedEntry, KvOptions, KvStore};

const KEY_SPACE: u64 = 100_000;
const ENTRIES_PER_APPLY: usize = 40;

/// User plus system CPU seconds of this process, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let puts: u64 = args
        .next()
        .map(|arg| arg.parse().expect("the number of puts"))
        .unwrap_or(1_000_000);
    let mut options = KvOptions::default();
    if let Some(bytes) = args.next() {
        options.live_cache_bytes = bytes.parse().expect("the cache budget in bytes");
    }
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), options.clone()).unwrap();
    let mut index = store.applied_index() + 1;
    // A fixed pseudo-random key sequence (xorshift), the same every run.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let requests: Vec<Vec<u8>> = (0..puts)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            InternalRequest {
                request: Some(internal_request::Request::Put(PutRequest {
                    key: (state % KEY_SPACE).to_be_bytes().to_vec(),
                    value: vec![b'v'; 256],
                    ..Default::default()
                })),
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for chunk in requests.chunks(ENTRIES_PER_APPLY) {
        let entries: Vec<CommittedEntry<'_>> = chunk
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
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{puts} puts, live cache {} bytes: {:.2} us wall, {:.2} us CPU per put",
        options.live_cache_bytes,
        wall / puts as f64 * 1e6,
        cpu / puts as f64 * 1e6
    );
}
