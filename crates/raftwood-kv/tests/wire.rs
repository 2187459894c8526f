#![allow(clippy::unwrap_used, reason = "tests")]
//! The wire contract with etcd 3.4 clients: each field of the messages
//! etcdctl uses is encoded under etcd's field number. Every check sets one
//! field and reads the tag back from the encoding, so a renumbered field in
//! the .proto files fails here.

use prost::Message;
use raftwood_kv::proto::etcdserverpb as pb;
use raftwood_kv::proto::mvccpb;
use raftwood_kv::proto::raftwoodpb;

/// The field numbers of the top-level fields in `bytes`, in order.
fn field_numbers(bytes: &[u8]) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let key = prost::encoding::decode_varint(&mut rest).unwrap();
        let wire_type = key & 7;
        numbers.push(key >> 3);
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut rest).unwrap();
            }
            2 => {
                let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
                rest = &rest[len..];
            }
            5 => rest = &rest[4..],
            1 => rest = &rest[8..],
            other => panic!("unexpected wire type {other}"),
        }
    }
    numbers
}

fn numbers_of(message: &impl Message) -> Vec<u64> {
    field_numbers(&message.encode_to_vec())
}

#[test]
fn response_header_and_key_value() {
    let header = pb::ResponseHeader {
        cluster_id: 1,
        member_id: 1,
        revision: 1,
        raft_term: 1,
    };
    assert_eq!(numbers_of(&header), [1, 2, 3, 4]);
    let kv = mvccpb::KeyValue {
        key: b"k".to_vec(),
        create_revision: 1,
        mod_revision: 1,
        version: 1,
        value: b"v".to_vec(),
        lease: 1,
    };
    assert_eq!(numbers_of(&kv), [1, 2, 3, 4, 5, 6]);
    let event = mvccpb::Event {
        r#type: mvccpb::event::EventType::Delete as i32,
        kv: Some(kv.clone()),
        prev_kv: Some(kv),
    };
    assert_eq!(numbers_of(&event), [1, 2, 3]);
    assert_eq!(mvccpb::event::EventType::Delete as i32, 1);
}

#[test]
fn range_messages() {
    let request = pb::RangeRequest {
        key: b"k".to_vec(),
        range_end: b"z".to_vec(),
        limit: 1,
        revision: 1,
        sort_order: 1,
        sort_target: 1,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 1,
        min_create_revision: 1,
        max_create_revision: 1,
    };
    assert_eq!(numbers_of(&request), (1..=13).collect::<Vec<_>>());
    use pb::range_request::{SortOrder, SortTarget};
    assert_eq!(
        [SortOrder::None, SortOrder::Ascend, SortOrder::Descend].map(|o| o as i32),
        [0, 1, 2]
    );
    assert_eq!(
        [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value
        ]
        .map(|t| t as i32),
        [0, 1, 2, 3, 4]
    );
    let response = pb::RangeResponse {
        header: Some(pb::ResponseHeader::default()),
        kvs: vec![mvccpb::KeyValue::default()],
        more: true,
        count: 1,
    };
    assert_eq!(numbers_of(&response), [1, 2, 3, 4]);
}

#[test]
fn put_and_delete_messages() {
    let put = pb::PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 1,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    assert_eq!(numbers_of(&put), [1, 2, 3, 4, 5, 6]);
    let response = pb::PutResponse {
        header: Some(pb::ResponseHeader::default()),
        prev_kv: Some(mvccpb::KeyValue::default()),
    };
    assert_eq!(numbers_of(&response), [1, 2]);
    let delete = pb::DeleteRangeRequest {
        key: b"k".to_vec(),
        range_end: b"z".to_vec(),
        prev_kv: true,
    };
    assert_eq!(numbers_of(&delete), [1, 2, 3]);
    let response = pb::DeleteRangeResponse {
        header: Some(pb::ResponseHeader::default()),
        deleted: 1,
        prev_kvs: vec![mvccpb::KeyValue::default()],
    };
    assert_eq!(numbers_of(&response), [1, 2, 3]);
}

