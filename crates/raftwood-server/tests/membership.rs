//! Membership changes on a real cluster (three members in one process,
//! over etcd's gRPC API): a learner added, started with
//! `--initial-cluster-state existing`, caught up by snapshot and promoted;
//! the leader removed while it leads, through a follower; the joined member
//! restarted; and etcd's refusals with its texts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use raftwood_server::config::{InitialClusterState, InitialMember};
use raftwood_server::proto::etcdserverpb::cluster_client::ClusterClient;
use raftwood_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use raftwood_server::proto::etcdserverpb::{
    HashKvRequest, Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, RangeRequest,
};
use raftwood_server::url::PeerUrl;
use raftwood_server::{RunningNode, ServerConfig};
use support::{channel, free_ports, get, kv_client, layout, leader_of, put_eventually, start_all};
use tonic::Code;
use tonic::transport::Channel;

fn cluster_client(port: u16) -> ClusterClient<Channel> {
    ClusterClient::new(channel(port))
}

/// etcd 3.4 on a learner: Status and serializable Range answered,
/// everything else "etcdserver: rpc not supported for learner".
async fn learner_serves_only_status_and_serializable_reads(port: u16) {
    use raftwood_server::proto::etcdserverpb::{PutRequest, StatusRequest};

    let refused = |status: tonic::Status| {
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.message(),
            "etcdserver: rpc not supported for learner"
        );
    };
    let mut kv = kv_client(port).await;
    let serializable = RangeRequest {
        key: b"before/19".to_vec(),
        serializable: true,
        ..Default::default()
    };
    let read = kv.range(serializable.clone()).await.unwrap().into_inner();
    assert_eq!(read.kvs.len(), 1, "a serializable read is served");
    let linearizable = RangeRequest {
        serializable: false,
        ..serializable
    };
    refused(kv.range(linearizable).await.unwrap_err());
    let put = PutRequest {
        key: b"on-learner".to_vec(),
        ..Default::default()
    };
    refused(kv.put(put).await.unwrap_err());
    refused(
        cluster_client(port)
            .member_list(MemberListRequest::default())
            .await
            .unwrap_err(),
    );
    let mut maintenance = MaintenanceClient::new(channel(port));
    let status = maintenance.status(StatusRequest::default()).await.unwrap();
    assert!(status.into_inner().is_learner);
    refused(
        maintenance
            .hash_kv(HashKvRequest::default())
            .await
            .unwrap_err(),
    );
}

/// Waits until the members at `ports` report the same HashKV at the same
/// revision: they hold the same state.
async fn wait_for_equal_hashes(ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut hashes = Vec::new();
        for port in ports {
            let answer = MaintenanceClient::new(channel(*port))
                .hash_kv(HashKvRequest { revision: 0 })
                .await
                .unwrap()
                .into_inner();
            hashes.push((answer.hash, answer.header.unwrap().revision));
        }
        if hashes.iter().all(|h| *h == hashes[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "{hashes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn members(port: u16) -> Vec<Member> {
    cluster_client(port)
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members
}

/// Waits until `check` holds for the member list at `port`.
async fn wait_for_members(port: u16, what: &str, check: impl Fn(&[Member]) -> bool) -> Vec<Member> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = members(port).await;
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, text: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), text);
        }
        Ok(answer) => panic!("accepted, expected {text:?}: {answer:?}"),
    }
}

