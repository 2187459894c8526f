#![allow(clippy::unwrap_used, reason = "tests")]
//! The API case by case: each Range option, Put and DeleteRange options,
//! txn compares and nested txns, compaction, etcd's error texts and codes,
//! malformed entries.

mod support;

use raftwood_kv::proto::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, compare, range_request, request_op, response_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request::Request};
use raftwood_kv::{
    ApplyResponse, Code, CommittedEntry, EtcdError, KvStore, RequestError, RequestLimits,
    validate_request,
};
use support::{Harness, cmp, compaction, op_delete, op_put, op_range, op_txn, put, txn};

fn harness() -> (tempfile::TempDir, Harness) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path());
    (dir, h)
}

fn keys(response: &raftwood_kv::proto::etcdserverpb::RangeResponse) -> Vec<&[u8]> {
    response.kvs.iter().map(|kv| kv.key.as_slice()).collect()
}

fn range(key: &[u8], range_end: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        ..Default::default()
    }
}

fn refused(result: Result<impl std::fmt::Debug, RequestError>) -> EtcdError {
    match result.unwrap_err() {
        RequestError::Refused(error) => error,
        other => panic!("expected a refusal, got {other}"),
    }
}

/// Keys a, b, c (revisions 2, 3, 4), then b again (5) and "foo/x" (6).
fn populated() -> (tempfile::TempDir, Harness) {
    let (dir, mut h) = harness();
    h.put(b"a", b"1");
    h.put(b"b", b"22");
    h.put(b"c", b"3");
    h.put(b"b", b"0");
    h.put(b"foo/x", b"9");
    (dir, h)
}

// ------------------------------------------------------------- Range --

#[test]
fn range_single_key_prefix_and_from_key() {
    let (_dir, h) = populated();
    assert_eq!(keys(&h.range(range(b"b", b""))), vec![b"b".as_slice()]);
    assert_eq!(
        keys(&h.range(range(b"foo/", b"foo0"))),
        vec![b"foo/x".as_slice()]
    );
    assert_eq!(
        keys(&h.range(range(b"b", b"\0"))),
        vec![b"b".as_slice(), b"c", b"foo/x"]
    );
    // Both "\0": every key.
    assert_eq!(h.range(range(b"\0", b"\0")).count, 4);
    // An inverted range is empty, not an error.
    assert_eq!(h.range(range(b"c", b"a")).count, 0);
    assert!(h.range(range(b"zz", b"")).kvs.is_empty());
}

#[test]
fn range_returns_create_mod_version_and_header_revision() {
    let (_dir, h) = populated();
    let response = h.range(range(b"b", b""));
    let kv = &response.kvs[0];
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (3, 5, 2, 0)
    );
    assert_eq!(kv.value, b"0");
    assert_eq!(response.header.unwrap().revision, 6);
    assert_eq!(response.count, 1);
    assert!(!response.more);
}

#[test]
fn range_limit_sets_more_and_counts_everything() {
    let (_dir, h) = populated();
    let response = h.range(RangeRequest {
        limit: 2,
        ..range(b"a", b"\0")
    });
    assert_eq!(keys(&response), vec![b"a".as_slice(), b"b"]);
    assert!(response.more);
    assert_eq!(response.count, 4);
    let response = h.range(RangeRequest {
        limit: 4,
        ..range(b"a", b"\0")
    });
    assert_eq!(response.kvs.len(), 4);
    assert!(!response.more);
}

#[test]
fn range_at_past_revisions() {
    let (_dir, h) = populated();
    let at = |revision| {
        h.range(RangeRequest {
            revision,
            ..range(b"a", b"\0")
        })
    };
    assert_eq!(at(1).count, 0);
    assert_eq!(keys(&at(3)), vec![b"a".as_slice(), b"b"]);
    assert_eq!(at(4).kvs[1].value, b"22");
    assert_eq!(at(5).kvs[1].value, b"0");
    // The header carries the current revision, not the requested one.
    assert_eq!(at(3).header.unwrap().revision, 6);
}

#[test]
fn range_future_revision_is_refused() {
    let (_dir, h) = populated();
    let error = refused(h.store.range(&RangeRequest {
        revision: 7,
        ..range(b"a", b"")
    }));
    assert_eq!(error, EtcdError::FutureRevision);
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(error.code(), Code::OutOfRange);
}

#[test]
fn range_sort_orders_and_targets() {
    let (_dir, h) = populated();
    let sorted = |order: range_request::SortOrder, target: range_request::SortTarget| {
        let response = h.range(RangeRequest {
            sort_order: order as i32,
            sort_target: target as i32,
            ..range(b"a", b"\0")
        });
        keys(&response)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    };
    use range_request::{SortOrder, SortTarget};
    let k = |s: &[&[u8]]| s.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Key),
        k(&[b"foo/x", b"c", b"b", b"a"])
    );
    // Mod revisions: a 2, c 4, b 5, foo/x 6.
    assert_eq!(
        sorted(SortOrder::Ascend, SortTarget::Mod),
        k(&[b"a", b"c", b"b", b"foo/x"])
    );
    // Create revisions: a 2, b 3, c 4, foo/x 6.
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Create),
        k(&[b"foo/x", b"c", b"b", b"a"])
    );
    // Versions: b 2, others 1; ties keep key order.
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Version),
        k(&[b"b", b"a", b"c", b"foo/x"])
    );
    // Values: a "1", b "0", c "3", foo/x "9". A target without an order
    // sorts ascending, as etcd.
    assert_eq!(
        sorted(SortOrder::None, SortTarget::Value),
        k(&[b"b", b"a", b"c", b"foo/x"])
    );
}

#[test]
fn range_sort_with_limit_sorts_everything_first() {
    let (_dir, h) = populated();
    let response = h.range(RangeRequest {
        limit: 1,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Key as i32,
        ..range(b"a", b"\0")
    });
    assert_eq!(keys(&response), vec![b"foo/x".as_slice()]);
    assert!(response.more);
}

