//! Who is in the cluster: member ids, names and addresses.
//!
//! Ids are derived, as etcd derives them, from what identifies a member
//! (its peer URLs and the cluster token), so every member computes the same
//! ids from the same `--initial-cluster` without talking to anyone.

use std::collections::BTreeMap;

use raftwood_raft::NodeId;

use crate::config::InitialMember;
use crate::url::PeerUrl;

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
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, by id.
    pub members: BTreeMap<NodeId, Member>,
}

impl Membership {
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
        Membership {
            cluster_id: cluster_id(&ids, token),
            members,
        }
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