/// Connects to `config`'s peer port as member `from` of `cluster_id` and
/// introduces itself with client URLs nobody serves.
async fn forge_hello(config: &ServerConfig, cluster_id: u64, from: u64) {
    use tokio::io::AsyncWriteExt;
    let hello = raftwood_server::transport::Hello {
        cluster_id,
        from,
        client_urls: vec!["http://127.0.0.1:1".into()],
        name: "forged".into(),
    };
    let mut stream = tokio::net::TcpStream::connect(config.listen_peer_urls[0].authority())
        .await
        .unwrap();
    stream.write_all(&hello.encode()).await.unwrap();
    stream.flush().await.unwrap();
    // Held open a moment, as a real peer's connection would be.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The settings of member `name` joining the cluster of `existing`.
fn joiner(existing: &[ServerConfig], name: &str, client: u16, peer: u16) -> ServerConfig {
    let mut config = ServerConfig::new(name, existing[0].data_dir.parent().unwrap().join(name));
    let url = PeerUrl::localhost(peer);
    config.listen_client_urls = vec![PeerUrl::localhost(client)];
    config.advertise_client_urls = vec![PeerUrl::localhost(client)];
    config.listen_peer_urls = vec![url.clone()];
    config.initial_advertise_peer_urls = vec![url.clone()];
    let mut cluster = existing[0].initial_cluster.clone();
    cluster.push(InitialMember {
        name: name.into(),
        peer_urls: vec![url],
    });
    config.initial_cluster = cluster;
    config.initial_cluster_state = InitialClusterState::Existing;
    config.heartbeat_interval_ms = existing[0].heartbeat_interval_ms;
    config.election_timeout_ms = existing[0].election_timeout_ms;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_and_the_leader_is_removed_through_a_follower() {
    let (_dir, client_ports, configs) = layout(|_| {});
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let mut kv = kv_client(client_ports[0]).await;
    for i in 0..20 {
        put_eventually(&mut kv, &format!("before/{i}"), "v").await;
    }
    // Every member published its name and client URL through raft.
    let listed = wait_for_members(client_ports[1], "names published", |list| {
        list.len() == 3
            && list
                .iter()
                .all(|m| !m.name.is_empty() && m.client_ur_ls.len() == 1)
    })
    .await;
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");

    // Hardening: a peer connection's hello used to overwrite the client
    // URLs members relay to. A forged hello, in another member's name, now
    // teaches nothing: client URLs come only from raft.
    let cluster_id = nodes[0].as_ref().unwrap().context.cluster_id;
    forge_hello(&configs[0], cluster_id, listed[1].id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        members(client_ports[0]).await,
        listed,
        "a hello changed the membership"
    );

    // etcd's refusals, before anything is added.
    let ports = free_ports(3);
    let (d_client, d_peer, spare_peer) = (ports[0], ports[1], ports[2]);
    let mut cluster = cluster_client(client_ports[2]);
    let taken = configs[0].initial_advertise_peer_urls[0].to_string();
    refused(
        cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![taken],
                is_learner: true,
            })
            .await,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    refused(
        cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec!["ftp://x".into()],
                is_learner: true,
            })
            .await,
        Code::InvalidArgument,
        "etcdserver: given member URLs are invalid",
    );
    refused(
        cluster
            .member_remove(MemberRemoveRequest { id: 0x1234 })
            .await,
        Code::NotFound,
        "etcdserver: member not found",
    );
    refused(
        cluster
            .member_promote(MemberPromoteRequest { id: listed[0].id })
            .await,
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    );

    // A learner added through a follower (relayed to the leader).
    let d_url = PeerUrl::localhost(d_peer).to_string();
    let added = cluster
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![d_url.clone()],
            is_learner: true,
        })
        .await
        .unwrap()
        .into_inner();
    let d = added.member.unwrap();
    assert!(
        d.is_learner && d.name.is_empty() && d.client_ur_ls.is_empty(),
        "{d:?}"
    );
    assert_eq!(added.members.len(), 4);
    assert!(added.members.contains(&d));
    refused(
        cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![PeerUrl::localhost(spare_peer).to_string()],
                is_learner: true,
            })
            .await,
        Code::FailedPrecondition,
        "etcdserver: too many learner members in cluster",
    );

    // It starts, learns the cluster from a peer, catches up by snapshot and
    // publishes its name.
    let d_config = joiner(&configs, "d", d_client, d_peer);
    let d_node = raftwood_server::start(d_config.clone()).await.unwrap();
    assert_eq!(d_node.context.member_id, d.id);
    wait_for_members(client_ports[0], "d started", |list| {
        list.iter()
            .any(|m| m.id == d.id && m.name == "d" && m.is_learner)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while d_node
        .context
        .kv
        .load()
        .range(&RangeRequest {
            key: b"before/19".to_vec(),
            ..Default::default()
        })
        .unwrap()
        .kvs
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the learner never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    learner_serves_only_status_and_serializable_reads(d_client).await;

    // Promoted once in sync.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match cluster
            .member_promote(MemberPromoteRequest { id: d.id })
            .await
        {
            Ok(_) => break,
            Err(status) => {
                assert!(
                    status.message().contains("in sync with leader")
                        || status.code() == Code::Unavailable,
                    "{status:?}"
                );
                assert!(Instant::now() < deadline, "never promoted: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    wait_for_members(client_ports[0], "d a voter", |list| {
        list.iter().any(|m| m.id == d.id && !m.is_learner)
    })
    .await;
    nodes.push(Some(d_node));

    // MemberUpdate: refused for another member's URL, then applied.
    refused(
        cluster
            .member_update(MemberUpdateRequest {
                id: d.id,
                peer_ur_ls: vec![configs[1].initial_advertise_peer_urls[0].to_string()],
            })
            .await,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );

    // The leader is removed, asked through a follower: it steps down and
    // stops; the rest elect a leader and keep every write.
    let leader = leader_of(&nodes).await;
    let leader_id = nodes[leader].as_ref().unwrap().context.member_id;
    let via = (0..3).find(|i| *i != leader).unwrap();
    cluster_client(client_ports[via])
        .member_remove(MemberRemoveRequest { id: leader_id })
        .await
        .unwrap();
    let mut removed = nodes[leader].take().unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(20), removed.wait_failed())
        .await
        .expect("the removed leader stops");
    assert_eq!(reason, "removed from the cluster");
    removed.shutdown().await;
    let mut kv = kv_client(client_ports[via]).await;
    put_eventually(&mut kv, "after/removal", "yes").await;
    let remaining: Vec<u16> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| client_ports[i])
        .chain([d_client])
        .collect();
    let list = wait_for_members(remaining[0], "leader gone", |list| list.len() == 3).await;
    assert!(list.iter().all(|m| m.id != leader_id));
    refused(
        cluster_client(remaining[0])
            .member_remove(MemberRemoveRequest { id: leader_id })
            .await,
        Code::NotFound,
        "etcdserver: member not found",
    );

    // The joined member restarts from its own directory (no query) with
    // the membership it had.
    let d_node = nodes[3].take().unwrap();
    assert_eq!(d_node.shutdown().await, None);
    let d_node = raftwood_server::start(d_config).await.unwrap();
    assert_eq!(d_node.context.member_id, d.id);
    nodes[3] = Some(d_node);
    let mut d_kv = kv_client(d_client).await;
    put_eventually(&mut d_kv, "after/restart", "yes").await;
    assert_eq!(get(&mut d_kv, "before/0").await.as_deref(), Some("v"));

    // Every remaining member holds the same state.
    wait_for_equal_hashes(&remaining).await;
    for node in nodes.into_iter().flatten() {
        node.shutdown().await;
    }
}

