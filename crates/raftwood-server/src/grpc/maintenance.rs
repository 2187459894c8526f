//! The Maintenance service: Status, Defragment, Hash, HashKV, MoveLeader
//! and Alarm (no alarms are raised yet). Snapshot answers Unimplemented.

use std::pin::Pin;

use tonic::{Request, Response, Status};

use super::member::{MemberHandle, status};
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
    member: MemberHandle,
}

impl MaintenanceService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> MaintenanceService {
        MaintenanceService { member }
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
            header: Some(self.member.header_now()),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = *self.member.status.borrow();
        let applied = *self.member.applied.borrow();
        let db_size = i64::try_from(self.member.kv.load().db_size_bytes()).unwrap_or(i64::MAX);
        Ok(Response::new(StatusResponse {
            header: Some(self.member.header_now()),
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
            is_learner: self.member.is_learner(),
        }))
    }

    /// etcd's defragment: a full compaction of this member's engine
    /// (`KvStore::defragment`), off the runtime's workers and without
    /// stopping reads or writes, unlike etcd's, which blocks both for its
    /// duration.
    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let started = std::time::Instant::now();
        let before = self.member.kv.load().db_size_bytes();
        self.member
            .read_store(|kv| kv.defragment())
            .await?
            .map_err(|e| Status::internal(format!("raftwood: defragment failed: {e}")))?;
        let after = self.member.kv.load().db_size_bytes();
        tracing::info!(
            before_bytes = before,
            after_bytes = after,
            took_ms = started.elapsed().as_millis() as u64,
            "defragmented"
        );
        Ok(Response::new(DefragmentResponse {
            header: Some(self.member.header_now()),
        }))
    }

    /// A hash of the whole replicated state (every key space of the
    /// state machine, leases and members included): for tests, as etcd's.
    /// Not comparable with etcd's (the stores differ); HashKV is.
    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (digest, current) = self
            .member
            .read_store(|kv| (kv.state_digest(), kv.current_revision()))
            .await?;
        Ok(Response::new(HashResponse {
            header: Some(self.member.header(current)),
            hash: digest
                .map_err(|e| Status::internal(format!("raftwood: hashing the store: {e}")))?,
        }))
    }

    /// etcd's HashKV, computed as etcd computes it (`raftwood_kv` `hash.rs`).
    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let revision = request.into_inner().revision;
        let answer = self
            .member
            .read_store(move |kv| kv.hash_kv(revision))
            .await?
            .map_err(|e| status::from_request(&e))?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.member.header(answer.current_revision)),
            hash: answer.hash,
            compact_revision: answer.compacted_revision,
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
        let status = *self.member.status.borrow();
        if !status.is_leader {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        if !self
            .member
            .membership
            .borrow()
            .members
            .contains_key(&target)
        {
            return Err(Status::not_found("etcdserver: bad leader transferee"));
        }
        self.member.transfer_leader(target)?;
        let mut watch = self.member.status.clone();
        let moved = tokio::time::timeout(
            std::time::Duration::from_millis(5 * self.member.config.election_timeout_ms),
            watch.wait_for(|s| s.leader == Some(target)),
        )
        .await;
        match moved {
            Ok(Ok(_)) => Ok(Response::new(MoveLeaderResponse {
                header: Some(self.member.header_now()),
            })),
            _ => Err(Status::unavailable(
                "etcdserver: request timed out, leader transfer took too long",
            )),
        }
    }
}
