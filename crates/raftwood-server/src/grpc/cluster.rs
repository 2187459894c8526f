//! The Cluster service: MemberList. Adding, removing, updating and
//! promoting members answer Unimplemented until membership changes reach
//! the server.

use tonic::{Request, Response, Status};

use super::member::MemberHandle;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};

/// The Cluster service of one member.
#[derive(Debug, Clone)]
pub struct ClusterService {
    member: MemberHandle,
}

impl ClusterService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> ClusterService {
        ClusterService { member }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("raftwood: {what} is not implemented yet"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("member add"))
    }

    async fn member_remove(
        &self,
        _request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("member remove"))
    }

    async fn member_update(
        &self,
        _request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("member update"))
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .member
            .membership
            .read()
            .members
            .values()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.iter().map(ToString::to_string).collect(),
                client_ur_ls: m.client_urls.iter().map(ToString::to_string).collect(),
                is_learner: m.is_learner,
            })
            .collect();
        Ok(Response::new(MemberListResponse {
            header: Some(self.member.header_now()),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("member promote"))
    }
}
