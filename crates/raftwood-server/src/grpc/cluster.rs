//! The Cluster service: MemberList, and membership changes with etcd 3.4's
//! rules and error texts. The checks that need the member registry (names,
//! URLs, the learner count) are made here; the leader's drive loop makes
//! those that need raft's view (`driver/membership.rs`). Add, remove and
//! promote are raft configuration changes carrying the registry change;
//! only the leader proposes them, so a follower relays them to the
//! leader's client URL. MemberUpdate changes only the registry: an
//! ordinary proposal, forwarded inside raft like a write.

use raftwood_raft::{ConfChange, ConfChangeKind, NodeId};
use tonic::{Request, Response, Status};

use super::member::MemberHandle;
use super::member::relay::{self, Relay};
use crate::membership::{Membership, new_member_id};
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};
use crate::proto::raftwoodpb::{
    InternalRequest, MemberChange, MemberPeerUrls, internal_request, member_change,
};
use crate::url::PeerUrl;

/// The Cluster service of one member.
#[derive(Debug, Clone)]
pub struct ClusterService {
    member: MemberHandle,
    relay: Relay,
}

impl ClusterService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> ClusterService {
        let relay = Relay::new(member.request_timeout());
        ClusterService { member, relay }
    }

    fn membership(&self) -> std::sync::Arc<Membership> {
        self.member.membership.borrow().clone()
    }

    fn members_now(&self) -> Vec<Member> {
        self.membership().to_proto()
    }

    fn leads(&self) -> bool {
        self.member.status.borrow().is_leader
    }

    async fn leader_client(
        &self,
        relayed: bool,
    ) -> Result<
        crate::proto::etcdserverpb::cluster_client::ClusterClient<tonic::transport::Channel>,
        Status,
    > {
        let url = self.member.leader_client_url_soon(relayed).await?;
        self.relay
            .cluster_client(&url)
            .ok_or_else(super::member::status::no_leader)
    }

    /// Proposes `kind` of `id` with the registry `change` riding along.
    async fn change(
        &self,
        kind: ConfChangeKind,
        id: NodeId,
        change_kind: member_change::Kind,
        member: Member,
    ) -> Result<(), Status> {
        let context = InternalRequest {
            id: 0,
            request: Some(internal_request::Request::MemberChange(MemberChange {
                kind: change_kind as i32,
                member: Some(member),
            })),
        };
        let mut change = ConfChange::single(kind, id);
        change.context = prost::Message::encode_to_vec(&context).into();
        self.member.change_membership(change).await
    }
}

fn invalid_urls() -> Status {
    Status::invalid_argument("etcdserver: given member URLs are invalid")
}

fn member_not_found() -> Status {
    Status::not_found("etcdserver: member not found")
}

fn peer_urls_exist() -> Status {
    Status::failed_precondition("etcdserver: Peer URLs already exists")
}

fn not_enough_started() -> Status {
    Status::failed_precondition(
        "etcdserver: re-configuration failed due to not enough started members",
    )
}

/// Parses a request's peer URLs (at least one; each `http://host:port`).
fn parse_peer_urls(urls: &[String]) -> Result<Vec<PeerUrl>, Status> {
    if urls.is_empty() {
        return Err(invalid_urls());
    }
    urls.iter()
        .map(|url| url.parse::<PeerUrl>().map_err(|_| invalid_urls()))
        .collect()
}

/// Voters that have started (published their name), of `voters`.
fn started(membership: &Membership, voters: impl Iterator<Item = NodeId>) -> usize {
    voters
        .filter(|id| {
            membership
                .members
                .get(id)
                .is_some_and(|m| !m.name.is_empty())
        })
        .count()
}

fn voter_ids(membership: &Membership) -> impl Iterator<Item = NodeId> + '_ {
    membership
        .members
        .values()
        .filter(|m| !m.is_learner)
        .map(|m| m.id)
}

/// etcd's check before adding a voter: the started voters must be a
/// quorum of the cluster with the new one.
fn check_enough_started_to_add(membership: &Membership) -> Result<(), Status> {
    let voters = voter_ids(membership).count();
    // A quorum of voters + 1: (voters + 1) / 2 + 1.
    if started(membership, voter_ids(membership)) < voters.div_ceil(2) + 1 {
        return Err(not_enough_started());
    }
    Ok(())
}

