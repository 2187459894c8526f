//! Who is in the cluster: member ids, names and addresses.
//!
//! The initial members' ids are derived, as etcd derives them, from what
//! identifies a member (its peer URLs and the cluster token), so every
//! member computes the same ids from the same `--initial-cluster` without
//! talking to anyone. A member added later gets an id mixed with the time
//! of the MemberAdd (`new_member_id`), so a machine replaced at the same
//! address is a new member, not the removed one back.
//!
//! After bootstrap the membership is what the state machine's registry
//! says (`raftwood_kv::members`): the apply thread publishes it after
//! every change, as a [`MembershipWatch`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raftwood_kv::members::MemberRegistry;
use raftwood_kv::proto::etcdserverpb;
use raftwood_kv::proto::raftwoodpb::{
    InternalRequest, MemberChange, internal_request, member_change,
};
use raftwood_raft::{ConfChange, ConfChangeKind, NodeId};

use crate::config::InitialMember;
use crate::url::PeerUrl;

/// The membership as last applied, published by the apply thread.
pub type MembershipWatch = tokio::sync::watch::Receiver<Arc<Membership>>;

/// The raft configuration change that adds, promotes or removes `member`
/// (`kind`), carrying the registry change (`registry_change`) in its
/// context, so that every member's state machine records it at the index
/// where raft applies the change. What MemberAdd, MemberPromote and
/// MemberRemove propose (and the simulator's membership churn).
pub fn conf_change(
    kind: ConfChangeKind,
    registry_change: member_change::Kind,
    member: etcdserverpb::Member,
) -> ConfChange {
    let id = member.id;
    assert_ne!(id, 0, "raft reserves member id 0 for nobody");
    let context = InternalRequest {
        id: 0,
        request: Some(internal_request::Request::MemberChange(MemberChange {
            kind: registry_change as i32,
            member: Some(member),
        })),
    };
    let mut change = ConfChange::single(kind, id);
    change.context = prost::Message::encode_to_vec(&context).into();
    change
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (unlike
/// `DefaultHasher`), which ids written to disk require.
fn fnv1a_64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so that ("ab","c") and ("a","bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The id of a member with these peer URLs in the cluster named by `token`.
/// Never 0 (raft reserves 0 for "nobody").
pub fn member_id(peer_urls: &[PeerUrl], token: &str) -> NodeId {
    let mut urls: Vec<String> = peer_urls.iter().map(ToString::to_string).collect();
    urls.sort();
    let joined = urls.join(",");
    let id = fnv1a_64(&[joined.as_bytes(), token.as_bytes()]);
    if id == 0 { 1 } else { id }
}

/// The id of a member added at `now_seconds` (since the Unix epoch) with
/// these peer URLs: as etcd, the time is mixed in, so that a machine that
/// replaces a removed member at the same address gets a new id. Skips any
/// id `taken` says is (or was) in use.
pub fn new_member_id(
    peer_urls: &[PeerUrl],
    token: &str,
    now_seconds: u64,
    taken: impl Fn(NodeId) -> bool,
) -> NodeId {
    let mut urls: Vec<String> = peer_urls.iter().map(ToString::to_string).collect();
    urls.sort();
    let joined = urls.join(",");
    let mut salt = now_seconds;
    loop {
        let id = fnv1a_64(&[joined.as_bytes(), token.as_bytes(), &salt.to_be_bytes()]);
        if id != 0 && !taken(id) {
            return id;
        }
        salt = salt.wrapping_add(1);
    }
}

/// The cluster id: a hash of the sorted member ids and the token.
pub fn cluster_id(member_ids: &[NodeId], token: &str) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    fnv1a_64(&[&bytes, token.as_bytes()])
}

/// What the cluster knows about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft node id.
    pub id: NodeId,
    /// `--name`; empty for a member added but not started yet.
    pub name: String,
    /// Where peers reach it.
    pub peer_urls: Vec<PeerUrl>,
    /// Where clients reach it (learned when it starts).
    pub client_urls: Vec<PeerUrl>,
    /// A non-voting member.
    pub is_learner: bool,
}

/// The members, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, by id.
    pub members: BTreeMap<NodeId, Member>,
    /// Ids of members that were removed: they may never come back.
    pub removed: BTreeSet<NodeId>,
}

