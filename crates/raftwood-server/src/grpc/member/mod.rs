//! The member as the client services see it: one handle ([`MemberHandle`])
//! that every service holds, and the helpers every service needs — a
//! proposal through raft, the linearizable barrier, response headers and
//! the translation of the loop's errors into etcd's ([`status`]). Each
//! service file implements its service over this module alone; no service
//! imports another.

pub mod relay;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use prost::Message as _;
use raftwood_kv::{ApplyResponse, KvStore};
use raftwood_raft::{ConfChange, Index, NodeId};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;

use crate::config::ServerConfig;
use crate::driver::{LoopEvent, RaftStatus};
use crate::membership::MembershipWatch;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::raftwoodpb::{InternalRequest, MemberAttributes, internal_request};
use crate::request_id::RequestIds;

/// What the client-facing services need from a running member.
#[derive(Debug, Clone)]
pub struct MemberHandle {
    /// The member's settings.
    pub config: Arc<ServerConfig>,
    /// This member's id.
    pub member_id: NodeId,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Who is in the cluster, as last applied.
    pub membership: MembershipWatch,
    /// The state machine (reads are served from it directly); replaced
    /// when a snapshot from the leader is installed.
    pub kv: Arc<ArcSwap<KvStore>>,
    /// Input to the drive loop.
    pub events: mpsc::UnboundedSender<LoopEvent>,
    /// The drive loop's latest status.
    pub status: watch::Receiver<RaftStatus>,
    /// The state machine's applied index.
    pub applied: watch::Receiver<Index>,
    /// Ids for the requests this member proposes.
    pub request_ids: Arc<RequestIds>,
}

