//! `MemberHandle::propose` as the drive loop sees it: every write carries
//! a fresh request id (in the event and in the encoded bytes, which is how
//! a follower recognises the entry it forwarded when it applies it), a
//! leader-only proposal carries none, and the loop's answers become etcd's
//! errors. The drive loop is played by a task, so no socket is opened (the
//! forwarding itself is covered by `tests/cluster.rs` and the simulator).

use tonic::Code;

use super::MemberHandle;
use crate::driver::{LoopEvent, ProposeError, RaftStatus};
use crate::grpc::member::test_support::{ME, handle_with};
use crate::proto::etcdserverpb::{LeaseRevokeRequest, PutRequest};
use crate::proto::raftwoodpb::internal_request;
use crate::request_id::request_id_of;

/// What the played drive loop saw of each proposal: the event's id, and
/// the id read back from the encoded bytes.
type SeenIds = Vec<(u64, Option<u64>)>;

/// A service whose drive loop answers every proposal with `answer`, and
/// reports the id of each proposal it received (from the event, and as
/// read back from the bytes).
fn service_whose_loop_answers(
    answer: ProposeError,
) -> (MemberHandle, tokio::task::JoinHandle<SeenIds>) {
    let (handle, mut loop_side) = handle_with(RaftStatus::default());
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
    (handle, answering)
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

#[tokio::test]
async fn writes_that_add_data_over_the_backend_quota_never_reach_the_loop() {
    // A lease grant adds data as a put does: etcd's quota lease server
    // refuses it over --quota-backend-bytes; a revoke, which frees data,
    // still goes through.
    let (mut handle, mut loop_side) = handle_with(RaftStatus::default());
    let mut config = (*handle.config).clone();
    config.quota_backend_bytes = 1;
    handle.config = std::sync::Arc::new(config);
    let grant =
        internal_request::Request::LeaseGrant(crate::proto::etcdserverpb::LeaseGrantRequest {
            ttl: 60,
            id: 7,
        });
    for request in [put(), grant] {
        let status = handle.propose(request).await.expect_err("over the quota");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: database space exceeded"
        );
    }
    assert!(loop_side.try_recv().is_err(), "nothing was proposed");
    let revoke = internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id: 7 });
    drop(tokio::time::timeout(std::time::Duration::from_millis(50), handle.propose(revoke)).await);
    assert!(
        matches!(loop_side.try_recv(), Ok(LoopEvent::Propose { .. })),
        "a revoke is proposed over the quota"
    );
}
