//! The Lease service: grant, revoke, keep-alive, time-to-live, list.
//!
//! Grant and revoke are raft proposals (a follower forwards them to the
//! leader inside raft, like any write). Keep-alive and time-to-live need
//! the lease deadlines, which only the leader keeps (`LeaseClock`): a
//! follower relays them to the leader's client URL over gRPC.
//! A background task on every member proposes the revoke of each lease
//! whose deadline passed, while it leads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use self::clock::LeaseClock;
use super::member::relay::{self, Relay};
use super::member::{MemberHandle, status};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::raftwoodpb::internal_request;
use raftwood_kv::ApplyResponse;

mod clock;

/// The Lease service of one member. Clones share one lease clock: a
/// member has one, however many client URLs serve the service.
#[derive(Debug, Clone)]
pub struct LeaseService {
    member: MemberHandle,
    relay: Relay,
    clock: Arc<LeaseClock>,
    next_id: Arc<AtomicU64>,
}

impl LeaseService {
    /// The service of `member`, with a fresh lease clock.
    pub fn new(member: MemberHandle) -> LeaseService {
        LeaseService {
            relay: Relay::new(member.request_timeout()),
            member,
            clock: Arc::default(),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The member's lease-expiry task, over this service's clock: revokes
    /// every lease whose deadline passed while this member leads, checking
    /// twice a second. Runs until dropped; a member runs exactly one.
    pub fn expire_leases(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        expire_leases(self.member.clone(), self.clock.clone())
    }

    /// etcd's minimum TTL: one and a half election timeouts, in whole
    /// seconds, so a lease cannot expire during a leader change.
    fn min_ttl_seconds(&self) -> i64 {
        let ms = self.member.config.election_timeout_ms.saturating_mul(3) / 2;
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX).max(1)
    }

    /// A fresh lease id, chosen before proposing (apply must not choose):
    /// 15 bits of this member's id, 40 bits of milliseconds, 8 bits of a
    /// counter; positive, as etcd's ids are.
    fn new_lease_id(&self) -> i64 {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let count = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = ((self.member.member_id & 0x7fff) << 48)
            | ((millis & 0xff_ffff_ffff) << 8)
            | (count & 0xff);
        i64::try_from(id).unwrap_or(i64::MAX).max(1)
    }

    /// A client of the leader, to relay a request this member (which does
    /// not lead) cannot answer, once the leader's client URL is known here
    /// (just after an election or a start it may not be yet). "No leader"
    /// if none becomes known in time, or if the request was itself
    /// `relayed` here: two members with stale views would otherwise bounce
    /// it between them.
    async fn leader_client(&self, relayed: bool) -> Result<LeaseClient<Channel>, Status> {
        let url = self.member.leader_client_url_soon(relayed).await?;
        self.relay.lease_client(&url).ok_or_else(status::no_leader)
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut inner = request.into_inner();
        inner.ttl = inner.ttl.max(self.min_ttl_seconds());
        if inner.id == 0 {
            inner.id = self.new_lease_id();
        }
        match self
            .member
            .propose(internal_request::Request::LeaseGrant(inner))
            .await?
        {
            ApplyResponse::LeaseGrant(mut response) => {
                self.member.stamp(&mut response.header);
                // Only the leader's clock counts (a follower's entry here
                // is never read: keep-alive and time-to-live go to the
                // leader, and a new leader gives every lease a full TTL).
                let term = self.member.status.borrow().term;
                self.clock
                    .refresh(term, response.id, response.ttl, Instant::now());
                Ok(Response::new(response))
            }
            _ => Err(Status::internal("raftwood: unexpected grant answer")),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let inner = request.into_inner();
        match self
            .member
            .propose(internal_request::Request::LeaseRevoke(inner))
            .await?
        {
            ApplyResponse::LeaseRevoke(mut response) => {
                self.member.stamp(&mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(Status::internal("raftwood: unexpected revoke answer")),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let relayed = relay::is_relayed(&request);
        let mut incoming = request.into_inner();
        let (sender, receiver) = mpsc::channel(16);
        let service = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(keep_alive)) = incoming.message().await {
                let answer = service.keep_alive_once(keep_alive.id, relayed).await;
                if sender.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let relayed = relay::is_relayed(&request);
        let inner = request.into_inner();
        let status_now = *self.member.status.borrow();
        if !status_now.is_leader {
            let mut client = self.leader_client(relayed).await?;
            return client.lease_time_to_live(relay::mark(inner)).await;
        }
        let kv = self.member.kv.load();
        let revision = kv.current_revision();
        let lease = kv
            .lease(inner.id)
            .map_err(|e| Status::internal(format!("raftwood: reading lease: {e}")))?;
        let Some(lease) = lease else {
            // etcd answers TTL -1 for a lease that does not exist.
            return Ok(Response::new(LeaseTimeToLiveResponse {
                header: Some(self.member.header(revision)),
                id: inner.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let remaining = self.clock.remaining_seconds(
            status_now.term,
            lease.id,
            lease.granted_ttl_seconds,
            Instant::now(),
        );
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: Some(self.member.header(revision)),
            id: lease.id,
            ttl: remaining,
            granted_ttl: lease.granted_ttl_seconds,
            keys: if inner.keys { lease.keys } else { Vec::new() },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let (leases, revision) = self
            .member
            .read_store(|kv| (kv.leases(), kv.current_revision()))
            .await?;
        let leases =
            leases.map_err(|e| Status::internal(format!("raftwood: reading leases: {e}")))?;
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.member.header(revision)),
            leases: leases
                .into_iter()
                .map(|(id, _)| LeaseStatus { id })
                .collect(),
        }))
    }
}

impl LeaseService {
    /// One keep-alive: the leader extends the deadline and answers the
    /// granted TTL (0 if the lease does not exist, as etcd); a follower
    /// relays it to the leader.
    /// One keep-alive; `relayed` says another member relayed it, in which
    /// case a member that does not lead answers "no leader" rather than
    /// relay it again (two members with stale views would bounce it).
    async fn keep_alive_once(
        &self,
        id: i64,
        relayed: bool,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        let status_now = *self.member.status.borrow();
        if !status_now.is_leader {
            let mut client = self.leader_client(relayed).await?;
            let mut answers = client
                .lease_keep_alive(relay::mark(tokio_stream::once(LeaseKeepAliveRequest {
                    id,
                })))
                .await?
                .into_inner();
            return answers.message().await?.ok_or_else(status::no_leader);
        }
        let kv = self.member.kv.load();
        let revision = kv.current_revision();
        let ttl = kv
            .lease(id)
            .map_err(|e| Status::internal(format!("raftwood: reading lease: {e}")))?
            .map_or(0, |lease| lease.granted_ttl_seconds);
        if ttl > 0 {
            self.clock.refresh(status_now.term, id, ttl, Instant::now());
        }
        Ok(LeaseKeepAliveResponse {
            header: Some(self.member.header(revision)),
            id,
            ttl,
        })
    }
}

/// Revokes expired leases while this member leads, checking every
/// `period`. Runs until the member stops.
async fn expire_leases(member: MemberHandle, clock: Arc<LeaseClock>) {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let status_now = *member.status.borrow();
        if !status_now.is_leader {
            continue;
        }
        let leases = match member.read_store(|kv| kv.leases()).await {
            Ok(Ok(leases)) => leases,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read leases");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read leases");
                continue;
            }
        };
        for id in clock.expired(status_now.term, &leases, Instant::now()) {
            let revoke = internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id });
            // A lease already revoked answers "lease not found": fine. A
            // member that lost leadership meanwhile must not have the
            // revoke forwarded: the new leader gave the lease a full TTL.
            if let Err(error) = member.propose_if_leader(revoke).await {
                tracing::debug!(id, %error, "lease revoke not applied");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The relay guard of the lease requests only the leader answers: a
    //! time-to-live relayed by another member, reaching a member that does
    //! not lead either, is answered "no leader" instead of being relayed
    //! again (two members with stale views would bounce it), and a member
    //! that knows no leader answers the same at once. No socket is opened.

    use tonic::Code;

    use super::*;
    use crate::driver::RaftStatus;
    use crate::grpc::member::test_support::{ME, handle_with};

    fn service_on_a_follower_of(leader: Option<u64>) -> LeaseService {
        let (member, _loop_side) = handle_with(RaftStatus {
            id: ME,
            leader,
            term: 3,
            ..RaftStatus::default()
        });
        // Member 2's client URL is known, with nothing listening: a relay
        // would fail with a transport error, not "no leader".
        let nobody: crate::url::PeerUrl = "http://127.0.0.1:1".parse().expect("a url");
        let mut member = member;
        let mut membership = (**member.membership.borrow()).clone();
        membership.members.insert(
            2,
            crate::membership::Member {
                id: 2,
                name: "m2".into(),
                peer_urls: Vec::new(),
                client_urls: vec![nobody],
                is_learner: false,
            },
        );
        member.membership = tokio::sync::watch::channel(Arc::new(membership)).1;
        LeaseService::new(member)
    }

    fn assert_no_leader(result: Result<Response<LeaseTimeToLiveResponse>, Status>) {
        match result {
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable);
                assert_eq!(status.message(), "etcdserver: no leader");
            }
            Ok(response) => panic!("answered by a member that does not lead: {response:?}"),
        }
    }

    #[tokio::test]
    async fn a_relayed_time_to_live_reaching_a_non_leader_is_not_relayed_again() {
        // Member 2 leads as far as this member knows.
        let service = service_on_a_follower_of(Some(2));
        let request = relay::mark(LeaseTimeToLiveRequest { id: 1, keys: false });
        assert_no_leader(service.lease_time_to_live(request).await);
    }

    #[tokio::test]
    async fn a_relayed_keep_alive_reaching_a_non_leader_is_not_relayed_again() {
        // Keep-alives were relayed unmarked, so two members with stale
        // views could bounce one between them.
        let service = service_on_a_follower_of(Some(2));
        match service.keep_alive_once(1, true).await {
            Err(status) => assert_eq!(status.message(), "etcdserver: no leader"),
            Ok(answer) => panic!("answered by a member that does not lead: {answer:?}"),
        }
    }

    #[tokio::test]
    async fn a_time_to_live_at_a_member_that_knows_no_leader_is_refused() {
        let service = service_on_a_follower_of(None);
        let request = Request::new(LeaseTimeToLiveRequest { id: 1, keys: false });
        assert_no_leader(service.lease_time_to_live(request).await);
    }
}
