//! What validating the costliest txns that fit in `--max-request-bytes`
//! costs: every member runs these checks on every txn it applies, and the
//! member a client reaches runs them once more before proposing.
//!
//! `cargo run --release -p raftwood-kv --example txn_validation -- [bytes]`
//! (default 1.5 MiB, etcd's default limit). For each shape it prints the
//! operations, the nesting depth, the encoded size and the time of
//! `validate_request` (default limits, as at the gRPC edge) and of
//! `validate_structure` (no op limit, as when applying).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool")]

use std::time::{Duration, Instant};

use prost::Message;
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::validate::{RequestLimits, validate_request, validate_structure};

#[path = "../tests/support/txn_shapes.rs"]
mod txn_shapes;

fn timed(check: impl Fn() -> bool) -> (Duration, bool) {
    let started = Instant::now();
    let accepted = check();
    (started.elapsed(), accepted)
}

fn main() {
    let bytes: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("a size in bytes"))
        .unwrap_or(1536 * 1024);
    let limits = RequestLimits {
        max_request_bytes: bytes,
        ..RequestLimits::default()
    };
    println!("| shape | operations | depth | bytes | at the edge | when applying |");
    println!("|---|---:|---:|---:|---|---|");
    for (name, shape) in txn_shapes::SHAPES {
        let request = shape(bytes);
        let Some(internal_request::Request::Txn(txn)) = &request.request else {
            unreachable!("every shape is a txn");
        };
        let (depth, ops) = txn_shapes::depth_and_ops(txn);
        // The decode every member does first, to be sure prost accepts it.
        let decoded = InternalRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        let (edge, edge_ok) = timed(|| validate_request(&decoded, &limits).is_ok());
        let (apply, apply_ok) = timed(|| validate_structure(&decoded).is_ok());
        let verdict = |ok: bool| if ok { "accepted" } else { "refused" };
        println!(
            "| {name} | {ops} | {depth} | {} | {:.1} ms ({}) | {:.1} ms ({}) |",
            request.encoded_len(),
            edge.as_secs_f64() * 1e3,
            verdict(edge_ok),
            apply.as_secs_f64() * 1e3,
            verdict(apply_ok),
        );
    }
}