#[test]
fn range_invalid_sort_option_is_refused() {
    let (_dir, h) = populated();
    let error = refused(h.store.range(&RangeRequest {
        sort_order: 7,
        ..range(b"a", b"")
    }));
    assert_eq!(error.to_string(), "etcdserver: invalid sort option");
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[test]
fn range_keys_only_and_count_only() {
    let (_dir, h) = populated();
    let response = h.range(RangeRequest {
        keys_only: true,
        ..range(b"a", b"\0")
    });
    assert_eq!(response.kvs.len(), 4);
    assert!(response.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(response.kvs[1].mod_revision, 5);
    let response = h.range(RangeRequest {
        count_only: true,
        limit: 1,
        ..range(b"a", b"\0")
    });
    assert!(response.kvs.is_empty());
    assert_eq!(response.count, 4);
    assert!(!response.more);
}

#[test]
fn range_mod_and_create_revision_filters() {
    let (_dir, h) = populated();
    let filtered = |min_mod, max_mod, min_create, max_create| {
        let response = h.range(RangeRequest {
            min_mod_revision: min_mod,
            max_mod_revision: max_mod,
            min_create_revision: min_create,
            max_create_revision: max_create,
            ..range(b"a", b"\0")
        });
        // Count is the range's, before filtering (etcd).
        assert_eq!(response.count, 4);
        keys(&response)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    };
    assert_eq!(filtered(5, 0, 0, 0), vec![b"b".to_vec(), b"foo/x".to_vec()]);
    assert_eq!(filtered(0, 4, 0, 0), vec![b"a".to_vec(), b"c".to_vec()]);
    assert_eq!(
        filtered(0, 0, 3, 0),
        vec![b"b".to_vec(), b"c".to_vec(), b"foo/x".to_vec()]
    );
    assert_eq!(filtered(0, 0, 0, 3), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(filtered(3, 5, 3, 3), vec![b"b".to_vec()]);
}

#[test]
fn range_empty_key_is_refused() {
    let (_dir, h) = harness();
    let error = refused(h.store.range(&range(b"", b"")));
    assert_eq!(error.to_string(), "etcdserver: key is not provided");
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[test]
fn reading_the_current_value_does_not_depend_on_history_length() {
    // Not a timing test: a key with a long history and a key written once
    // are read the same way (the live entry); the history stays readable.
    let (_dir, mut h) = harness();
    for i in 0..500u32 {
        h.put(b"hot", &i.to_le_bytes());
    }
    h.put(b"cold", b"x");
    assert_eq!(h.get(b"hot"), Some(499u32.to_le_bytes().to_vec()));
    let old = h.range(RangeRequest {
        revision: 100,
        ..range(b"hot", b"")
    });
    assert_eq!(old.kvs[0].value, 98u32.to_le_bytes());
    assert_eq!(old.kvs[0].version, 99);
}

// ------------------------------------------------------ Put / Delete --

#[test]
fn put_prev_kv_ignore_value_and_ignore_lease() {
    let (_dir, mut h) = harness();
    h.put(b"k", b"v1");
    let outcome = h.apply(Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v2".to_vec(),
        prev_kv: true,
        ..Default::default()
    }));
    let Ok(ApplyResponse::Put(response)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(response.prev_kv.unwrap().value, b"v1");
    assert_eq!(response.header.unwrap().revision, 3);
    let outcome = h.apply(Request::Put(PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ..Default::default()
    }));
    assert!(outcome.is_ok(), "{outcome:?}");
    let kv = h.range(range(b"k", b"")).kvs.remove(0);
    assert_eq!(
        (kv.value.as_slice(), kv.version, kv.mod_revision),
        (b"v2".as_slice(), 3, 4)
    );
    let outcome = h.apply(Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v3".to_vec(),
        ignore_lease: true,
        ..Default::default()
    }));
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[test]
fn put_ignore_value_on_a_missing_key_is_key_not_found() {
    let (_dir, mut h) = harness();
    for request in [
        PutRequest {
            key: b"missing".to_vec(),
            ignore_value: true,
            ..Default::default()
        },
        PutRequest {
            key: b"missing".to_vec(),
            ignore_lease: true,
            ..Default::default()
        },
    ] {
        let error = h.apply(Request::Put(request)).unwrap_err();
        assert_eq!(error, EtcdError::KeyNotFound);
        assert_eq!(error.to_string(), "etcdserver: key not found");
        assert_eq!(error.code(), Code::InvalidArgument);
    }
    // Refusals change nothing.
    assert_eq!(h.store.current_revision(), 1);
}

#[test]
fn put_with_a_lease_is_lease_not_found() {
    let (_dir, mut h) = harness();
    let error = h
        .apply(Request::Put(PutRequest {
            key: b"k".to_vec(),
            lease: 42,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: requested lease not found");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(h.store.current_revision(), 1);
    // Outside a txn the lease is looked up before the key (etcd's order).
    let error = h
        .apply(Request::Put(PutRequest {
            key: b"missing".to_vec(),
            lease: 42,
            ignore_value: true,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(error, EtcdError::LeaseNotFound);
}

#[test]
fn delete_resets_version_and_recreate_starts_a_new_generation() {
    let (_dir, mut h) = harness();
    h.put(b"k", b"1");
    h.put(b"k", b"2");
    assert_eq!(h.delete(b"k", b""), 1);
    assert_eq!(h.store.current_revision(), 4);
    // Deleting nothing does not bump the revision.
    assert_eq!(h.delete(b"k", b""), 0);
    assert_eq!(h.store.current_revision(), 4);
    h.put(b"k", b"3");
    let kv = h.range(range(b"k", b"")).kvs.remove(0);
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    let at_delete = h.range(RangeRequest {
        revision: 4,
        ..range(b"k", b"")
    });
    assert_eq!(at_delete.count, 0);
}

#[test]
fn delete_range_with_prev_kv() {
    let (_dir, mut h) = populated();
    let outcome = h.apply(Request::DeleteRange(
        raftwood_kv::proto::etcdserverpb::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            prev_kv: true,
        },
    ));
    let Ok(ApplyResponse::DeleteRange(response)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(response.deleted, 2);
    assert_eq!(response.prev_kvs.len(), 2);
    assert_eq!(response.prev_kvs[1].value, b"0");
    // Both deletes share one revision.
    assert_eq!(response.header.unwrap().revision, 7);
    assert_eq!(h.store.current_revision(), 7);
}

/// A ranged delete reads its keys a chunk at a time (1,024 per chunk):
/// a range of several chunks, some keys already in the engine and some
/// written earlier in the same apply call, is deleted whole, at one
/// revision, with one event per key in key order, and the history keeps
/// every deleted value readable at the revision before.
#[test]
fn delete_range_over_several_chunks_deletes_every_key_once() {
    let (_dir, mut h) = harness();
    let key = |i: usize| format!("big/{i:05}").into_bytes();
    let value = |i: usize| format!("value-{i}").into_bytes();
    // 2,000 keys in the engine (one apply call each, with flushes), and
    // 1,000 more, interleaved with them, in the apply call of the delete.
    for i in (0..3_000).filter(|i| i % 3 != 1) {
        h.put(&key(i), &value(i));
    }
    h.put(b"bih", b"before the range");
    h.put(b"bih0", b"after the range");
    let before = h.store.current_revision();
    let mut requests: Vec<Vec<u8>> = (0..3_000)
        .filter(|i| i % 3 == 1)
        .map(|i| support::encode(put(&key(i), &value(i))))
        .collect();
    requests.push(support::encode(Request::DeleteRange(
        raftwood_kv::proto::etcdserverpb::DeleteRangeRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            prev_kv: true,
        },
    )));
    // An entry after the delete, in the same apply call, sees it: the key
    // starts a new generation.
    requests.push(support::encode(Request::Put(PutRequest {
        key: key(7),
        value: b"again".to_vec(),
        prev_kv: true,
        ..Default::default()
    })));
    // So does a put of a key last written by an earlier apply call, whose
    // live entry the apply path had cached before the delete removed it.
    requests.push(support::encode(Request::Put(PutRequest {
        key: key(6),
        value: b"again".to_vec(),
        prev_kv: true,
        ..Default::default()
    })));
    let entries: Vec<CommittedEntry<'_>> = requests
        .iter()
        .enumerate()
        .map(|(offset, request)| CommittedEntry {
            index: h.next_index + offset as u64,
            request: Some(request),
        })
        .collect();
    let mut outcomes = h.store.apply(&entries).unwrap();
    h.next_index += entries.len() as u64;
    let Ok(ApplyResponse::Put(again_cached)) = outcomes.pop().unwrap() else {
        panic!("not a put")
    };
    assert_eq!(
        again_cached.prev_kv, None,
        "the put after the delete saw the key"
    );
    let Ok(ApplyResponse::Put(again)) = outcomes.pop().unwrap() else {
        panic!("not a put")
    };
    assert_eq!(again.prev_kv, None, "the put after the delete saw the key");
    // And a later apply call, for another key cached before the delete.
    let ApplyResponse::Put(later) = h
        .apply(Request::Put(PutRequest {
            key: key(9),
            value: b"later".to_vec(),
            prev_kv: true,
            ..Default::default()
        }))
        .unwrap()
    else {
        panic!("not a put")
    };
    assert_eq!(later.prev_kv, None, "a later put saw the deleted key");
    let Ok(ApplyResponse::DeleteRange(response)) = outcomes.pop().unwrap() else {
        panic!("not a delete")
    };
    assert_eq!(response.deleted, 3_000);
    let deleted: Vec<Vec<u8>> = response.prev_kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..3_000).map(key).collect();
    assert_eq!(deleted, expected, "every key once, in key order");
    assert!(
        response
            .prev_kvs
            .iter()
            .enumerate()
            .all(|(i, kv)| kv.value == value(i))
    );
    let delete_revision = before + 1_000 + 1;
    assert_eq!(response.header.unwrap().revision, delete_revision);
    assert_eq!(h.store.current_revision(), delete_revision + 3);
    let left = h.range(range(b"big/", b"big0"));
    assert_eq!(
        keys(&left),
        [key(6).as_slice(), key(7).as_slice(), key(9).as_slice()]
    );
    for (kv, revision) in left.kvs.iter().zip([2, 1, 3]) {
        assert_eq!(kv.version, 1, "{kv:?}");
        assert_eq!(kv.create_revision, delete_revision + revision, "{kv:?}");
    }
    assert_eq!(h.get(b"bih"), Some(b"before the range".to_vec()));
    assert_eq!(h.get(b"bih0"), Some(b"after the range".to_vec()));
    let at_before = h.range(RangeRequest {
        revision: delete_revision - 1,
        ..range(b"big/", b"big0")
    });
    assert_eq!(at_before.count, 3_000);
    assert!(
        at_before
            .kvs
            .iter()
            .enumerate()
            .all(|(i, kv)| kv.key == key(i) && kv.value == value(i))
    );
    let events = h
        .store
        .events(delete_revision, usize::MAX, false)
        .unwrap()
        .events;
    assert_eq!(events.len(), 3_003, "3,000 deletes, then the puts");
    let event_keys: Vec<Vec<u8>> = events[..3_000]
        .iter()
        .map(|event| event.kv.as_ref().unwrap().key.clone())
        .collect();
    assert_eq!(
        event_keys, expected,
        "one delete event per key, in key order"
    );
}

// --------------------------------------------------------------- Txn --

fn txn_response(
    outcome: raftwood_kv::ApplyOutcome,
) -> raftwood_kv::proto::etcdserverpb::TxnResponse {
    match outcome {
        Ok(ApplyResponse::Txn(response)) => response,
        other => panic!("{other:?}"),
    }
}

#[test]
fn txn_compares_every_target_and_result() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let (_dir, mut h) = populated(); // b: create 3, mod 5, version 2, value "0"
    let cases = [
        (T::Version, R::Equal, U::Version(2), true),
        (T::Version, R::Greater, U::Version(1), true),
        (T::Version, R::Less, U::Version(2), false),
        (T::Create, R::Equal, U::CreateRevision(3), true),
        (T::Create, R::NotEqual, U::CreateRevision(3), false),
        (T::Mod, R::Less, U::ModRevision(6), true),
        (T::Mod, R::Greater, U::ModRevision(5), false),
        (T::Value, R::Equal, U::Value(b"0".to_vec()), true),
        (T::Value, R::Greater, U::Value(b"".to_vec()), true),
        (T::Value, R::NotEqual, U::Value(b"0".to_vec()), false),
        (T::Lease, R::Equal, U::Lease(0), true),
        (T::Lease, R::Greater, U::Lease(0), false),
    ];
    for (target, result, union, expected) in cases {
        let response = txn_response(h.apply(txn(
            vec![cmp(b"b", target, result, union.clone())],
            vec![op_range(b"b", b"")],
            vec![],
        )));
        assert_eq!(
            response.succeeded, expected,
            "{target:?} {result:?} {union:?}"
        );
        assert_eq!(response.responses.len(), usize::from(expected));
    }
    // Read-only txns do not bump the revision.
    assert_eq!(h.store.current_revision(), 6);
}

#[test]
fn txn_compare_on_a_missing_key() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let (_dir, mut h) = harness();
    // A missing key has version 0 ("does not exist" idiom)...
    let response = txn_response(h.apply(txn(
        vec![cmp(b"lock", T::Version, R::Equal, U::Version(0))],
        vec![op_put(b"lock", b"me")],
        vec![],
    )));
    assert!(response.succeeded);
    // ...and a value compare on it always fails.
    let response = txn_response(h.apply(txn(
        vec![cmp(
            b"nothing",
            T::Value,
            R::NotEqual,
            U::Value(b"x".to_vec()),
        )],
        vec![],
        vec![],
    )));
    assert!(!response.succeeded);
}

#[test]
fn txn_compare_over_a_range_needs_every_key() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let (_dir, mut h) = populated();
    let mut compare = cmp(b"a", T::Version, R::Equal, U::Version(1));
    compare.range_end = b"c".to_vec(); // a (version 1), b (version 2)
    let response = txn_response(h.apply(txn(vec![compare.clone()], vec![], vec![])));
    assert!(!response.succeeded);
    compare.result = R::Greater as i32;
    compare.target_union = Some(U::Version(0));
    let response = txn_response(h.apply(txn(vec![compare], vec![], vec![])));
    assert!(response.succeeded);
}

#[test]
fn txn_operations_share_one_revision_and_see_earlier_writes() {
    let (_dir, mut h) = populated();
    let response = txn_response(h.apply(txn(
        vec![],
        vec![
            op_put(b"x", b"1"),
            op_range(b"x", b""),
            op_delete(b"a", b""),
            op_put(b"y", b"2"),
        ],
        vec![],
    )));
    assert!(response.succeeded);
    assert_eq!(response.header.unwrap().revision, 7);
    let Some(response_op::Response::ResponseRange(range)) = &response.responses[1].response else {
        panic!()
    };
    assert_eq!(range.kvs[0].value, b"1");
    assert_eq!(range.header.as_ref().unwrap().revision, 7);
    let Some(response_op::Response::ResponseDeleteRange(deleted)) = &response.responses[2].response
    else {
        panic!()
    };
    assert_eq!(deleted.prev_kvs[0].key, b"a");
    for key in [b"x".as_slice(), b"y"] {
        let kv = h.range(range_req(key)).kvs.remove(0);
        assert_eq!(kv.mod_revision, 7);
    }
    assert_eq!(h.store.current_revision(), 7);
}

fn range_req(key: &[u8]) -> RangeRequest {
    range(key, b"")
}

#[test]
fn nested_txns_run_on_their_branches_with_compares_from_before_the_txn() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let (_dir, mut h) = harness();
    // The outer success puts "k" and then runs a nested txn whose compare
    // asks whether "k" exists: nested compares see the state before the
    // whole txn, so it does not, and the nested failure branch runs.
    let nested = op_txn(
        vec![cmp(b"k", T::Version, R::Greater, U::Version(0))],
        vec![op_put(b"then", b"1")],
        vec![op_put(b"else", b"1"), op_range(b"k", b"")],
    );
    let response = txn_response(h.apply(txn(vec![], vec![op_put(b"k", b"v"), nested], vec![])));
    assert!(response.succeeded);
    let Some(response_op::Response::ResponseTxn(inner)) = &response.responses[1].response else {
        panic!()
    };
    assert!(!inner.succeeded);
    assert_eq!(inner.responses.len(), 2);
    let Some(response_op::Response::ResponseRange(range)) = &inner.responses[1].response else {
        panic!()
    };
    // But the nested range does see the outer put.
    assert_eq!(range.kvs[0].value, b"v");
    assert_eq!(h.get(b"else"), Some(b"1".to_vec()));
    assert_eq!(h.get(b"then"), None);
    assert_eq!(h.store.current_revision(), 2);
}

#[test]
fn txn_failure_branch_runs_when_a_compare_fails() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let (_dir, mut h) = harness();
    h.put(b"k", b"old");
    let response = txn_response(h.apply(txn(
        vec![cmp(b"k", T::Value, R::Equal, U::Value(b"new".to_vec()))],
        vec![op_put(b"k", b"success")],
        vec![op_put(b"k", b"failure")],
    )));
    assert!(!response.succeeded);
    assert_eq!(h.get(b"k"), Some(b"failure".to_vec()));
}