#[test]
fn txn_messages() {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let mut compare = pb::Compare {
        result: 1,
        target: 1,
        key: b"k".to_vec(),
        target_union: Some(TargetUnion::Version(1)),
        range_end: b"z".to_vec(),
    };
    assert_eq!(numbers_of(&compare), [1, 2, 3, 4, 64]);
    for (union, number) in [
        (TargetUnion::CreateRevision(1), 5),
        (TargetUnion::ModRevision(1), 6),
        (TargetUnion::Value(b"v".to_vec()), 7),
        (TargetUnion::Lease(1), 8),
    ] {
        compare.target_union = Some(union);
        assert_eq!(numbers_of(&compare)[3], number);
    }
    assert_eq!(
        [
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual
        ]
        .map(|r| r as i32),
        [0, 1, 2, 3]
    );
    assert_eq!(
        [
            CompareTarget::Version,
            CompareTarget::Create,
            CompareTarget::Mod,
            CompareTarget::Value,
            CompareTarget::Lease
        ]
        .map(|t| t as i32),
        [0, 1, 2, 3, 4]
    );
    use pb::request_op::Request;
    for (request, number) in [
        (Request::RequestRange(pb::RangeRequest::default()), 1),
        (Request::RequestPut(pb::PutRequest::default()), 2),
        (
            Request::RequestDeleteRange(pb::DeleteRangeRequest::default()),
            3,
        ),
        (Request::RequestTxn(pb::TxnRequest::default()), 4),
    ] {
        let op = pb::RequestOp {
            request: Some(request),
        };
        assert_eq!(numbers_of(&op), [number]);
    }
    use pb::response_op::Response;
    for (response, number) in [
        (Response::ResponseRange(pb::RangeResponse::default()), 1),
        (Response::ResponsePut(pb::PutResponse::default()), 2),
        (
            Response::ResponseDeleteRange(pb::DeleteRangeResponse::default()),
            3,
        ),
        (Response::ResponseTxn(pb::TxnResponse::default()), 4),
    ] {
        let op = pb::ResponseOp {
            response: Some(response),
        };
        assert_eq!(numbers_of(&op), [number]);
    }
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare::default()],
        success: vec![pb::RequestOp::default()],
        failure: vec![pb::RequestOp::default()],
    };
    assert_eq!(numbers_of(&txn), [1, 2, 3]);
    let response = pb::TxnResponse {
        header: Some(pb::ResponseHeader::default()),
        succeeded: true,
        responses: vec![pb::ResponseOp::default()],
    };
    assert_eq!(numbers_of(&response), [1, 2, 3]);
}

#[test]
fn compaction_maintenance_cluster_watch_and_lease_messages() {
    let compaction = pb::CompactionRequest {
        revision: 1,
        physical: true,
    };
    assert_eq!(numbers_of(&compaction), [1, 2]);
    let status = pb::StatusResponse {
        header: Some(pb::ResponseHeader::default()),
        version: "3.4.0".to_owned(),
        db_size: 1,
        leader: 1,
        raft_index: 1,
        raft_term: 1,
        raft_applied_index: 1,
        errors: vec!["e".to_owned()],
        db_size_in_use: 1,
        is_learner: true,
    };
    assert_eq!(numbers_of(&status), (1..=10).collect::<Vec<_>>());
    let member = pb::Member {
        id: 1,
        name: "n".to_owned(),
        peer_ur_ls: vec!["p".to_owned()],
        client_ur_ls: vec!["c".to_owned()],
        is_learner: true,
    };
    assert_eq!(numbers_of(&member), [1, 2, 3, 4, 5]);
    let members = pb::MemberListResponse {
        header: Some(pb::ResponseHeader::default()),
        members: vec![member],
    };
    assert_eq!(numbers_of(&members), [1, 2]);
    let hash = pb::HashKvResponse {
        header: Some(pb::ResponseHeader::default()),
        hash: 1,
        compact_revision: 1,
    };
    assert_eq!(numbers_of(&hash), [1, 2, 3]);
    let create = pb::WatchCreateRequest {
        key: b"k".to_vec(),
        range_end: b"z".to_vec(),
        start_revision: 1,
        progress_notify: true,
        filters: vec![1],
        prev_kv: true,
        watch_id: 1,
        fragment: true,
    };
    assert_eq!(numbers_of(&create), (1..=8).collect::<Vec<_>>());
    let watch = pb::WatchResponse {
        header: Some(pb::ResponseHeader::default()),
        watch_id: 1,
        created: true,
        canceled: true,
        compact_revision: 1,
        cancel_reason: "r".to_owned(),
        fragment: true,
        events: vec![mvccpb::Event::default()],
    };
    assert_eq!(numbers_of(&watch), [1, 2, 3, 4, 5, 6, 7, 11]);
    let grant = pb::LeaseGrantResponse {
        header: Some(pb::ResponseHeader::default()),
        id: 1,
        ttl: 1,
        error: "e".to_owned(),
    };
    assert_eq!(numbers_of(&grant), [1, 2, 3, 4]);
    let ttl = pb::LeaseTimeToLiveResponse {
        header: Some(pb::ResponseHeader::default()),
        id: 1,
        ttl: 1,
        granted_ttl: 1,
        keys: vec![b"k".to_vec()],
    };
    assert_eq!(numbers_of(&ttl), [1, 2, 3, 4, 5]);
}

#[test]
fn internal_request_numbers() {
    use raftwoodpb::internal_request::Request;
    for (request, number) in [
        (Request::Put(pb::PutRequest::default()), 2),
        (Request::DeleteRange(pb::DeleteRangeRequest::default()), 3),
        (Request::Txn(pb::TxnRequest::default()), 4),
        (Request::Compaction(pb::CompactionRequest::default()), 5),
        (Request::LeaseGrant(pb::LeaseGrantRequest::default()), 6),
        (Request::LeaseRevoke(pb::LeaseRevokeRequest::default()), 7),
    ] {
        let internal = raftwoodpb::InternalRequest {
            id: 9,
            request: Some(request),
        };
        assert_eq!(numbers_of(&internal), [1, number]);
    }
}