impl Member {
    /// The member as etcd's API shows it.
    pub fn to_proto(&self) -> etcdserverpb::Member {
        etcdserverpb::Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.iter().map(ToString::to_string).collect(),
            client_ur_ls: self.client_urls.iter().map(ToString::to_string).collect(),
            is_learner: self.is_learner,
        }
    }

    /// The member a registry record describes; URLs that do not parse
    /// (none can: they were checked before proposing) are left out.
    pub fn from_proto(member: &etcdserverpb::Member) -> Member {
        let parse = |urls: &[String]| -> Vec<PeerUrl> {
            urls.iter()
                .filter_map(|url| match url.parse() {
                    Ok(url) => Some(url),
                    Err(error) => {
                        tracing::warn!(url = %url, %error, "a member's URL does not parse; left out");
                        None
                    }
                })
                .collect()
        };
        Member {
            id: member.id,
            name: member.name.clone(),
            peer_urls: parse(&member.peer_ur_ls),
            client_urls: parse(&member.client_ur_ls),
            is_learner: member.is_learner,
        }
    }
}

impl Membership {
    /// Each member filed under its own id, never 0 (raft's "nobody"), and
    /// never also among the removed ids.
    pub fn check_invariants(&self) {
        for (id, member) in &self.members {
            assert_eq!(*id, member.id, "a member is filed under its own id");
            assert_ne!(*id, 0, "member id 0");
            assert!(!self.removed.contains(id), "member {id:x} is also removed");
        }
    }

    /// The membership `--initial-cluster` describes.
    pub fn from_initial_cluster(initial: &[InitialMember], token: &str) -> Membership {
        let members: BTreeMap<NodeId, Member> = initial
            .iter()
            .map(|m| {
                let id = member_id(&m.peer_urls, token);
                (
                    id,
                    Member {
                        id,
                        name: m.name.clone(),
                        peer_urls: m.peer_urls.clone(),
                        client_urls: Vec::new(),
                        is_learner: false,
                    },
                )
            })
            .collect();
        let ids: Vec<NodeId> = members.keys().copied().collect();
        let membership = Membership {
            cluster_id: cluster_id(&ids, token),
            members,
            removed: BTreeSet::new(),
        };
        membership.check_invariants();
        membership
    }

    /// The membership the state machine's registry records.
    pub fn from_registry(cluster_id: u64, registry: &MemberRegistry) -> Membership {
        Membership {
            cluster_id,
            members: registry
                .members
                .iter()
                .map(|m| (m.id, Member::from_proto(m)))
                .collect(),
            removed: registry.removed.iter().copied().collect(),
        }
    }

    /// The members as registry records.
    pub fn to_proto(&self) -> Vec<etcdserverpb::Member> {
        self.members.values().map(Member::to_proto).collect()
    }

    /// The member that has one of `peer_urls`, other than `except`.
    pub fn with_peer_url(&self, peer_urls: &[PeerUrl], except: Option<NodeId>) -> Option<NodeId> {
        self.members
            .values()
            .filter(|m| Some(m.id) != except)
            .find(|m| m.peer_urls.iter().any(|url| peer_urls.contains(url)))
            .map(|m| m.id)
    }

    /// How many members are learners.
    pub fn learner_count(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }

    /// The id of the member named `name`.
    pub fn id_of(&self, name: &str) -> Option<NodeId> {
        self.members.values().find(|m| m.name == name).map(|m| m.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_initial_cluster;

    #[test]
    fn an_added_member_gets_a_new_id_at_the_same_address_and_never_a_taken_one() {
        let urls = [PeerUrl::localhost(2380)];
        let first = new_member_id(&urls, "t", 1_000, |_| false);
        // The same machine added again later (after its removal): a new id.
        assert_ne!(new_member_id(&urls, "t", 1_001, |_| false), first);
        // Within the same second, an id in use or removed is skipped.
        let next = new_member_id(&urls, "t", 1_000, |id| id == first);
        assert_ne!(next, first);
        assert_ne!(next, 0);
        assert_ne!(first, member_id(&urls, "t"), "not the initial members' id");
    }

    #[test]
    fn ids_are_stable_distinct_and_depend_on_the_token() {
        let cluster = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2").unwrap();
        let one = Membership::from_initial_cluster(&cluster, "t");
        let again = Membership::from_initial_cluster(&cluster, "t");
        let other = Membership::from_initial_cluster(&cluster, "u");
        assert_eq!(one.cluster_id, again.cluster_id);
        assert_ne!(one.cluster_id, other.cluster_id);
        let a = one.id_of("a").unwrap();
        let b = one.id_of("b").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, 0);
        // Pinned: ids are written to disk and must not change between
        // versions (value computed independently of this code).
        assert_eq!(
            member_id(&[PeerUrl::localhost(2380)], "etcd-cluster"),
            0x5766f915e00dabc
        );
    }
}