#[test]
fn txn_refusals_leave_no_trace() {
    let (_dir, mut h) = harness();
    h.put(b"k", b"v");
    // The second put's check fails: nothing of the txn is applied.
    let error = h
        .apply(txn(
            vec![],
            vec![
                op_put(b"a", b"1"),
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: b"missing".to_vec(),
                        ignore_value: true,
                        ..Default::default()
                    })),
                },
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(error, EtcdError::KeyNotFound);
    assert_eq!(h.get(b"a"), None);
    assert_eq!(h.store.current_revision(), 2);
    // A range at a future revision inside a txn refuses the txn.
    let mut future = op_range(b"k", b"");
    if let Some(request_op::Request::RequestRange(r)) = &mut future.request {
        r.revision = 100;
    }
    let error = h
        .apply(txn(vec![], vec![op_put(b"b", b"1"), future], vec![]))
        .unwrap_err();
    assert_eq!(error, EtcdError::FutureRevision);
    assert_eq!(h.get(b"b"), None);
}

#[test]
fn txn_validation_errors() {
    let limits = RequestLimits::default();
    let request = |r: Request| InternalRequest {
        id: 1,
        request: Some(r),
    };
    let check = |r: Request| validate_request(&request(r), &limits);
    // Duplicate puts, and a put inside a deleted range.
    assert_eq!(
        check(txn(
            vec![],
            vec![op_put(b"k", b"1"), op_put(b"k", b"2")],
            vec![]
        )),
        Err(EtcdError::DuplicateKey)
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![op_delete(b"a", b"z"), op_put(b"k", b"2")],
            vec![]
        )),
        Err(EtcdError::DuplicateKey)
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![
                op_put(b"k", b"1"),
                op_txn(vec![], vec![op_put(b"k", b"2")], vec![])
            ],
            vec![]
        )),
        Err(EtcdError::DuplicateKey)
    );
    // Then and else of one nested txn exclude each other.
    assert_eq!(
        check(txn(
            vec![],
            vec![op_txn(
                vec![],
                vec![op_put(b"k", b"1")],
                vec![op_put(b"k", b"2")]
            )],
            vec![]
        )),
        Ok(())
    );
    // Overlapping deletes are fine; success and failure are separate.
    assert_eq!(
        check(txn(
            vec![],
            vec![op_delete(b"a", b"z"), op_delete(b"k", b"")],
            vec![op_put(b"k", b"1")]
        )),
        Ok(())
    );
    let error = check(txn(
        vec![],
        vec![op_put(b"k", b"1"), op_put(b"k", b"2")],
        vec![],
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    // Too many operations.
    let many: Vec<RequestOp> = (0..129u32).map(|i| op_put(&i.to_be_bytes(), b"")).collect();
    let error = check(txn(vec![], many, vec![])).unwrap_err();
    assert_eq!(error, EtcdError::TooManyOps);
    assert_eq!(
        error.to_string(),
        "etcdserver: too many operations in txn request"
    );
    // Empty keys anywhere.
    assert_eq!(
        check(txn(vec![], vec![op_range(b"", b"")], vec![])),
        Err(EtcdError::EmptyKey)
    );
    let mut compare = cmp(
        b"",
        compare::CompareTarget::Version,
        compare::CompareResult::Equal,
        compare::TargetUnion::Version(0),
    );
    assert_eq!(
        check(txn(vec![compare.clone()], vec![], vec![])),
        Err(EtcdError::EmptyKey)
    );
    compare.key = b"k".to_vec();
    assert_eq!(check(txn(vec![compare], vec![], vec![])), Ok(()));
    // An operation without a request.
    assert_eq!(
        check(txn(vec![], vec![RequestOp { request: None }], vec![])),
        Err(EtcdError::KeyNotFound)
    );
}

#[test]
fn put_validation_errors_and_request_size() {
    let limits = RequestLimits {
        max_txn_ops: 128,
        max_request_bytes: 100,
    };
    let check = |r: Request| {
        validate_request(
            &InternalRequest {
                id: 7,
                request: Some(r),
            },
            &limits,
        )
    };
    assert_eq!(check(put(b"", b"v")), Err(EtcdError::EmptyKey));
    let error = check(Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ignore_value: true,
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: value is provided");
    let error = check(Request::Put(PutRequest {
        key: b"k".to_vec(),
        lease: 1,
        ignore_lease: true,
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: lease is provided");
    let error = check(put(b"k", &[0u8; 200])).unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: request is too large");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(check(put(b"k", b"small")), Ok(()));
    let empty = validate_request(
        &InternalRequest {
            id: 1,
            request: None,
        },
        &limits,
    );
    assert_eq!(empty, Err(EtcdError::EmptyRequest));
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(check(support::delete(b"", b"")), Err(EtcdError::EmptyKey));
}

#[test]
fn default_limits_are_etcds() {
    let limits = RequestLimits::default();
    assert_eq!(limits.max_txn_ops, 128);
    assert_eq!(limits.max_request_bytes, 1536 * 1024);
}

// -------------------------------------------------------- Compaction --

#[test]
fn compaction_keeps_the_compacted_revision_readable() {
    let (_dir, mut h) = harness();
    h.put(b"k", b"1"); // 2
    h.put(b"k", b"2"); // 3
    h.put(b"gone", b"x"); // 4
    h.delete(b"gone", b""); // 5
    h.put(b"k", b"3"); // 6
    let outcome = h.apply(compaction(5));
    let Ok(ApplyResponse::Compaction(response)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(response.header.unwrap().revision, 6);
    assert_eq!(h.store.compacted_revision(), 5);
    assert_eq!(h.store.current_revision(), 6);
    // At 5: k is "2", gone is deleted.
    let at5 = h.range(RangeRequest {
        revision: 5,
        ..range(b"a", b"\0")
    });
    assert_eq!(keys(&at5), vec![b"k".as_slice()]);
    assert_eq!(at5.kvs[0].value, b"2");
    // Below 5: compacted.
    let error = refused(h.store.range(&RangeRequest {
        revision: 4,
        ..range(b"k", b"")
    }));
    assert_eq!(error, EtcdError::Compacted);
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(error.code(), Code::OutOfRange);
    // Compacting again at or below 5, or beyond the current revision.
    assert_eq!(h.apply(compaction(5)).unwrap_err(), EtcdError::Compacted);
    assert_eq!(h.apply(compaction(3)).unwrap_err(), EtcdError::Compacted);
    assert_eq!(
        h.apply(compaction(7)).unwrap_err(),
        EtcdError::FutureRevision
    );
    assert_eq!(h.store.compacted_revision(), 5);
    h.put(b"k", b"4");
    assert!(h.apply(compaction(7)).is_ok());
    assert_eq!(h.get(b"k"), Some(b"4".to_vec()));
}

#[test]
fn compaction_removes_the_history_it_makes_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = Harness::new(dir.path());
        for i in 0..100u32 {
            h.put(b"k", &i.to_le_bytes());
        }
        h.put(b"dead", b"x");
        h.delete(b"dead", b"");
        h.put(b"k", b"last"); // revision 104
        h.put(b"other", b"y"); // revision 105
        h.apply(compaction(104)).unwrap();
        assert_eq!(h.get(b"k"), Some(b"last".to_vec()));
    }
    // Count what is left in the engine, key space by key space.
    let mut history = 0;
    let mut live = 0;
    for (key, _) in engine_entries(dir.path()) {
        match key[0] {
            b'h' => history += 1,
            b'l' => live += 1,
            _ => {}
        }
    }
    // History holds every version with its value, the live ones included.
    // k's live version (104) is the newest at the compaction revision: it
    // stays, all 100 older versions go. "other" (105) is above it. "dead"
    // was deleted below it: its version and tombstone go.
    assert_eq!(history, 2);
    assert_eq!(live, 2);
}

/// Every engine entry of the store in `dir`, in key order.
fn engine_entries(dir: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut options = support::options().lsm;
    options.wal_enabled = false;
    let db = raftwood_lsm::Db::open(dir, options).unwrap();
    db.range(None, None).unwrap().map(|e| e.unwrap()).collect()
}

#[test]
fn every_version_is_written_once_to_history_and_a_delete_copies_no_value() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = Harness::new(dir.path());
        assert_eq!(h.put(b"k", b"first"), 2);
        assert_eq!(h.put(b"k", b"second"), 3);
        assert_eq!(h.delete(b"k", b""), 1); // revision 4
        assert_eq!(h.put(b"j", b"only"), 5);
    }
    let entries = engine_entries(dir.path());
    let space = |prefix: u8| -> Vec<&(Vec<u8>, Vec<u8>)> {
        entries.iter().filter(|(key, _)| key[0] == prefix).collect()
    };
    // Record: kind u8 | create | mod | version | lease (i64 LE) | value.
    let mod_revision = |record: &[u8]| i64::from_le_bytes(record[9..17].try_into().unwrap());
    let history = space(b'h');
    let summary: Vec<(u8, i64, &[u8])> = history
        .iter()
        .map(|(_, record)| (record[0], mod_revision(record), &record[33..]))
        .collect();
    // j's one version; k's, newest first: the delete's tombstone, then both
    // puts where they were written, each value exactly once.
    assert_eq!(
        summary,
        vec![
            (0, 5, &b"only"[..]),
            (1, 4, &b""[..]),
            (0, 3, &b"second"[..]),
            (0, 2, &b"first"[..]),
        ]
    );
    // The live entry of j is its version's header alone (33 bytes).
    let live = space(b'l');
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0, b"lj");
    assert_eq!(live[0].1.len(), 33);
    assert_eq!(mod_revision(&live[0].1), 5);
    // The fresh store was marked with its format.
    assert!(
        entries
            .iter()
            .any(|(key, value)| key == b"sformat_version" && value == &2i64.to_le_bytes()),
        "{entries:?}"
    );
}

#[test]
fn a_store_in_another_format_is_refused_with_a_typed_error() {
    // A version 1 store: it has applied changes but has no format key.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = Harness::new(dir.path());
        h.put(b"k", b"v");
    }
    let mut options = support::options().lsm;
    options.wal_enabled = false;
    let rewrite_format = |format: Option<i64>| {
        let db = raftwood_lsm::Db::open(dir.path(), options.clone()).unwrap();
        let mut batch = raftwood_lsm::WriteBatch::new();
        match format {
            Some(version) => batch.put(b"sformat_version", version.to_le_bytes()),
            None => batch.delete(b"sformat_version"),
        };
        batch.set_applied_index(db.applied_index());
        db.write(batch, raftwood_lsm::WriteOptions::default())
            .unwrap();
        db.flush().unwrap();
    };
    for (format, found) in [(None, 1), (Some(3), 3)] {
        rewrite_format(format);
        match KvStore::open(dir.path(), support::options()) {
            Err(raftwood_kv::KvError::UnsupportedFormat {
                found: f,
                supported: 2,
            }) => assert_eq!(f, found),
            other => panic!("opened a store of format {found}: {other:?}"),
        }
    }
    // Put back, it opens and reads as before.
    rewrite_format(Some(2));
    let store = KvStore::open(dir.path(), support::options()).unwrap();
    let read = store.range(&range(b"k", b"")).unwrap();
    assert_eq!(read.kvs[0].value, b"v");
}

