//! The member registry applied from the log: what MemberAdd, MemberRemove,
//! MemberPromote, publish and MemberUpdate leave in the store.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use prost::Message;
use raftwood_kv::proto::etcdserverpb::Member;
use raftwood_kv::proto::raftwoodpb::{
    InternalRequest, MemberAttributes, MemberChange, MemberPeerUrls, internal_request,
    member_change,
};
use raftwood_kv::{ApplyResponse, CommittedEntry, EtcdError, KvOptions, KvStore};

fn member(id: u64, url: &str, learner: bool) -> Member {
    Member {
        id,
        name: String::new(),
        peer_ur_ls: vec![url.to_owned()],
        client_ur_ls: Vec::new(),
        is_learner: learner,
    }
}

fn apply(
    store: &KvStore,
    index: u64,
    request: internal_request::Request,
) -> Result<ApplyResponse, EtcdError> {
    let payload = InternalRequest {
        id: 0,
        request: Some(request),
    }
    .encode_to_vec();
    let mut outcomes = store
        .apply(&[CommittedEntry {
            index,
            request: Some(&payload),
        }])
        .unwrap();
    outcomes.remove(0)
}

fn change(kind: member_change::Kind, member: Member) -> internal_request::Request {
    internal_request::Request::MemberChange(MemberChange {
        kind: kind as i32,
        member: Some(member),
    })
}

#[test]
fn the_registry_follows_adds_promotes_removes_and_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), KvOptions::default()).unwrap();
    store
        .bootstrap_members(
            &[
                member(1, "http://a:1", false),
                member(2, "http://b:1", false),
            ],
            1,
        )
        .unwrap();
    assert_eq!(
        store.applied_index(),
        1,
        "the bootstrap state is the snapshot point's"
    );
    // A second bootstrap (a restart) leaves the registry alone.
    store
        .bootstrap_members(&[member(9, "http://z:1", false)], 0)
        .unwrap();
    assert_eq!(store.members().unwrap().members.len(), 2);
    let revision = store.current_revision();

    let added = member(3, "http://c:1", true);
    assert_eq!(
        apply(&store, 2, change(member_change::Kind::Add, added.clone())),
        Ok(ApplyResponse::Membership)
    );
    assert_eq!(store.members().unwrap().get(3), Some(&added));
    let publish = internal_request::Request::MemberAttributes(MemberAttributes {
        id: 3,
        name: "c".into(),
        client_ur_ls: vec!["http://c:2".into()],
    });
    apply(&store, 3, publish).unwrap();
    apply(
        &store,
        4,
        change(member_change::Kind::Promote, member(3, "", false)),
    )
    .unwrap();
    let c = store.members().unwrap().get(3).cloned().unwrap();
    assert_eq!((c.name.as_str(), c.is_learner), ("c", false));
    assert_eq!(c.client_ur_ls, vec!["http://c:2".to_owned()]);

    // MemberUpdate refuses another member's URL and an unknown member.
    let update = |id: u64, url: &str| {
        internal_request::Request::MemberPeerUrls(MemberPeerUrls {
            id,
            peer_ur_ls: vec![url.to_owned()],
        })
    };
    assert_eq!(
        apply(&store, 5, update(3, "http://a:1")),
        Err(EtcdError::PeerUrlExists)
    );
    assert_eq!(
        apply(&store, 6, update(7, "http://q:1")),
        Err(EtcdError::MemberNotFound)
    );
    apply(&store, 7, update(3, "http://c:9")).unwrap();
    assert_eq!(
        store.members().unwrap().get(3).unwrap().peer_ur_ls,
        vec!["http://c:9".to_owned()]
    );

    apply(
        &store,
        8,
        change(member_change::Kind::Remove, member(1, "", false)),
    )
    .unwrap();
    let registry = store.members().unwrap();
    assert!(registry.get(1).is_none());
    assert!(registry.was_removed(1));
    assert_eq!(
        registry.members.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![2, 3]
    );
    // A removed member's publish changes nothing (as etcd ignores it).
    let late = internal_request::Request::MemberAttributes(MemberAttributes {
        id: 1,
        name: "a".into(),
        client_ur_ls: Vec::new(),
    });
    apply(&store, 9, late).unwrap();
    assert!(store.members().unwrap().get(1).is_none());
    // Membership is outside the keyspace's history: no revision moved.
    assert_eq!(store.current_revision(), revision);

    // The registry is durable with the applied index.
    store.flush().unwrap();
    drop(store);
    let reopened = KvStore::open(dir.path(), KvOptions::default()).unwrap();
    assert_eq!(reopened.members().unwrap(), registry);
    assert_eq!(reopened.applied_index(), 9);
}
