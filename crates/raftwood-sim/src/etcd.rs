//! Client operations as etcd requests on `raftwood-kv`, and etcd's
//! responses back as the outputs the linearizability checker models.
//!
//! A write travels in the raft log as an encoded
//! `raftwoodpb::InternalRequest` whose id is the client's request id:
//! put is a `PutRequest`; delete a `DeleteRangeRequest` of one key;
//! compare-and-swap a `TxnRequest` whose one compare is the key's VALUE
//! (or, to expect the key absent, its VERSION equal to 0: etcd compares a
//! missing key as zeros, and a value compare on it fails) with the put in
//! `success`. A get is not logged: it is a `RangeRequest` served by
//! `KvStore::range` once a `read_index` is confirmed and applied.

use bytes::Bytes;
use prost::Message;
use raftwood_kv::ApplyResponse;
use raftwood_kv::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    compare, request_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};

use crate::model::{Command, Key, KvOp, KvOutput, Value};

/// The etcd key of a simulated key: readable in a dump of the store.
pub fn key_bytes(key: Key) -> Vec<u8> {
    format!("k{key}").into_bytes()
}

/// The etcd value of a simulated value: 8 bytes, big-endian.
pub fn value_bytes(value: Value) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// Reads back what [`value_bytes`] wrote; `None` for anything else.
pub fn decode_value(bytes: &[u8]) -> Option<Value> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(Value::from_be_bytes(array))
}

fn put_request(key: Key, value: Value) -> PutRequest {
    PutRequest {
        key: key_bytes(key),
        value: value_bytes(value),
        ..Default::default()
    }
}

/// The log entry payload of a write; `None` for a get (reads are not
/// logged).
pub fn encode(command: &Command) -> Option<Bytes> {
    let request = match command.op {
        KvOp::Put { key, value } => internal_request::Request::Put(put_request(key, value)),
        KvOp::Get { .. } => return None,
        KvOp::Delete { key } => internal_request::Request::DeleteRange(DeleteRangeRequest {
            key: key_bytes(key),
            range_end: Vec::new(),
            prev_kv: false,
        }),
        KvOp::CompareAndSwap { key, expected, new } => {
            let (target, target_union) = match expected {
                Some(value) => (
                    compare::CompareTarget::Value,
                    compare::TargetUnion::Value(value_bytes(value)),
                ),
                None => (
                    compare::CompareTarget::Version,
                    compare::TargetUnion::Version(0),
                ),
            };
            internal_request::Request::Txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: target as i32,
                    key: key_bytes(key),
                    range_end: Vec::new(),
                    target_union: Some(target_union),
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(put_request(key, new))),
                }],
                failure: Vec::new(),
            })
        }
    };
    let internal = InternalRequest {
        id: command.request_id,
        request: Some(request),
    };
    Some(Bytes::from(internal.encode_to_vec()))
}

/// The client request id a log entry payload carries.
pub fn request_id(payload: &[u8]) -> Option<u64> {
    InternalRequest::decode(payload)
        .ok()
        .map(|request| request.id)
}

/// What the client learns from an applied write: a put's response is
/// "written", a delete's whether it deleted a key, a txn's whether its
/// compare held (the swap happened). `None` for anything else.
pub fn write_output(response: &ApplyResponse) -> Option<KvOutput> {
    match response {
        ApplyResponse::Put(_) => Some(KvOutput::Written),
        ApplyResponse::DeleteRange(delete) => Some(KvOutput::Deleted(delete.deleted > 0)),
        ApplyResponse::Txn(txn) => Some(KvOutput::Swapped(txn.succeeded)),
        _ => None,
    }
}

/// The Range a get sends.
pub fn range_request(key: Key) -> RangeRequest {
    RangeRequest {
        key: key_bytes(key),
        ..Default::default()
    }
}

/// A get's output from its Range response; an error for a response that
/// no put of this simulator could have produced.
pub fn read_output(response: &RangeResponse) -> Result<KvOutput, String> {
    match response.kvs.as_slice() {
        [] => Ok(KvOutput::Value(None)),
        [kv] => match decode_value(&kv.value) {
            Some(value) => Ok(KvOutput::Value(Some(value))),
            None => Err(format!("a value of {} bytes", kv.value.len())),
        },
        kvs => Err(format!("{} keys for one key", kvs.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_carries_its_request_id_and_a_get_is_not_logged() {
        let ops = [
            KvOp::Put { key: 3, value: 9 },
            KvOp::Delete { key: 2 },
            KvOp::CompareAndSwap {
                key: 4,
                expected: None,
                new: 5,
            },
            KvOp::CompareAndSwap {
                key: 4,
                expected: Some(0),
                new: 5,
            },
        ];
        for (id, op) in ops.into_iter().enumerate() {
            let command = Command {
                request_id: id as u64 + 100,
                op,
            };
            let payload = encode(&command);
            assert_eq!(
                payload.as_deref().and_then(request_id),
                Some(id as u64 + 100)
            );
        }
        let get = Command {
            request_id: 1,
            op: KvOp::Get { key: 1 },
        };
        assert_eq!(encode(&get), None);
        assert_eq!(decode_value(&value_bytes(u64::MAX - 3)), Some(u64::MAX - 3));
        assert_eq!(decode_value(b"short"), None);
    }
}