#[test]
fn a_key_too_long_for_the_store_is_refused_and_poisons_nothing() {
    let limits = RequestLimits::default();
    let put_request = |key: Vec<u8>| InternalRequest {
        id: 1,
        request: Some(Request::Put(PutRequest {
            key,
            value: b"v".to_vec(),
            ..Default::default()
        })),
    };
    // The history key is the key with each zero byte doubled, plus 11
    // bytes, and must fit in 64 KiB.
    for (key, fits) in [
        (vec![b'k'; 65_525], true),
        (vec![b'k'; 65_526], false),
        (vec![0u8; 32_762], true),
        (vec![0u8; 32_763], false),
    ] {
        let len = key.len();
        let checked = validate_request(&put_request(key), &limits);
        assert_eq!(checked.is_ok(), fits, "key of {len} bytes: {checked:?}");
        if !fits {
            assert_eq!(checked, Err(EtcdError::KeyTooLarge));
        }
    }
    // Also inside a txn.
    let in_txn = InternalRequest {
        id: 1,
        request: Some(txn(vec![], vec![op_put(&[0u8; 33_000], b"v")], vec![])),
    };
    assert_eq!(
        validate_request(&in_txn, &limits),
        Err(EtcdError::KeyTooLarge)
    );

    // An entry that skipped the check is refused when applied, on every
    // member alike, and the store goes on.
    let (_dir, mut h) = harness();
    assert_eq!(
        h.apply(Request::Put(PutRequest {
            key: vec![0u8; 33_000],
            value: b"v".to_vec(),
            ..Default::default()
        }))
        .unwrap_err(),
        EtcdError::KeyTooLarge
    );
    let longest = vec![b'k'; 65_525];
    h.put(&longest, b"fits");
    h.put(b"x", b"after");
    assert_eq!(h.get(&longest), Some(b"fits".to_vec()));
    assert_eq!(h.get(b"x"), Some(b"after".to_vec()));
}

