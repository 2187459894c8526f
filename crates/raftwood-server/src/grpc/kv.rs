//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes become raft proposals on whichever member receives them: a
//! follower's drive loop forwards them to the leader inside raft and
//! answers when it applies them itself (`driver/waiters.rs`); linearizable
//! reads wait for a ReadIndex round and for the state machine to apply up
//! to its index, then read locally; serializable reads read locally at
//! once.

use raftwood_kv::ApplyResponse;
use tonic::{Request, Response, Status};

use super::member::{MemberHandle, status};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse, kv_server::Kv,
};
use crate::proto::raftwoodpb::internal_request;

/// The KV service of one member.
#[derive(Debug, Clone)]
pub struct KvService {
    member: MemberHandle,
}

impl KvService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> KvService {
        KvService { member }
    }
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
            // The gate lets a learner's Range through for this check.
            if self.member.is_learner() {
                return Err(status::not_supported_for_learner());
            }
            self.member.linearizable_barrier().await?;
        }
        let mut response = self
            .member
            .read_store(move |kv| kv.range(&request))
            .await?
            .map_err(|e| status::from_request(&e))?;
        self.member.stamp(&mut response.header);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = internal_request::Request::Put(request.into_inner());
        match self.member.propose(request).await? {
            ApplyResponse::Put(mut response) => {
                self.member.stamp(&mut response.header);
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
        match self.member.propose(request).await? {
            ApplyResponse::DeleteRange(mut response) => {
                self.member.stamp(&mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let request = internal_request::Request::Txn(request.into_inner());
        match self.member.propose(request).await? {
            ApplyResponse::Txn(mut response) => {
                self.member.stamp(&mut response.header);
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
        match self.member.propose(request).await? {
            ApplyResponse::Compaction(mut response) => {
                self.member.stamp(&mut response.header);
                Ok(Response::new(response))
            }
            _ => Err(unexpected("compaction")),
        }
    }
}
