//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes become raft proposals (forwarded to the leader when this member
//! does not lead); linearizable reads wait for a ReadIndex round and for
//! the state machine to apply up to its index, then read locally;
//! serializable reads read locally at once.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use raftwood_kv::ApplyResponse;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::forward::{self, Forwarder};
use super::status;
use crate::driver::{LoopEvent, ProposeError};
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
    Duration::from_millis(5_000 + 2 * context.config.election_timeout_ms)
}

/// Where a write went.
pub(super) enum Proposed {
    /// Applied here.
    Applied(ApplyResponse),
    /// Another member leads: forward the request (given back, so the
    /// caller need not keep a copy of every write) to its client URL.
    Forward(String, internal_request::Request),
}

/// The KV service of one member.
#[derive(Debug, Clone)]
pub struct KvService {
    context: NodeContext,
    forwarder: Forwarder,
}

impl KvService {
    /// The service over `context`.
    pub fn new(context: NodeContext, forwarder: Forwarder) -> KvService {
        KvService { context, forwarder }
    }

    /// Proposes `request` and waits for its outcome.
    pub(super) async fn propose(
        &self,
        request: internal_request::Request,
        forwarded: bool,
    ) -> Result<Proposed, Status> {
        let internal = InternalRequest {
            id: 0,
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
                request: encoded,
                reply,
            })
            .map_err(|_| status::stopped())?;
        let outcome = match tokio::time::timeout(request_timeout(&self.context), result).await {
            Err(_) => return Err(status::timed_out()),
            Ok(Err(_)) => return Err(status::stopped()),
            Ok(Ok(outcome)) => outcome,
        };
        match outcome {
            Ok(Ok(response)) => Ok(Proposed::Applied(response)),
            Ok(Err(error)) => Err(status::from_etcd(&error)),
            Err(ProposeError::NotLeader {
                leader: Some(leader),
            }) if !forwarded => match (self.client_url_of(leader), internal.request) {
                (Some(url), Some(request)) => Ok(Proposed::Forward(url, request)),
                _ => Err(status::no_leader()),
            },
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

    fn forward_client(
        &self,
        url: &str,
    ) -> Result<crate::proto::etcdserverpb::kv_client::KvClient<tonic::transport::Channel>, Status>
    {
        self.forwarder.client(url).ok_or_else(status::no_leader)
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
        let forwarded = forward::is_forwarded(&request);
        let inner = request.into_inner();
        match self
            .propose(internal_request::Request::Put(inner), forwarded)
            .await?
        {
            Proposed::Applied(ApplyResponse::Put(mut response)) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            Proposed::Applied(_) => Err(unexpected("put")),
            Proposed::Forward(url, internal_request::Request::Put(inner)) => {
                self.forward_client(&url)?.put(forward::mark(inner)).await
            }
            Proposed::Forward(..) => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let forwarded = forward::is_forwarded(&request);
        let inner = request.into_inner();
        match self
            .propose(internal_request::Request::DeleteRange(inner), forwarded)
            .await?
        {
            Proposed::Applied(ApplyResponse::DeleteRange(mut response)) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            Proposed::Applied(_) => Err(unexpected("delete")),
            Proposed::Forward(url, internal_request::Request::DeleteRange(inner)) => {
                self.forward_client(&url)?
                    .delete_range(forward::mark(inner))
                    .await
            }
            Proposed::Forward(..) => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let forwarded = forward::is_forwarded(&request);
        let inner = request.into_inner();
        match self
            .propose(internal_request::Request::Txn(inner), forwarded)
            .await?
        {
            Proposed::Applied(ApplyResponse::Txn(mut response)) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            Proposed::Applied(_) => Err(unexpected("txn")),
            Proposed::Forward(url, internal_request::Request::Txn(inner)) => {
                self.forward_client(&url)?.txn(forward::mark(inner)).await
            }
            Proposed::Forward(..) => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let forwarded = forward::is_forwarded(&request);
        let inner = request.into_inner();
        match self
            .propose(internal_request::Request::Compaction(inner), forwarded)
            .await?
        {
            Proposed::Applied(ApplyResponse::Compaction(mut response)) => {
                stamp(&self.context, &mut response.header);
                Ok(Response::new(response))
            }
            Proposed::Applied(_) => Err(unexpected("compaction")),
            Proposed::Forward(url, internal_request::Request::Compaction(inner)) => {
                self.forward_client(&url)?
                    .compact(forward::mark(inner))
                    .await
            }
            Proposed::Forward(..) => Err(unexpected("compaction")),
        }
    }
}

#[cfg(test)]
mod forward_tests;