// -------------------------------------------------- entries and types --

#[test]
fn malformed_and_empty_entries() {
    let (_dir, h) = harness();
    let garbage = [0xFFu8, 0xFF, 0xFF];
    let empty_request = InternalRequest {
        id: 1,
        request: None,
    };
    let empty_bytes = prost::Message::encode_to_vec(&empty_request);
    let outcomes = h
        .store
        .apply(&[
            CommittedEntry {
                index: 1,
                request: Some(&garbage),
            },
            CommittedEntry {
                index: 2,
                request: None,
            },
            CommittedEntry {
                index: 3,
                request: Some(&empty_bytes),
            },
        ])
        .unwrap();
    assert_eq!(outcomes[0], Err(EtcdError::MalformedEntry { index: 1 }));
    assert_eq!(outcomes[0].as_ref().unwrap_err().code(), Code::Internal);
    assert_eq!(outcomes[1], Ok(ApplyResponse::Noop));
    assert_eq!(outcomes[2], Err(EtcdError::UnsupportedRequest { index: 3 }));
    assert_eq!(h.store.applied_index(), 3);
    assert_eq!(h.store.current_revision(), 1);
    // Replaying them is skipped.
    let outcomes = h
        .store
        .apply(&[CommittedEntry {
            index: 2,
            request: None,
        }])
        .unwrap();
    assert_eq!(outcomes, vec![Ok(ApplyResponse::AlreadyApplied)]);
}

