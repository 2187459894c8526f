//! HashKV as etcd computes it: the history recorded from a real etcd
//! 3.4.23 (`fixtures/etcd-3.4-hashkv.txt`, made by
//! `fixtures/record-etcd-hashkv.sh`) is replayed on a store, which must
//! report etcd's hash, compact revision and current revision at every
//! revision etcd was asked for, across three compactions (one keeping a
//! version written by the second operation of a txn).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use prost::Message;
use raftwood_kv::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RequestOp, TxnRequest,
    request_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::{CommittedEntry, EtcdError, KvOptions, KvStore, RequestError};

const FIXTURE: &str = include_str!("fixtures/etcd-3.4-hashkv.txt");

fn put(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        lease,
        ..PutRequest::default()
    }
}

/// The request an `op` line of the fixture stands for.
fn request_of(words: &[&str]) -> internal_request::Request {
    use internal_request::Request;
    match words {
        ["put", key, value] => Request::Put(put(key, value, 0)),
        ["put-lease", key, value, lease] => Request::Put(put(key, value, lease.parse().unwrap())),
        ["del", key] => Request::DeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        }),
        ["del-range", key, end] => Request::DeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        }),
        ["lease", id, ttl] => Request::LeaseGrant(LeaseGrantRequest {
            id: id.parse().unwrap(),
            ttl: ttl.parse().unwrap(),
        }),
        ["compact", revision] => Request::Compaction(CompactionRequest {
            revision: revision.parse().unwrap(),
            physical: true,
        }),
        ["txn", pairs @ ..] => Request::Txn(TxnRequest {
            success: pairs
                .chunks(2)
                .map(|pair| RequestOp {
                    request: Some(request_op::Request::RequestPut(put(pair[0], pair[1], 0))),
                })
                .collect(),
            ..TxnRequest::default()
        }),
        other => panic!("an op the test does not know: {other:?}"),
    }
}

#[test]
fn hash_kv_equals_etcds_for_the_same_history_at_every_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), KvOptions::default()).unwrap();
    let mut index = 0;
    let mut checked = 0;
    for line in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["op", op @ ..] => {
                index += 1;
                let payload = InternalRequest {
                    id: index,
                    request: Some(request_of(op)),
                }
                .encode_to_vec();
                let outcome = store
                    .apply(&[CommittedEntry {
                        index,
                        request: Some(&payload),
                    }])
                    .unwrap()
                    .remove(0);
                assert!(outcome.is_ok(), "{line}: {outcome:?}");
            }
            ["hash", revision, hash, compacted, current] => {
                let answer = store.hash_kv(revision.parse().unwrap()).unwrap();
                assert_eq!(answer.hash.to_string(), *hash, "{line}");
                assert_eq!(answer.compacted_revision.to_string(), *compacted, "{line}");
                assert_eq!(answer.current_revision.to_string(), *current, "{line}");
                checked += 1;
            }
            _ => panic!("a fixture line the test does not know: {line}"),
        }
    }
    assert!(checked >= 20, "only {checked} hashes checked");
}

#[test]
fn hash_kv_refuses_compacted_and_future_revisions_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), KvOptions::default()).unwrap();
    for (index, op) in [["put", "a", "1"], ["put", "a", "2"], ["put", "a", "3"]]
        .iter()
        .enumerate()
    {
        let payload = InternalRequest {
            id: 0,
            request: Some(request_of(op)),
        }
        .encode_to_vec();
        store
            .apply(&[CommittedEntry {
                index: index as u64 + 1,
                request: Some(&payload),
            }])
            .unwrap();
    }
    let compact = InternalRequest {
        id: 0,
        request: Some(request_of(&["compact", "3"])),
    }
    .encode_to_vec();
    store
        .apply(&[CommittedEntry {
            index: 4,
            request: Some(&compact),
        }])
        .unwrap();
    for (revision, refusal) in [
        (2, EtcdError::Compacted),
        (3, EtcdError::Compacted),
        (5, EtcdError::FutureRevision),
    ] {
        match store.hash_kv(revision) {
            Err(RequestError::Refused(error)) => assert_eq!(error, refusal, "at {revision}"),
            other => panic!("at {revision}: {other:?}"),
        }
    }
    assert!(store.hash_kv(4).is_ok());
}