impl MemberHandle {
    /// How long a request may wait for raft before "request timed out"
    /// (etcd: 5 s plus twice the election timeout).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms())
    }

    /// A response header from this member at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.status.borrow().term,
        }
    }

    /// A response header at the state machine's current revision.
    pub fn header_now(&self) -> ResponseHeader {
        self.header(self.kv.load().current_revision())
    }

    /// Gives a state machine's response this member's header, keeping the
    /// revision the state machine set.
    pub fn stamp(&self, response_header: &mut Option<ResponseHeader>) {
        let revision = response_header.as_ref().map_or(0, |h| h.revision);
        *response_header = Some(self.header(revision));
    }

    /// Whether this member is a learner (it serves only Status and
    /// serializable reads, as in etcd 3.4).
    pub fn is_learner(&self) -> bool {
        self.membership
            .borrow()
            .members
            .get(&self.member_id)
            .is_some_and(|me| me.is_learner)
    }

    /// The first client URL of `member`, if known.
    pub fn client_url_of(&self, member: NodeId) -> Option<String> {
        let membership = self.membership.borrow();
        let url = membership.members.get(&member)?.client_urls.first()?;
        Some(url.to_string())
    }

    /// The client URL of the leader, for a request only the leader may
    /// answer; "no leader" if none is known, or if the request was itself
    /// relayed (two members with stale views never bounce it between them).
    pub fn leader_client_url(&self, relayed: bool) -> Result<String, Status> {
        if relayed {
            return Err(status::no_leader());
        }
        let leader = self.status.borrow().leader.ok_or_else(status::no_leader)?;
        self.client_url_of(leader).ok_or_else(status::no_leader)
    }

    /// [`MemberHandle::leader_client_url`], waiting (within the request
    /// timeout) while a leader is unknown or has not yet published its
    /// client URL here — as just after an election, or a start — rather
    /// than refusing a request no client retries (MemberAdd).
    pub async fn leader_client_url_soon(&self, relayed: bool) -> Result<String, Status> {
        if relayed {
            return Err(status::no_leader());
        }
        let mut membership = self.membership.clone();
        let mut raft = self.status.clone();
        let deadline = tokio::time::Instant::now() + self.request_timeout();
        loop {
            if let Ok(url) = self.leader_client_url(false) {
                return Ok(url);
            }
            let changed = async {
                tokio::select! {
                    result = membership.changed() => result.is_ok(),
                    result = raft.changed() => result.is_ok(),
                }
            };
            match tokio::time::timeout_at(deadline, changed).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return Err(status::no_leader()),
            }
        }
    }

    /// Proposes `request` with a fresh id and waits for its outcome, on
    /// the leader or a follower alike.
    pub async fn propose(
        &self,
        request: internal_request::Request,
    ) -> Result<ApplyResponse, Status> {
        self.propose_with_id(request, self.request_ids.next()).await
    }

    /// Proposes `request` only if this member leads when the drive loop
    /// takes it ("no leader" otherwise): for proposals whose reason holds
    /// only on the leader, such as the revoke of a lease whose deadline
    /// the leader's clock says passed.
    pub async fn propose_if_leader(
        &self,
        request: internal_request::Request,
    ) -> Result<ApplyResponse, Status> {
        // Without an id the drive loop cannot recognise the entry when a
        // follower applies it, so it never forwards it.
        self.propose_with_id(request, 0).await
    }

    async fn propose_with_id(
        &self,
        request: internal_request::Request,
        id: u64,
    ) -> Result<ApplyResponse, Status> {
        let internal = InternalRequest {
            id,
            request: Some(request),
        };
        let encoded = self.admit(&internal)?;
        let (reply, result) = oneshot::channel();
        self.events
            .send(LoopEvent::Propose {
                id: internal.id,
                request: encoded,
                reply,
            })
            .map_err(|_| status::stopped())?;
        // The drive loop answers a forwarded proposal before this deadline
        // (`ServerConfig::forward_timeout_ticks`); this one only guards
        // against a loop that stopped answering.
        let outcome = match tokio::time::timeout(self.request_timeout(), result).await {
            Err(_) => return Err(status::timed_out()),
            Ok(Err(_)) => return Err(status::stopped()),
            Ok(Ok(outcome)) => outcome,
        };
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(status::from_etcd(&error)),
            Err(error) => Err(status::from_propose(&error)),
        }
    }

    /// The checks a request passes before it is proposed: valid, within
    /// `--max-request-bytes` and `--max-txn-ops` (the store's limits, from
    /// the configuration), and within the backend quota if it adds data.
    /// Returns it encoded.
    fn admit(&self, internal: &InternalRequest) -> Result<Bytes, Status> {
        let kv = self.kv.load();
        if let Err(error) = kv.validate(internal) {
            return Err(status::from_etcd(&error));
        }
        let encoded = Bytes::from(internal.encode_to_vec());
        // The drive loop and the waiters find the id in the bytes.
        debug_assert_eq!(
            crate::request_id::request_id_of(&encoded),
            (internal.id != 0).then_some(internal.id)
        );
        // etcd's backend quota: writes that add data are refused once the
        // store is over --quota-backend-bytes (puts, txns and, as etcd's
        // quota lease server does, lease grants); deletes, revokes and
        // compactions, which free space, are still accepted.
        let adds_data = matches!(
            internal.request,
            Some(
                internal_request::Request::Put(_)
                    | internal_request::Request::Txn(_)
                    | internal_request::Request::LeaseGrant(_)
            )
        );
        let quota = self.config.effective_quota_backend_bytes();
        if adds_data && kv.db_size_bytes() + encoded.len() as u64 > quota {
            return Err(Status::resource_exhausted(
                "etcdserver: mvcc: database space exceeded",
            ));
        }
        Ok(encoded)
    }

    /// Publishes this member's name and client URLs through raft (etcd's
    /// publish) until the registry shows them, and again whenever it stops
    /// showing them (a snapshot, a MemberUpdate): that is how the others
    /// learn where to relay to it and what `member list` prints. Runs as
    /// one task per member.
    pub async fn publish_attributes(self) {
        let name = self.config.name.clone();
        let client_urls = self.config.advertise_client_urls.clone();
        let mut membership = self.membership.clone();
        let mut retry = Duration::from_millis(100);
        loop {
            let published = membership
                .borrow_and_update()
                .members
                .get(&self.member_id)
                .is_some_and(|me| me.name == name && me.client_urls == client_urls);
            if published {
                if membership.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let attributes = MemberAttributes {
                id: self.member_id,
                name: name.clone(),
                client_ur_ls: client_urls.iter().map(ToString::to_string).collect(),
            };
            let request = internal_request::Request::MemberAttributes(attributes);
            if let Err(status) = self.propose(request).await {
                tracing::debug!(%status, "publishing this member's attributes; will retry");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// Has the leader propose the membership `change` (this member must
    /// lead when the loop takes it: "no leader" otherwise, and the caller
    /// relays) and waits until it is applied here.
    pub async fn change_membership(&self, change: ConfChange) -> Result<(), Status> {
        let (reply, result) = oneshot::channel();
        self.events
            .send(LoopEvent::ChangeMembership { change, reply })
            .map_err(|_| status::stopped())?;
        match tokio::time::timeout(self.request_timeout(), result).await {
            Err(_) => Err(status::timed_out()),
            Ok(Err(_)) => Err(status::stopped()),
            Ok(Ok(Ok(Ok(_)))) => Ok(()),
            Ok(Ok(Ok(Err(error)))) => Err(status::from_etcd(&error)),
            Ok(Ok(Err(error))) => Err(status::from_propose(&error)),
        }
    }

    /// Asks the drive loop to hand leadership to `target` (etcd's
    /// MoveLeader); the caller watches the status for the outcome.
    pub fn transfer_leader(&self, target: NodeId) -> Result<(), Status> {
        self.events
            .send(LoopEvent::TransferLeader(target))
            .map_err(|_| status::stopped())
    }

    /// Runs `read` on the state machine off the runtime's workers: a scan
    /// (a large range, a full hash, the lease list) then cannot hold up
    /// the ticks, heartbeats and other requests the workers serve.
    pub async fn read_store<T: Send + 'static>(
        &self,
        read: impl FnOnce(&KvStore) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let kv = self.kv.load_full();
        tokio::task::spawn_blocking(move || read(&kv))
            .await
            .map_err(|error| Status::internal(format!("raftwood: a store read failed: {error}")))
    }

    /// Waits until a read started now may be served linearizably here.
    pub async fn linearizable_barrier(&self) -> Result<(), Status> {
        let deadline = self.request_timeout();
        let (reply, result) = oneshot::channel();
        self.events
            .send(LoopEvent::ReadIndex { reply })
            .map_err(|_| status::stopped())?;
        let index = match tokio::time::timeout(deadline, result).await {
            Err(_) => return Err(status::timed_out()),
            Ok(Err(_)) => return Err(status::stopped()),
            Ok(Ok(Err(error))) => return Err(status::from_read(&error)),
            Ok(Ok(Ok(index))) => index,
        };
        let mut applied = self.applied.clone();
        match tokio::time::timeout(deadline, applied.wait_for(|a| *a >= index)).await {
            Err(_) => Err(status::timed_out()),
            Ok(Err(_)) => Err(status::stopped()),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

#[cfg(test)]
mod propose_tests;
#[cfg(test)]
pub(crate) mod test_support;
