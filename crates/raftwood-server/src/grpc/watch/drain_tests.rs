//! A stream's drain over many watchers: one store read per revision for
//! the whole member, and each watcher gets exactly the events it wants.

use std::collections::BTreeMap;

use prost::Message as _;
use raftwood_kv::CommittedEntry;
use tokio::sync::mpsc;

use super::watchers::Watcher;
use super::{WatchService, drain};
use crate::driver::RaftStatus;
use crate::grpc::member::MemberHandle;
use crate::grpc::member::test_support::handle_with;
use crate::proto::etcdserverpb::{PutRequest, WatchResponse};
use crate::proto::raftwoodpb::{InternalRequest, internal_request};

/// Applies puts of `k000`..`k049` (revisions 2..=51).
fn put_fifty_keys(member: &MemberHandle) {
    let payloads: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            InternalRequest {
                id: i + 1,
                request: Some(internal_request::Request::Put(PutRequest {
                    key: format!("k{i:03}").into_bytes(),
                    value: b"v".to_vec(),
                    ..PutRequest::default()
                })),
            }
            .encode_to_vec()
        })
        .collect();
    let entries: Vec<CommittedEntry<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| CommittedEntry {
            index: i as u64 + 1,
            request: Some(payload),
        })
        .collect();
    member.kv.load().apply(&entries).unwrap();
}

/// 1,000 single-key watchers over `k000`..`k099` (ten on each key) and one
/// watcher of every key, all from revision 2.
fn watchers() -> BTreeMap<i64, Watcher> {
    let mut watchers: BTreeMap<i64, Watcher> = (0..1000)
        .map(|id| {
            let watcher = Watcher {
                key: format!("k{:03}", id % 100).into_bytes(),
                range_end: Vec::new(),
                next_revision: 2,
                no_put: false,
                no_delete: false,
                prev_kv: false,
                ..Watcher::default()
            };
            (id, watcher)
        })
        .collect();
    let everything = Watcher {
        key: vec![0],
        range_end: vec![0],
        next_revision: 2,
        no_put: false,
        no_delete: false,
        prev_kv: false,
        ..Watcher::default()
    };
    watchers.insert(1000, everything);
    watchers
}

async fn drained(service: &WatchService) -> Vec<WatchResponse> {
    let (sender, mut receiver) = mpsc::channel(4096);
    let mut watchers = watchers();
    assert!(drain(service, &sender, &mut watchers).await.is_some());
    assert!(watchers.values().all(|w| w.next_revision == 52));
    drop(sender);
    let mut responses = Vec::new();
    while let Some(response) = receiver.recv().await {
        responses.push(response.unwrap());
    }
    responses
}

#[tokio::test]
async fn watchers_at_one_revision_read_the_store_once_per_member() {
    let (member, _loop_side) = handle_with(RaftStatus::default());
    put_fifty_keys(&member);
    let service = WatchService::new(member);
    for _stream in 0..3 {
        let responses = drained(&service).await;
        // Keys k000..k049 changed: ten watchers each, one event; and the
        // watcher of everything, all fifty.
        assert_eq!(responses.len(), 501);
        for response in &responses {
            let keys: Vec<&[u8]> = response
                .events
                .iter()
                .map(|e| e.kv.as_ref().unwrap().key.as_slice())
                .collect();
            if response.watch_id == 1000 {
                assert_eq!(keys.len(), 50);
            } else {
                let key = format!("k{:03}", response.watch_id % 100);
                assert_eq!(keys, [key.as_bytes()], "watcher {}", response.watch_id);
            }
        }
    }
    // Three streams of 1,001 watchers: one read of the store.
    assert_eq!(service.events.reads(), 1);
}