#[test]
fn entries_out_of_order_are_a_caller_error() {
    let (_dir, h) = harness();
    let result = h.store.apply(&[
        CommittedEntry {
            index: 5,
            request: None,
        },
        CommittedEntry {
            index: 4,
            request: None,
        },
    ]);
    assert!(matches!(result, Err(raftwood_kv::KvError::InvalidApply(_))));
}

#[test]
fn many_entries_in_one_apply_see_each_other() {
    let (_dir, h) = harness();
    let requests: Vec<Vec<u8>> = (0..10u8)
        .map(|i| support::encode(put(b"k", &[i])))
        .collect();
    let entries: Vec<CommittedEntry<'_>> = requests
        .iter()
        .enumerate()
        .map(|(i, bytes)| CommittedEntry {
            index: i as u64 + 1,
            request: Some(bytes),
        })
        .collect();
    let outcomes = h.store.apply(&entries).unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let Ok(ApplyResponse::Put(response)) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(response.header.as_ref().unwrap().revision, i as i64 + 2);
    }
    let kv = h.range(range(b"k", b"")).kvs.remove(0);
    assert_eq!((kv.version, kv.value.as_slice()), (10, [9u8].as_slice()));
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KvStore>();
    assert_send_sync::<EtcdError>();
    assert_send_sync::<RequestError>();
}

