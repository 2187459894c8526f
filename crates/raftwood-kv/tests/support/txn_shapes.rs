//! Txns built to cost the duplicate check the most for their size: the
//! worst cases of `validate_request` and `validate_structure`, shared by the
//! `txn_validation` example (which times them) and the tests (which bound
//! them).

#![allow(dead_code, reason = "the example and each test use a subset")]

use prost::Message;
use raftwood_kv::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};

/// Builds the largest request of a shape that fits in a size in bytes.
pub type Shape = fn(usize) -> InternalRequest;

/// Each shape by name.
pub const SHAPES: [(&str, Shape); 4] = [
    ("flat puts", flat),
    ("flat puts and deletes", flat_with_deletes),
    ("128-wide tree", wide_tree),
    ("45-deep chains", deep_chains),
];

fn put(n: u64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key(n),
            ..Default::default()
        })),
    }
}

/// Short distinct keys, so the most operations fit.
fn key(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    let mut key = bytes[first..].to_vec();
    key.insert(0, b'k');
    key
}

/// A delete of one key that no put writes (their keys start with `k`).
fn delete_other(n: u64) -> RequestOp {
    let mut key = key(n);
    key[0] = b'd';
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

fn nested(success: Vec<RequestOp>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            success,
            ..Default::default()
        })),
    }
}

fn wrap(txn: TxnRequest) -> InternalRequest {
    InternalRequest {
        id: 1,
        request: Some(internal_request::Request::Txn(txn)),
    }
}

/// One level of puts, as many as fit (only apply has no op limit).
pub fn flat(bytes: usize) -> InternalRequest {
    grow(bytes, |ops| TxnRequest {
        success: (0..ops).map(put).collect(),
        ..Default::default()
    })
}

/// Puts interleaved with deletes of other keys, on one level.
pub fn flat_with_deletes(bytes: usize) -> InternalRequest {
    grow(bytes, |ops| TxnRequest {
        success: (0..ops / 2)
            .flat_map(|n| [put(n), delete_other(n)])
            .collect(),
        ..Default::default()
    })
}

/// A tree 128 operations wide (etcd's default op limit) of nested txns,
/// puts at the leaves.
pub fn wide_tree(bytes: usize) -> InternalRequest {
    grow(bytes, |ops| {
        let leaves: Vec<u64> = (0..ops).collect();
        let groups: Vec<RequestOp> = leaves
            .chunks(128)
            .map(|chunk| nested(chunk.iter().copied().map(put).collect()))
            .collect();
        let success = groups
            .chunks(128)
            .map(|chunk| nested(chunk.to_vec()))
            .collect();
        TxnRequest {
            success,
            ..Default::default()
        }
    })
}

/// Chains of nested txns as deep as prost decodes, 128 puts at the bottom
/// of each: every put rises through every level.
pub fn deep_chains(bytes: usize) -> InternalRequest {
    const DEPTH: usize = 45;
    grow(bytes, |ops| {
        let leaves: Vec<u64> = (0..ops).collect();
        let mut level: Vec<RequestOp> = leaves
            .chunks(128)
            .map(|chunk| nested(chunk.iter().copied().map(put).collect()))
            .collect();
        for _ in 1..DEPTH {
            level = level.into_iter().map(|op| nested(vec![op])).collect();
        }
        while level.len() > 128 {
            level = level
                .chunks(128)
                .map(|chunk| nested(chunk.to_vec()))
                .collect();
        }
        TxnRequest {
            success: level,
            ..Default::default()
        }
    })
}

/// The largest request of `shape` that fits in `bytes`, by bisection on
/// its operation count.
fn grow(bytes: usize, shape: impl Fn(u64) -> TxnRequest) -> InternalRequest {
    let (mut low, mut high) = (1u64, bytes as u64);
    while low < high {
        let middle = (low + high).div_ceil(2);
        if wrap(shape(middle)).encoded_len() <= bytes {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    wrap(shape(low))
}

pub fn depth_and_ops(txn: &TxnRequest) -> (usize, usize) {
    let mut depth = 0;
    let mut ops = 0;
    for op in txn.success.iter().chain(&txn.failure) {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            let (inner_depth, inner_ops) = depth_and_ops(inner);
            depth = depth.max(inner_depth);
            ops += inner_ops;
        } else {
            ops += 1;
        }
    }
    (depth + 1, ops)
}
