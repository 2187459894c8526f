//! The "forwarded twice" guard of `KvService::propose`: a write that a
//! follower forwarded to the member it believed led, arriving at a member
//! that does not lead either, is answered "no leader" rather than
//! forwarded again. Tested at `propose`, the level where the guard lives:
//! the drive loop's answer is played by a task, so no socket is opened
//! (forwarding itself, a gRPC call, is covered by `tests/cluster.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use raftwood_kv::{KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use tokio::sync::{mpsc, watch};
use tonic::Code;

use super::{KvService, Proposed};
use crate::config::ServerConfig;
use crate::driver::{LoopEvent, ProposeError, RaftStatus};
use crate::grpc::forward::Forwarder;
use crate::membership::{Member, Membership};
use crate::node::NodeContext;
use crate::proto::etcdserverpb::PutRequest;
use crate::proto::raftwoodpb::internal_request;
use crate::url::PeerUrl;

/// The member this service runs on.
const ME: u64 = 1;
/// The member the drive loop names as leader.
const LEADER: u64 = 2;

/// A service on member 1 whose drive loop answers every proposal with
/// "not the leader; member 2 leads" (member 2's client URL is known).
fn service_whose_loop_names_member_2_leader() -> (KvService, tokio::task::JoinHandle<usize>) {
    let fs = Arc::new(CrashFs::new());
    let mut options = KvOptions::default();
    options.lsm.fs = Arc::clone(&fs) as Arc<dyn FileSystem>;
    options.lsm.background_threads = false;
    let kv = KvStore::open(Path::new("/kv"), options).expect("an in-memory store");
    let leader_url: PeerUrl = "http://127.0.0.1:2379".parse().expect("a url");
    let mut members = BTreeMap::new();
    for (id, client_urls) in [(ME, Vec::new()), (LEADER, vec![leader_url])] {
        members.insert(
            id,
            Member {
                id,
                name: format!("m{id}"),
                peer_urls: Vec::new(),
                client_urls,
                is_learner: false,
            },
        );
    }
    let (events, mut loop_side) = mpsc::unbounded_channel();
    let answering = tokio::spawn(async move {
        let mut answered = 0;
        while let Some(event) = loop_side.recv().await {
            if let LoopEvent::Propose { reply, .. } = event {
                let _ = reply.send(Err(ProposeError::NotLeader {
                    leader: Some(LEADER),
                }));
                answered += 1;
            }
        }
        answered
    });
    let (_, status) = watch::channel(RaftStatus::default());
    let (_, applied) = watch::channel(0);
    let context = NodeContext {
        config: Arc::new(ServerConfig::new("m1", "/unused".into())),
        member_id: ME,
        cluster_id: 7,
        membership: Arc::new(RwLock::new(Membership {
            cluster_id: 7,
            members,
        })),
        kv: Arc::new(ArcSwap::from_pointee(kv)),
        events,
        status,
        applied,
    };
    (KvService::new(context, Forwarder::default()), answering)
}

fn put() -> internal_request::Request {
    internal_request::Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    })
}

#[tokio::test]
async fn a_client_write_at_a_follower_is_handed_back_for_forwarding_to_the_leader() {
    let (service, answering) = service_whose_loop_names_member_2_leader();
    match service.propose(put(), false).await {
        Ok(Proposed::Forward(url, internal_request::Request::Put(request))) => {
            assert_eq!(url, "http://127.0.0.1:2379");
            assert_eq!(request.key, b"k");
        }
        Ok(_) => panic!("expected the write to be forwarded"),
        Err(status) => panic!("expected the write to be forwarded, got {status:?}"),
    }
    drop(service);
    assert_eq!(answering.await.expect("the loop task"), 1);
}

#[tokio::test]
async fn a_forwarded_write_reaching_a_member_that_does_not_lead_is_not_forwarded_again() {
    let (service, answering) = service_whose_loop_names_member_2_leader();
    match service.propose(put(), true).await {
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(status.message(), "etcdserver: no leader");
        }
        Ok(Proposed::Forward(url, _)) => panic!("forwarded twice, to {url}"),
        Ok(Proposed::Applied(_)) => panic!("a member that does not lead applied a write"),
    }
    drop(service);
    assert_eq!(answering.await.expect("the loop task"), 1);
}