#[test]
fn reads_run_concurrently_with_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(support::open(dir.path()));
    let writer = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 1..=200u64 {
                let bytes = support::encode(put(b"k", &i.to_le_bytes()));
                store
                    .apply(&[CommittedEntry {
                        index: i,
                        request: Some(&bytes),
                    }])
                    .unwrap();
            }
        })
    };
    // Every read is consistent: the value is the one written at the
    // revision the header names.
    let mut last = 0;
    while last < 201 {
        let response = store.range(&range(b"k", b"")).unwrap();
        let revision = response.header.unwrap().revision;
        assert!(revision >= last, "revisions never go back");
        last = revision;
        if let Some(kv) = response.kvs.first() {
            assert_eq!(kv.mod_revision, revision);
            assert_eq!(kv.value, ((revision - 1) as u64).to_le_bytes());
        }
        if writer.is_finished() && last == 201 {
            break;
        }
    }
    writer.join().unwrap();
}

#[test]
fn events_from_now_and_from_the_past() {
    let (_dir, mut h) = harness();
    h.put(b"a", b"1"); // 2
    h.apply(txn(
        vec![],
        vec![op_put(b"b", b"1"), op_put(b"c", b"1")],
        vec![],
    ))
    .unwrap(); // 3
    h.delete(b"a", b"\0"); // 4: a, b, c in key order
    let now = h.store.events(0, 0, false).unwrap();
    assert!(now.events.is_empty());
    assert_eq!(now.through_revision, 4);
    let all = h.store.events(1, 0, true).unwrap();
    let shape: Vec<(i32, &[u8], i64)> = all
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (e.r#type, kv.key.as_slice(), kv.mod_revision)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, b"a".as_slice(), 2),
            (0, b"b", 3),
            (0, b"c", 3),
            (1, b"a", 4),
            (1, b"b", 4),
            (1, b"c", 4),
        ]
    );
    assert_eq!(all.events[3].prev_kv.as_ref().unwrap().value, b"1");
    assert!(all.events[0].prev_kv.is_none());
    // A batch ends at a revision boundary: two events asked, the whole
    // revision 3 comes with the second.
    let first = h.store.events(2, 2, false).unwrap();
    assert_eq!(first.events.len(), 3);
    assert_eq!(first.through_revision, 3);
    h.apply(compaction(3)).unwrap();
    assert_eq!(
        h.store.events(2, 0, false).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(h.store.events(3, 0, false).unwrap().events.len(), 5);
}