/// etcd's strict reconfiguration check, as the fixture recorded it with
/// one of three members killed: adding (even a learner) and removing a
/// live voter are refused as "unhealthy cluster"; removing the dead member
/// is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_voter_down_changes_that_need_it_are_refused_as_unhealthy() {
    let (_dir, client_ports, configs) = layout(|_| {});
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let mut kv = kv_client(client_ports[0]).await;
    put_eventually(&mut kv, "k", "v").await;
    let leader = leader_of(&nodes).await;
    let down = (leader + 1) % 3;
    let live = (leader + 2) % 3;
    let down_id = nodes[down].as_ref().unwrap().context.member_id;
    let live_id = nodes[live].as_ref().unwrap().context.member_id;
    nodes[down].take().unwrap().shutdown().await;
    // Past an election timeout (200 ms here), the leader no longer counts
    // it as heard from.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut cluster = cluster_client(client_ports[leader]);
    let spare = PeerUrl::localhost(free_ports(1)[0]).to_string();
    refused(
        cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![spare],
                is_learner: true,
            })
            .await,
        Code::Unavailable,
        "etcdserver: unhealthy cluster",
    );
    refused(
        cluster
            .member_remove(MemberRemoveRequest { id: live_id })
            .await,
        Code::Unavailable,
        "etcdserver: unhealthy cluster",
    );
    let after = cluster
        .member_remove(MemberRemoveRequest { id: down_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.members.len(), 2);
    assert!(after.members.iter().all(|m| m.id != down_id));
    let mut kv = kv_client(client_ports[live]).await;
    put_eventually(&mut kv, "k", "after").await;
    for node in nodes.into_iter().flatten() {
        node.shutdown().await;
    }
}