/// etcd's check before removing voter `id`: the started voters left must
/// be a quorum of the voters left.
fn check_enough_started_to_remove(membership: &Membership, id: NodeId) -> Result<(), Status> {
    let remaining = voter_ids(membership).filter(|v| *v != id).count();
    if started(membership, voter_ids(membership).filter(|v| *v != id)) < remaining / 2 + 1 {
        return Err(not_enough_started());
    }
    Ok(())
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let relayed = relay::is_relayed(&request);
        let inner = request.into_inner();
        if !self.leads() {
            let mut leader = self.leader_client(relayed).await?;
            return leader.member_add(relay::mark(inner)).await;
        }
        let peer_urls = parse_peer_urls(&inner.peer_ur_ls)?;
        let membership = self.membership();
        if membership.with_peer_url(&peer_urls, None).is_some() {
            return Err(peer_urls_exist());
        }
        if inner.is_learner {
            if membership.learner_count() >= 1 {
                return Err(Status::failed_precondition(
                    "etcdserver: too many learner members in cluster",
                ));
            }
        } else {
            check_enough_started_to_add(&membership)?;
        }
        let token = &self.member.config.initial_cluster_token;
        let id = new_member_id(&peer_urls, token, now_seconds(), |id| {
            membership.members.contains_key(&id) || membership.removed.contains(&id)
        });
        let added = Member {
            id,
            name: String::new(),
            peer_ur_ls: peer_urls.iter().map(ToString::to_string).collect(),
            client_ur_ls: Vec::new(),
            is_learner: inner.is_learner,
        };
        let kind = if inner.is_learner {
            ConfChangeKind::AddLearner
        } else {
            ConfChangeKind::AddVoter
        };
        self.change(kind, id, member_change::Kind::Add, added.clone())
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.member.header_now()),
            member: Some(added),
            members: self.members_now(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let relayed = relay::is_relayed(&request);
        let inner = request.into_inner();
        if !self.leads() {
            let mut leader = self.leader_client(relayed).await?;
            return leader.member_remove(relay::mark(inner)).await;
        }
        let membership = self.membership();
        let Some(removed) = membership.members.get(&inner.id) else {
            return Err(member_not_found());
        };
        if !removed.is_learner {
            check_enough_started_to_remove(&membership, inner.id)?;
        }
        let record = Member {
            id: inner.id,
            ..Member::default()
        };
        self.change(
            ConfChangeKind::RemoveNode,
            inner.id,
            member_change::Kind::Remove,
            record,
        )
        .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.member.header_now()),
            members: self.members_now(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let inner = request.into_inner();
        let peer_urls = parse_peer_urls(&inner.peer_ur_ls)?;
        let membership = self.membership();
        if !membership.members.contains_key(&inner.id) {
            return Err(member_not_found());
        }
        if membership
            .with_peer_url(&peer_urls, Some(inner.id))
            .is_some()
        {
            return Err(peer_urls_exist());
        }
        let update = internal_request::Request::MemberPeerUrls(MemberPeerUrls {
            id: inner.id,
            peer_ur_ls: peer_urls.iter().map(ToString::to_string).collect(),
        });
        self.member.propose(update).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.member.header_now()),
            members: self.members_now(),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: Some(self.member.header_now()),
            members: self.members_now(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let relayed = relay::is_relayed(&request);
        let inner = request.into_inner();
        if !self.leads() {
            let mut leader = self.leader_client(relayed).await?;
            return leader.member_promote(relay::mark(inner)).await;
        }
        let membership = self.membership();
        let Some(learner) = membership.members.get(&inner.id) else {
            return Err(member_not_found());
        };
        if !learner.is_learner {
            return Err(Status::failed_precondition(
                "etcdserver: can only promote a learner member",
            ));
        }
        let record = Member {
            id: inner.id,
            ..Member::default()
        };
        self.change(
            ConfChangeKind::AddVoter,
            inner.id,
            member_change::Kind::Promote,
            record,
        )
        .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.member.header_now()),
            members: self.members_now(),
        }))
    }
}