// ------------------------------------------------------------ Leases --

fn grant(id: i64, ttl: i64) -> Request {
    Request::LeaseGrant(raftwood_kv::proto::etcdserverpb::LeaseGrantRequest { id, ttl })
}

fn revoke(id: i64) -> Request {
    Request::LeaseRevoke(raftwood_kv::proto::etcdserverpb::LeaseRevokeRequest { id })
}

fn put_with_lease(key: &[u8], lease: i64) -> Request {
    Request::Put(PutRequest {
        key: key.to_vec(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    })
}

#[test]
fn lease_grant_rules_and_texts() {
    let (_dir, mut h) = harness();
    let Ok(ApplyResponse::LeaseGrant(response)) = h.apply(grant(7, 60)) else {
        panic!()
    };
    assert_eq!((response.id, response.ttl), (7, 60));
    assert_eq!(response.header.unwrap().revision, 1, "no key changed");
    let error = h.apply(grant(7, 10)).unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: lease already exists");
    assert_eq!(error.code(), Code::FailedPrecondition);
    let error = h.apply(grant(8, 9_000_000_001)).unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: too large lease TTL");
    assert_eq!(error.code(), Code::OutOfRange);
    assert_eq!(h.apply(grant(0, 10)).unwrap_err(), EtcdError::LeaseNotFound);
    assert_eq!(h.store.leases().unwrap(), vec![(7, 60)]);
    let lease = h.store.lease(7).unwrap().unwrap();
    assert_eq!((lease.granted_ttl_seconds, lease.keys.len()), (60, 0));
    assert_eq!(h.store.lease(8).unwrap(), None);
}

#[test]
fn keys_attach_to_leases_and_revoke_deletes_them_at_one_revision() {
    let (_dir, mut h) = harness();
    h.apply(grant(1, 60)).unwrap();
    h.apply(grant(2, 60)).unwrap();
    h.apply(put_with_lease(b"b", 1)).unwrap(); // 2
    h.apply(put_with_lease(b"a", 1)).unwrap(); // 3
    h.apply(put_with_lease(b"c", 2)).unwrap(); // 4
    h.put(b"free", b"x"); // 5
    // Moving a key to another lease detaches it from the first.
    h.apply(put_with_lease(b"c", 1)).unwrap(); // 6
    h.apply(put_with_lease(b"c", 2)).unwrap(); // 7
    assert_eq!(
        h.store.lease(1).unwrap().unwrap().keys,
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(h.store.lease(2).unwrap().unwrap().keys, vec![b"c".to_vec()]);
    assert_eq!(h.range(range(b"c", b"")).kvs[0].lease, 2);
    // A deleted key lets go of its lease.
    h.delete(b"c", b""); // 8
    assert!(h.store.lease(2).unwrap().unwrap().keys.is_empty());
    let Ok(ApplyResponse::LeaseRevoke(response)) = h.apply(revoke(1)) else {
        panic!()
    };
    assert_eq!(response.header.unwrap().revision, 9);
    assert_eq!(h.get(b"a"), None);
    assert_eq!(h.get(b"b"), None);
    assert_eq!(h.get(b"free"), Some(b"x".to_vec()));
    assert_eq!(h.store.lease(1).unwrap(), None);
    // Both deletes are events of revision 9, in key order.
    let events = h.store.events(9, 0, false).unwrap().events;
    let keys: Vec<&[u8]> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().key.as_slice())
        .collect();
    assert_eq!(keys, vec![b"a".as_slice(), b"b"]);
    // Revoking a lease without keys changes no revision.
    let Ok(ApplyResponse::LeaseRevoke(response)) = h.apply(revoke(2)) else {
        panic!()
    };
    assert_eq!(response.header.unwrap().revision, 9);
    let error = h.apply(revoke(2)).unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: requested lease not found");
    assert_eq!(h.store.leases().unwrap(), vec![]);
}

#[test]
fn txn_put_with_an_ungranted_lease_refuses_the_txn() {
    let (_dir, mut h) = harness();
    h.apply(grant(5, 60)).unwrap();
    let with_lease = |key: &[u8], lease: i64| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        })),
    };
    let error = h
        .apply(txn(
            vec![],
            vec![with_lease(b"a", 5), with_lease(b"b", 6)],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(error, EtcdError::LeaseNotFound);
    assert_eq!(h.get(b"a"), None);
    h.apply(txn(vec![], vec![with_lease(b"a", 5)], vec![]))
        .unwrap();
    assert_eq!(h.store.lease(5).unwrap().unwrap().keys, vec![b"a".to_vec()]);
    // ignore_lease keeps the lease.
    h.apply(Request::Put(PutRequest {
        key: b"a".to_vec(),
        value: b"new".to_vec(),
        ignore_lease: true,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(h.range(range(b"a", b"")).kvs[0].lease, 5);
    assert_eq!(h.store.lease(5).unwrap().unwrap().keys, vec![b"a".to_vec()]);
}