/// Retries `change` until it is accepted: membership changes are refused
/// while the cluster is busy (a learner not yet in sync, a change in
/// progress, a leader just elected), as on etcd, and an operator retries.
async fn until_accepted<T, F, Fut>(what: &str, mut change: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match change().await {
            Ok(answer) => return answer.into_inner(),
            Err(status) => {
                assert!(Instant::now() < deadline, "{what}: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Puts `w/<n>` for n = 0, 1, ... through whichever of `ports` answers,
/// until `stop`; returns the n of every acknowledged put.
async fn write_until(
    ports: std::sync::Arc<parking_lot::Mutex<Vec<u16>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<u64> {
    let mut acknowledged = Vec::new();
    let mut attempt = 0usize;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let port = {
            let ports = ports.lock();
            ports[attempt % ports.len()]
        };
        let mut kv = kv_client(port).await;
        let put = tokio::time::timeout(
            Duration::from_secs(2),
            support::put(&mut kv, &format!("w/{n}"), "v"),
        )
        .await;
        match put {
            Ok(Ok(_)) => {
                acknowledged.push(n);
                n += 1;
            }
            // Unknown outcome or refused: the next key, on another member.
            _ => {
                n += 1;
                attempt += 1;
            }
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_grow_to_five_and_shrink_to_three_without_the_leader_while_writes_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (_dir, client_ports, configs) = layout(|_| {});
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let mut kv = kv_client(client_ports[0]).await;
    put_eventually(&mut kv, "warm-up", "1").await;
    let ports = Arc::new(parking_lot::Mutex::new(client_ports.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(Arc::clone(&ports), Arc::clone(&stop)));

    // Grow: each new member is added as a learner, started empty, caught
    // up, and promoted.
    let mut all_configs = configs.clone();
    for name in ["d", "e"] {
        let fresh = free_ports(2);
        let (client, peer) = (fresh[0], fresh[1]);
        let url = PeerUrl::localhost(peer).to_string();
        let first = client_ports[0];
        let added = until_accepted(&format!("add {name}"), || {
            let url = url.clone();
            async move {
                cluster_client(first)
                    .member_add(MemberAddRequest {
                        peer_ur_ls: vec![url],
                        is_learner: true,
                    })
                    .await
            }
        })
        .await;
        let id = added.member.unwrap().id;
        let config = joiner(&all_configs, name, client, peer);
        let node = raftwood_server::start(config.clone()).await.unwrap();
        assert_eq!(node.context.member_id, id);
        nodes.push(Some(node));
        all_configs.push(config);
        // The learner catches up (said here, with both positions, rather
        // than by the promote refusals below).
        {
            let learner = nodes
                .last()
                .unwrap()
                .as_ref()
                .unwrap()
                .context
                .status
                .clone();
            let leader = leader_of(&nodes).await;
            let leader_status = nodes[leader].as_ref().unwrap().context.status.clone();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (mine, theirs) = (*learner.borrow(), *leader_status.borrow());
                if mine.applied + 5 >= theirs.commit {
                    break;
                }
                if mine.failed {
                    let node = nodes.pop().flatten().unwrap();
                    let reason = node.shutdown().await;
                    panic!("learner {name} failed: {reason:?}");
                }
                assert!(
                    Instant::now() < deadline,
                    "learner {name} stuck: {mine:?} vs leader {theirs:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        until_accepted(&format!("promote {name}"), || async move {
            cluster_client(first)
                .member_promote(MemberPromoteRequest { id })
                .await
        })
        .await;
        ports.lock().push(client);
    }
    let grown = wait_for_members(client_ports[0], "five voters", |list| {
        list.len() == 5 && list.iter().all(|m| !m.is_learner && !m.name.is_empty())
    })
    .await;
    assert_eq!(grown.len(), 5);

    // Shrink: the leader first (asked through a follower), then one more.
    for round in 0..2 {
        let leader = leader_of(&nodes).await;
        let victim = if round == 0 {
            leader
        } else {
            (0..nodes.len())
                .find(|i| *i != leader && nodes[*i].is_some())
                .unwrap()
        };
        let via = (0..nodes.len())
            .find(|i| *i != victim && nodes[*i].is_some())
            .unwrap();
        let victim_id = nodes[victim].as_ref().unwrap().context.member_id;
        let via_port = all_configs[via].listen_client_urls[0].port();
        until_accepted("remove", || async move {
            cluster_client(via_port)
                .member_remove(MemberRemoveRequest { id: victim_id })
                .await
        })
        .await;
        let victim_port = all_configs[victim].listen_client_urls[0].port();
        ports.lock().retain(|port| *port != victim_port);
        let mut removed = nodes[victim].take().unwrap();
        if round == 0 {
            let reason = tokio::time::timeout(Duration::from_secs(20), removed.wait_failed())
                .await
                .expect("the removed leader stops");
            assert_eq!(reason, "removed from the cluster");
        }
        removed.shutdown().await;
    }
    let survivors: Vec<u16> = ports.lock().clone();
    assert_eq!(survivors.len(), 3);
    wait_for_members(survivors[0], "three voters", |list| list.len() == 3).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 20,
        "only {} writes",
        acknowledged.len()
    );

    // Every acknowledged write is there; every member holds the same state.
    let mut kv = kv_client(survivors[0]).await;
    let stored: std::collections::BTreeSet<Vec<u8>> = kv
        .range(RangeRequest {
            key: b"w/".to_vec(),
            range_end: b"w0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    for n in &acknowledged {
        assert!(stored.contains(format!("w/{n}").as_bytes()), "w/{n} lost");
    }
    wait_for_equal_hashes(&survivors).await;
    println!(
        "{} writes acknowledged through 3 -> 5 -> 3 members",
        acknowledged.len()
    );
    for node in nodes.into_iter().flatten() {
        node.shutdown().await;
    }
}
