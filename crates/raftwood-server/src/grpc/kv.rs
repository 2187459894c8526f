//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes become raft proposals on whichever member receives them: a
//! follower's drive loop forwards them to the leader inside raft and
//! answers when it applies them itself (`driver/waiters.rs`); linearizable
//! reads wait for a ReadIndex round and for the state machine to apply up
//! to its index, then read locally; serializable reads read locally at
//! once.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use raftwood_kv::ApplyResponse;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::status;
use crate::driver::LoopEvent;
use crate::node::NodeContext;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
    kv_server::Kv,
};
use crate::proto::raftwoodpb::{InternalRequest, internal_request};

/// How long a request may wait for raft before "request timed out"
/// (etcd: 5 s plus twice the election timeout).
fn request_timeout(context: &NodeContext) -> Duration {
    Duration::from_millis(context.config.request_timeout_ms())
}

/// The KV service of one member.
#[derive(Debug, Clone)]
pub struct KvService {
    context: NodeContext,
}

impl KvService {
    /// The service over `context`.
    pub fn new(context: NodeContext) -> KvService {
        KvService { context }
    }

    /// Proposes `request` with a fresh id and waits for its outcome, on
    /// the leader or a follower alike.
    pub(super) async fn propose(
        &self,
        request: internal_request::Request,
    ) -> Result<ApplyResponse, Status> {
        self.propose_with_id(request, self.context.request_ids.next())
            .await
    }

    /// Proposes `request` only if this member leads when the drive loop
    /// takes it ("no leader" otherwise): for proposals whose reason holds
    /// only on the leader, such as the revoke of a lease whose deadline
    /// the leader's clock says passed.
    pub(super) async fn propose_if_leader(
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
        if let Err(error) = self.context.kv.load().validate(&internal) {
            return Err(status::from_etcd(&error));
        }
        let encoded = Bytes::from(internal.encode_to_vec());
        if encoded.len() as u64 > self.context.config.max_request_bytes {
            return Err(Status::invalid_argument("etcdserver: request is too large"));
        }
        // etcd's backend quota: writes that add data are refused once the
        // store is over --quota-backend-bytes; deletes and compactions,
        // which free space, are still accepted.
        let adds_data = matches!(
            internal.request,
            Some(internal_request::Request::Put(_) | internal_request::Request::Txn(_))
        );
        let quota = self.context.config.effective_quota_backend_bytes();
        if adds_data && self.context.kv.load().db_size_bytes() + encoded.len() as u64 > quota {
            return Err(Status::resource_exhausted(
                "etcdserver: mvcc: database space exceeded",
            ));
        }
        let (reply, result) = oneshot::channel();
        self.context
            .events
            .send(LoopEvent::Propose {
                id: internal.id,
                request: encoded,
                reply,
            })
            .map_err(|_| status::stopped())?;
        // The drive loop answers a forwarded proposal before this deadline
        // (`ServerConfig::forward_timeout_ticks`); this one only guards
        // against a loop that stopped answering.
        let outcome = match tokio::time::timeout(request_timeout(&self.context), result).await {
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

    /// The first client URL of `member`, if known.
    pub(super) fn client_url_of(&self, member: u64) -> Option<String> {
        let membership = self.context.membership.read();
        let url = membership.members.get(&member)?.client_urls.first()?;
        Some(url.to_string())
    }

    /// Waits until a read started now may be served linearizably here.
    async fn linearizable_barrier(&self) -> Result<(), Status> {
        let deadline = request_timeout(&self.context);
        let (reply, result) = oneshot::channel();
        self.context
            .events
            .send(LoopEvent::ReadIndex { reply })
            .map_err(|_| status::stopped())?;
        let index = match tokio::time::timeout(deadline, result).await {
            Err(_) => return Err(status::timed_out()),
            Ok(Err(_)) => return Err(status::stopped()),
            Ok(Ok(Err(error))) => return Err(status::from_read(&error)),
            Ok(Ok(Ok(index))) => index,
        };
        let mut applied = self.context.applied.clone();
        match tokio::time::timeout(deadline, applied.wait_for(|a| *a >= index)).await {
            Err(_) => Err(status::timed_out()),
            Ok(Err(_)) => Err(status::stopped()),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// A response header from this member.
pub fn header(context: &NodeContext, revision: i64) -> ResponseHeader {
    ResponseHeader {
        cluster_id: context.cluster_id,
        member_id: context.member_id,
        revision,
        raft_term: context.status.borrow().term,
    }
}

/// Gives a state machine's response this member's header, keeping the
/// revision the state machine set.
pub(super) fn stamp(context: &NodeContext, response_header: &mut Option<ResponseHeader>) {
    let revision = response_header.as_ref().map_or(0, |h| h.revision);
    *response_header = Some(header(context, revision));
}

fn unexpected(kind: &str) -> Status {
    Status::internal(format!(
        "raftwood: a {kind} request came back as another kind"
    ))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        if !request.serializable {
            self.linearizable_barrier().await?;
        }
        let mut response = self
            .context
            .kv
            .load()
            .range(&request)
            .map_err(|e| status::from_request(&e))?;
        stamp(&self.context, &mut response.header);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = internal_request::Request::Put(request.into_inner());
        match self.propose(request).await? {
            ApplyResponse::Put(mut response) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let request = internal_request::Request::DeleteRange(request.into_inner());
        match self.propose(request).await? {
            ApplyResponse::DeleteRange(mut response) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let request = internal_request::Request::Txn(request.into_inner());
        match self.propose(request).await? {
            ApplyResponse::Txn(mut response) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let request = internal_request::Request::Compaction(request.into_inner());
        match self.propose(request).await? {
            ApplyResponse::Compaction(mut response) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("compaction")),
        }
    }
}

#[cfg(test)]
pub(super) mod propose_tests;
