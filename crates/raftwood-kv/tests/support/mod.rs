//! Helpers shared by the integration tests: a store on a temporary
//! directory that applies requests as consecutive raft entries.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::Path;

use prost::Message;
use raftwood_kv::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, TxnRequest, compare, request_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::{ApplyOutcome, ApplyResponse, CommittedEntry, KvOptions, KvStore};

/// Deterministic engine settings: inline background work, small memtables
/// so that tests reach tables and compactions.
pub fn options() -> KvOptions {
    let mut options = KvOptions::default();
    options.lsm.background_threads = false;
    options.lsm.memtable_size_bytes = 64 << 10;
    options
}

pub fn open(dir: &Path) -> KvStore {
    KvStore::open(dir, options()).unwrap()
}

/// A store plus the next raft index to use.
pub struct Harness {
    pub store: KvStore,
    pub next_index: u64,
}

impl Harness {
    pub fn new(dir: &Path) -> Harness {
        let store = open(dir);
        let next_index = store.applied_index() + 1;
        Harness { store, next_index }
    }

    /// Applies one request as the next entry.
    pub fn apply(&mut self, request: internal_request::Request) -> ApplyOutcome {
        let bytes = encode(request);
        let index = self.next_index;
        self.next_index += 1;
        let mut outcomes = self
            .store
            .apply(&[CommittedEntry {
                index,
                request: Some(&bytes),
            }])
            .unwrap();
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> i64 {
        match self.apply(put(key, value)).unwrap() {
            ApplyResponse::Put(response) => response.header.unwrap().revision,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn delete(&mut self, key: &[u8], range_end: &[u8]) -> i64 {
        match self.apply(delete(key, range_end)).unwrap() {
            ApplyResponse::DeleteRange(response) => response.deleted,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn range(&self, request: RangeRequest) -> RangeResponse {
        self.store.range(&request).unwrap()
    }

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let response = self.range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        });
        response.kvs.first().map(|kv| kv.value.clone())
    }
}

pub fn encode(request: internal_request::Request) -> Vec<u8> {
    InternalRequest {
        id: 0,
        request: Some(request),
    }
    .encode_to_vec()
}

pub fn put(key: &[u8], value: &[u8]) -> internal_request::Request {
    internal_request::Request::Put(PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    })
}

pub fn delete(key: &[u8], range_end: &[u8]) -> internal_request::Request {
    internal_request::Request::DeleteRange(DeleteRangeRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        prev_kv: false,
    })
}

pub fn compaction(revision: i64) -> internal_request::Request {
    internal_request::Request::Compaction(CompactionRequest {
        revision,
        physical: true,
    })
}

pub fn txn(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> internal_request::Request {
    internal_request::Request::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

pub fn op_put(key: &[u8], value: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        })),
    }
}

pub fn op_delete(key: &[u8], range_end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                range_end: range_end.to_vec(),
                prev_kv: true,
            },
        )),
    }
}

pub fn op_range(key: &[u8], range_end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            ..Default::default()
        })),
    }
}

pub fn op_txn(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            compare,
            success,
            failure,
        })),
    }
}

/// A compare of `target` with `result` against an integer or value.
pub fn cmp(
    key: &[u8],
    target: compare::CompareTarget,
    result: compare::CompareResult,
    union: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.to_vec(),
        target_union: Some(union),
        range_end: Vec::new(),
    }
}
