//! The Cluster service: MemberList, and membership changes with etcd 3.4's
//! rules and error texts. The checks that need the member registry (names,
//! URLs, the learner count) are made here; the leader's drive loop makes
//! those that need raft's view (`driver/membership.rs`). Add, remove and
//! promote are raft configuration changes carrying the registry change;
//! only the leader proposes them, so a follower relays them to the
//! leader's client URL. MemberUpdate changes only the registry: an
//! ordinary proposal, forwarded inside raft like a write.

use raftwood_kv::EtcdError;
use raftwood_raft::{ConfChangeKind, NodeId};
use tonic::{Request, Response, Status};

use super::member::MemberHandle;
use super::member::relay::{self, Relay};
use super::member::status::{self, MembershipRefusal};
use crate::membership::{Member as MemberInfo, Membership, new_member_id};
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};
use crate::proto::raftwoodpb::{MemberPeerUrls, internal_request, member_change};
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
            .ok_or_else(status::no_leader)
    }

    /// Proposes `kind` of `member` with the registry change riding along.
    async fn change(
        &self,
        kind: ConfChangeKind,
        registry_change: member_change::Kind,
        member: Member,
    ) -> Result<(), Status> {
        let change = crate::membership::conf_change(kind, registry_change, member);
        self.member.change_membership(change).await
    }
}

fn refused(refusal: MembershipRefusal) -> Status {
    status::from_membership(&refusal)
}

fn member_not_found() -> Status {
    status::from_etcd(&EtcdError::MemberNotFound)
}

fn peer_urls_exist() -> Status {
    status::from_etcd(&EtcdError::PeerUrlExists)
}

/// Parses a request's peer URLs (at least one; each `http://host:port`).
fn parse_peer_urls(urls: &[String]) -> Result<Vec<PeerUrl>, Status> {
    if urls.is_empty() {
        return Err(refused(MembershipRefusal::InvalidUrls));
    }
    urls.iter()
        .map(|url| {
            url.parse::<PeerUrl>()
                .map_err(|_| refused(MembershipRefusal::InvalidUrls))
        })
        .collect()
}

/// Whether the voters other than `except`, once `extra` more are counted
/// (a voter being added, who has not started), keep a quorum of started
/// ones (that published their name): etcd's check before adding or
/// removing a voter. As etcd, a one-member cluster may always add a
/// voter: that is how a cluster restored from a backup grows again.
fn enough_started(membership: &Membership, except: Option<NodeId>, extra: usize) -> bool {
    let voters: Vec<&MemberInfo> = membership
        .members
        .values()
        .filter(|m| !m.is_learner && Some(m.id) != except)
        .collect();
    let started = voters.iter().filter(|m| !m.name.is_empty()).count();
    let growing_from_one = extra == 1 && started == 1 && voters.len() == 1;
    growing_from_one || started > (voters.len() + extra) / 2
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
                return Err(refused(MembershipRefusal::TooManyLearners));
            }
        } else if !enough_started(&membership, None, 1) {
            return Err(refused(MembershipRefusal::NotEnoughStarted));
        }
        let token = &self.member.config.initial_cluster_token;
        let id = new_member_id(&peer_urls, token, now_seconds(), |id| {
            membership.members.contains_key(&id) || membership.removed.contains(&id)
        });
        // A new member never takes the id of a member or a removed one.
        assert!(
            id != 0 && !membership.members.contains_key(&id) && !membership.removed.contains(&id),
            "member id {id:x} is taken"
        );
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
        self.change(kind, member_change::Kind::Add, added.clone())
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
        if !removed.is_learner && !enough_started(&membership, Some(inner.id), 0) {
            return Err(refused(MembershipRefusal::NotEnoughStarted));
        }
        let record = Member {
            id: inner.id,
            ..Member::default()
        };
        self.change(
            ConfChangeKind::RemoveNode,
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
            return Err(refused(MembershipRefusal::NotLearner));
        }
        let record = Member {
            id: inner.id,
            ..Member::default()
        };
        self.change(
            ConfChangeKind::AddVoter,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(members: &[(NodeId, &str, bool)]) -> Membership {
        Membership {
            cluster_id: 1,
            members: members
                .iter()
                .map(|(id, name, learner)| {
                    let member = MemberInfo {
                        id: *id,
                        name: (*name).into(),
                        peer_urls: Vec::new(),
                        client_urls: Vec::new(),
                        is_learner: *learner,
                    };
                    (*id, member)
                })
                .collect(),
            removed: Default::default(),
        }
    }

    #[test]
    fn a_voter_is_added_or_removed_only_with_a_quorum_of_started_voters() {
        // Three voters, one never started: adding a fourth needs 3 of 4
        // started; removing a started one leaves 1 of 2.
        let one_unstarted = membership(&[(1, "a", false), (2, "b", false), (3, "", false)]);
        assert!(!enough_started(&one_unstarted, None, 1));
        assert!(!enough_started(&one_unstarted, Some(1), 0));
        // Removing the unstarted one leaves 2 of 2.
        assert!(enough_started(&one_unstarted, Some(3), 0));
        // All started: add (3 of 4) and remove (2 of 2) pass; a learner,
        // started or not, is no voter.
        let all = membership(&[
            (1, "a", false),
            (2, "b", false),
            (3, "c", false),
            (4, "", true),
        ]);
        assert!(enough_started(&all, None, 1));
        assert!(enough_started(&all, Some(1), 0));
        // A single started voter removing itself would leave none; but it
        // may add a second (etcd's special case, though 1 of 2 is no
        // quorum), not while another voter never started.
        let alone = membership(&[(1, "a", false)]);
        assert!(!enough_started(&alone, Some(1), 0));
        assert!(enough_started(&alone, None, 1));
        let two_one_started = membership(&[(1, "a", false), (2, "", false)]);
        assert!(!enough_started(&two_one_started, None, 1));
    }
}
