//! The Maintenance service: Status, HashKV, MoveLeader and Alarm (no
//! alarms are raised yet). Defragment and Snapshot answer Unimplemented.

use std::pin::Pin;

use tonic::{Request, Response, Status};

use super::kv::header;
use crate::driver::LoopEvent;
use crate::node::NodeContext;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
    maintenance_server::Maintenance,
};

/// The version reported by Status: the etcd API level this server speaks,
/// tagged with raftwood's own version (semver-valid, so clients that parse
/// it see 3.4).
pub const REPORTED_VERSION: &str = concat!("3.4.0-raftwood.", env!("CARGO_PKG_VERSION"));

/// The Maintenance service of one member.
#[derive(Debug, Clone)]
pub struct MaintenanceService {
    context: NodeContext,
}

impl MaintenanceService {
    /// The service over `context`.
    pub fn new(context: NodeContext) -> MaintenanceService {
        MaintenanceService { context }
    }
}

type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(AlarmResponse {
            header: Some(header(
                &self.context,
                self.context.kv.load().current_revision(),
            )),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = *self.context.status.borrow();
        let applied = *self.context.applied.borrow();
        let db_size = i64::try_from(self.context.kv.load().db_size_bytes()).unwrap_or(i64::MAX);
        Ok(Response::new(StatusResponse {
            header: Some(header(
                &self.context,
                self.context.kv.load().current_revision(),
            )),
            version: REPORTED_VERSION.to_string(),
            db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.commit,
            raft_term: status.term,
            raft_applied_index: applied,
            errors: if status.failed {
                vec!["raftwood: storage failure, member stopped".to_string()]
            } else {
                Vec::new()
            },
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented(
            "raftwood: defragment is not implemented yet",
        ))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented(
            "raftwood: hash is not implemented; use HashKV",
        ))
    }

    async fn hash_kv(
        &self,
        _request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let kv = self.context.kv.load();
        Ok(Response::new(HashKvResponse {
            header: Some(header(&self.context, kv.current_revision())),
            hash: kv
                .state_digest()
                .map_err(|e| Status::internal(format!("raftwood: hashing the store: {e}")))?,
            compact_revision: kv.compacted_revision(),
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented(
            "raftwood: snapshot download is not implemented yet",
        ))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        let status = *self.context.status.borrow();
        if !status.is_leader {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        if !self.context.membership.read().members.contains_key(&target) {
            return Err(Status::not_found("etcdserver: bad leader transferee"));
        }
        self.context
            .events
            .send(LoopEvent::TransferLeader(target))
            .map_err(|_| super::status::stopped())?;
        let mut watch = self.context.status.clone();
        let moved = tokio::time::timeout(
            std::time::Duration::from_millis(5 * self.context.config.election_timeout_ms),
            watch.wait_for(|s| s.leader == Some(target)),
        )
        .await;
        match moved {
            Ok(Ok(_)) => Ok(Response::new(MoveLeaderResponse {
                header: Some(header(
                    &self.context,
                    self.context.kv.load().current_revision(),
                )),
            })),
            _ => Err(Status::unavailable(
                "etcdserver: request timed out, leader transfer took too long",
            )),
        }
    }
}
