//! The member registry: who is in the cluster, as the replicated state
//! machine records it — every member's id, name, peer and client URLs and
//! whether it is a learner, and the ids of removed members, which may never
//! come back.
//!
//! It lives beside the keys (prefixes `m` and `x`, `docs/kv-format.md`) so
//! that a snapshot carries it: a member that joins learns the cluster from
//! the leader's snapshot, and every member restarts with the registry its
//! applied index implies. Raft's own configuration (who votes) moves in
//! step: a [`MemberChange`] rides in the context of the raft
//! configuration-change entry that makes the same change, so both are
//! applied at the same index.

use prost::Message as _;

use crate::apply::Applier;
use crate::cursor::Source;
use crate::encoding::{
    MEMBER_PREFIX, REMOVED_PREFIX, decode_member_key, decode_removed_key, member_key, removed_key,
};
use crate::error::{EtcdError, KvError, RequestError};
use crate::proto::etcdserverpb::Member;
use crate::proto::raftwoodpb::{MemberAttributes, MemberChange, MemberPeerUrls, member_change};

/// The registry as of one applied index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberRegistry {
    /// The members, by id.
    pub members: Vec<Member>,
    /// Ids of removed members, ascending.
    pub removed: Vec<u64>,
}

impl MemberRegistry {
    /// The member with `id`.
    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Whether `id` belonged to a member that was removed.
    pub fn was_removed(&self, id: u64) -> bool {
        self.removed.binary_search(&id).is_ok()
    }
}

/// Reads the whole registry at `source`.
pub fn read_registry(source: &Source<'_>) -> Result<MemberRegistry, KvError> {
    let mut registry = MemberRegistry::default();
    let mut cursor = source.cursor(vec![MEMBER_PREFIX], vec![MEMBER_PREFIX + 1])?;
    cursor.seek(&[MEMBER_PREFIX])?;
    while cursor.valid() {
        let id = decode_member_key(cursor.key())?;
        let member = Member::decode(cursor.value())
            .map_err(|e| KvError::Corruption(format!("member {id:x}: {e}")))?;
        if member.id != id {
            return Err(KvError::Corruption(format!(
                "member record under {id:x} names {:x}",
                member.id
            )));
        }
        registry.members.push(member);
        cursor.next()?;
    }
    let mut cursor = source.cursor(vec![REMOVED_PREFIX], vec![REMOVED_PREFIX + 1])?;
    cursor.seek(&[REMOVED_PREFIX])?;
    while cursor.valid() {
        registry.removed.push(decode_removed_key(cursor.key())?);
        cursor.next()?;
    }
    // Ids are the keys' big-endian suffixes, read in key order: unique and
    // ascending (`was_removed` searches `removed` by halves).
    debug_assert!(registry.members.windows(2).all(|w| w[0].id < w[1].id));
    debug_assert!(registry.removed.windows(2).all(|w| w[0] < w[1]));
    Ok(registry)
}

impl Applier<'_> {
    fn member(&self, id: u64) -> Result<Option<Member>, KvError> {
        match self.get_raw(&member_key(id))? {
            Some(raw) => Member::decode(raw.as_slice())
                .map(Some)
                .map_err(|e| KvError::Corruption(format!("member {id:x}: {e}"))),
            None => Ok(None),
        }
    }

    fn put_member(&mut self, member: &Member) {
        self.put_raw(member_key(member.id), member.encode_to_vec());
    }

    /// A member added, removed or promoted, as the raft configuration
    /// change carrying it. It mirrors what raft did, which the leader
    /// checked before proposing, so it is never refused: a change raft
    /// would skip (adding a member twice, removing an unknown one) changes
    /// nothing here either.
    pub fn member_change(&mut self, change: &MemberChange) -> Result<(), RequestError> {
        let Some(member) = &change.member else {
            return Ok(());
        };
        match member_change::Kind::try_from(change.kind) {
            Ok(member_change::Kind::Add) => {
                if self.member(member.id)?.is_none() {
                    self.put_member(member);
                }
            }
            Ok(member_change::Kind::Remove) => {
                if self.member(member.id)?.is_some() {
                    self.delete_raw(member_key(member.id));
                    self.put_raw(removed_key(member.id), Vec::new());
                }
            }
            Ok(member_change::Kind::Promote) => {
                if let Some(mut promoted) = self.member(member.id)? {
                    promoted.is_learner = false;
                    self.put_member(&promoted);
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// A started member's name and client URLs (etcd's publish). Ignored
    /// for a member no longer in the registry, as etcd ignores it.
    pub fn member_attributes(&mut self, attributes: &MemberAttributes) -> Result<(), RequestError> {
        if let Some(mut member) = self.member(attributes.id)? {
            member.name.clone_from(&attributes.name);
            member.client_ur_ls.clone_from(&attributes.client_ur_ls);
            self.put_member(&member);
        }
        Ok(())
    }

    /// MemberUpdate: new peer URLs for a member, refused for an unknown
    /// member or a URL another member has.
    pub fn member_peer_urls(&mut self, update: &MemberPeerUrls) -> Result<(), RequestError> {
        let Some(mut member) = self.member(update.id)? else {
            return Err(EtcdError::MemberNotFound.into());
        };
        let registry = read_registry(&self.mvcc().source)?;
        let taken = registry
            .members
            .iter()
            .filter(|other| other.id != update.id)
            .flat_map(|other| other.peer_ur_ls.iter())
            .any(|url| update.peer_ur_ls.contains(url));
        if taken {
            return Err(EtcdError::PeerUrlExists.into());
        }
        member.peer_ur_ls.clone_from(&update.peer_ur_ls);
        self.put_member(&member);
        Ok(())
    }
}
