//! `KvService::propose` as the drive loop sees it: every write carries a
//! fresh request id (in the event and in the encoded bytes, which is how a
//! follower recognises the entry it forwarded when it applies it), a
//! leader-only proposal carries none, and the loop's answers become etcd's
//! errors. The drive loop is played by a task, so no socket is opened (the
//! forwarding itself is covered by `tests/cluster.rs` and the simulator).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use raftwood_kv::{KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use tokio::sync::{mpsc, watch};
use tonic::Code;

use super::KvService;
use crate::config::ServerConfig;
use crate::driver::{LoopEvent, ProposeError, RaftStatus};
use crate::membership::{Member, Membership};
use crate::node::NodeContext;
use crate::proto::etcdserverpb::{LeaseRevokeRequest, PutRequest};
use crate::proto::raftwoodpb::internal_request;
use crate::request_id::{RequestIds, request_id_of};

/// The member this service runs on.
pub(crate) const ME: u64 = 0x5eed_0001;

/// What the played drive loop saw of each proposal: the event's id, and
/// the id read back from the encoded bytes.
type SeenIds = Vec<(u64, Option<u64>)>;

/// A context for member `ME` (whose client URL is unknown), with its
/// drive-loop channel and the given published status.
pub(crate) fn context_with(
    status: RaftStatus,
) -> (NodeContext, mpsc::UnboundedReceiver<LoopEvent>) {
    let fs = Arc::new(CrashFs::new());
    let mut options = KvOptions::default();
    options.lsm.fs = Arc::clone(&fs) as Arc<dyn FileSystem>;
    options.lsm.background_threads = false;
    let kv = KvStore::open(Path::new("/kv"), options).expect("an in-memory store");
    let mut members = BTreeMap::new();
    members.insert(
        ME,
        Member {
            id: ME,
            name: "m1".into(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: false,
        },
    );
    let (events, loop_side) = mpsc::unbounded_channel();
    let (_, status) = watch::channel(status);
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
        request_ids: Arc::new(RequestIds::new(ME, 1_000)),
    };
    (context, loop_side)
}

/// A service whose drive loop answers every proposal with `answer`, and
/// reports the id of each proposal it received (from the event, and as
/// read back from the bytes).
fn service_whose_loop_answers(
    answer: ProposeError,
) -> (KvService, tokio::task::JoinHandle<SeenIds>) {
    let (context, mut loop_side) = context_with(RaftStatus::default());
    let answering = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = loop_side.recv().await {
            if let LoopEvent::Propose { id, request, reply } = event {
                seen.push((id, request_id_of(&request)));
                let _ = reply.send(Err(answer.clone()));
            }
        }
        seen
    });
    (KvService::new(context), answering)
}

fn put() -> internal_request::Request {
    internal_request::Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    })
}

#[tokio::test]
async fn every_write_carries_a_fresh_id_of_this_member_in_its_bytes() {
    let (service, answering) = service_whose_loop_answers(ProposeError::Busy);
    for _ in 0..3 {
        let status = service.propose(put()).await.expect_err("the loop refuses");
        assert_eq!(status.code(), Code::ResourceExhausted);
    }
    drop(service);
    let seen = answering.await.expect("the loop task");
    assert_eq!(seen.len(), 3);
    for (id, in_bytes) in &seen {
        assert_ne!(*id, 0);
        assert_eq!(*in_bytes, Some(*id), "the event's id is the encoded one");
        assert_eq!(id >> 48, ME & 0xffff, "the member's bits");
    }
    assert!(seen[0].0 < seen[1].0 && seen[1].0 < seen[2].0, "{seen:?}");
}

#[tokio::test]
async fn a_leader_only_proposal_carries_no_id_so_it_is_never_forwarded() {
    let (service, answering) =
        service_whose_loop_answers(ProposeError::NotLeader { leader: Some(2) });
    let revoke = internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id: 5 });
    let status = service
        .propose_if_leader(revoke)
        .await
        .expect_err("not the leader");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: no leader");
    drop(service);
    assert_eq!(answering.await.expect("the loop task"), vec![(0, None)]);
}

#[tokio::test]
async fn a_forwarded_write_that_times_out_gets_etcds_leader_failure_error() {
    let (service, answering) = service_whose_loop_answers(ProposeError::ForwardTimedOut);
    let status = service.propose(put()).await.expect_err("timed out");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "etcdserver: request timed out, possibly due to previous leader failure"
    );
    drop(service);
    assert_eq!(answering.await.expect("the loop task").len(), 1);
}

#[tokio::test]
async fn a_forwarded_write_overtaken_by_a_new_term_gets_leader_changed() {
    let (service, answering) = service_whose_loop_answers(ProposeError::LeaderChanged);
    let status = service.propose(put()).await.expect_err("lost");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: leader changed");
    drop(service);
    assert_eq!(answering.await.expect("the loop task").len(), 1);
}
