//! Three members in one process, talked to over etcd's gRPC API: writes
//! through any member, linearizable reads everywhere, a leader failure,
//! a restart that recovers from disk, and etcd's errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use raftwood_server::config::parse_initial_cluster;
use raftwood_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use raftwood_server::proto::etcdserverpb::{
    HashKvRequest, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest, request_op,
};
use raftwood_server::url::PeerUrl;
use raftwood_server::{RunningNode, ServerConfig};
use support::{
    channel, free_ports, get, kv_client, layout, leader_of, put, put_eventually, put_leased,
    start_all,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_serves_survives_a_leader_failure_and_restarts() {
    let (_dir, client_ports, configs) = layout(|_| {});
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let mut clients = Vec::new();
    for &port in &client_ports {
        clients.push(kv_client(port).await);
    }

    // Writes through every member; each sees all of them.
    let mut last_revision = 0;
    for (i, client) in clients.iter_mut().enumerate() {
        let revision = put_eventually(client, &format!("key{i}"), &format!("v{i}")).await;
        assert!(revision > last_revision, "revisions increase");
        last_revision = revision;
    }
    for client in &mut clients {
        for i in 0..3 {
            assert_eq!(get(client, &format!("key{i}")).await, Some(format!("v{i}")));
        }
    }

    // Every member applied the same log into the same state (etcd's
    // HashKV over every key, value and revision).
    let mut hashes = Vec::new();
    for &port in &client_ports {
        let response = MaintenanceClient::new(channel(port))
            .hash_kv(HashKvRequest { revision: 0 })
            .await
            .unwrap()
            .into_inner();
        hashes.push((response.hash, response.header.unwrap().revision));
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");

    // Status agrees on the leader.
    let leader = leader_of(&nodes).await;
    let leader_id = nodes[leader].as_ref().unwrap().context.member_id;
    for &port in &client_ports {
        let status = MaintenanceClient::new(channel(port))
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.leader, leader_id);
        assert!(
            status.raft_index >= 4,
            "bootstrap + no-op + 3 writes: {status:?}"
        );
    }

    // The leader stops: the others elect a new one and keep serving every
    // acknowledged write.
    let stopped = nodes[leader].take().unwrap();
    assert_eq!(stopped.shutdown().await, None);
    let survivor = (leader + 1) % 3;
    put_eventually(&mut clients[survivor], "after-failure", "yes").await;
    let new_leader = leader_of(&nodes).await;
    assert_ne!(new_leader, leader);
    for i in 0..3 {
        assert_eq!(
            get(&mut clients[survivor], &format!("key{i}")).await,
            Some(format!("v{i}"))
        );
    }

    // It comes back from its data directory and catches up.
    nodes[leader] = Some(
        raftwood_server::start(configs[leader].clone())
            .await
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut client = kv_client(client_ports[leader]).await;
        let seen = client
            .range(RangeRequest {
                key: b"after-failure".to_vec(),
                serializable: true,
                ..RangeRequest::default()
            })
            .await
            .map(|r| r.into_inner().kvs.len())
            .unwrap_or(0);
        if seen == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted member never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bad input gets etcd's error, and nothing is proposed.
    let error = clients[0].put(PutRequest::default()).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(error.message(), "etcdserver: key is not provided");
    // Just over --max-request-bytes: refused before raft with etcd's text.
    let too_large = clients[0]
        .put(PutRequest {
            key: b"big".to_vec(),
            value: vec![0u8; 1_572_864],
            ..PutRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_large.code(), tonic::Code::InvalidArgument);
    assert_eq!(too_large.message(), "etcdserver: request is too large");
    // An empty txn is fine and changes nothing.
    let txn = clients[1]
        .txn(TxnRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(txn.succeeded);

    for node in nodes.into_iter().flatten() {
        assert_eq!(node.shutdown().await, None);
    }
}

async fn serializable_get(port: u16, key: &str) -> Option<String> {
    let mut client = kv_client(port).await;
    let response = client
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable: true,
            ..RangeRequest::default()
        })
        .await
        .ok()?
        .into_inner();
    response
        .kvs
        .first()
        .map(|kv| String::from_utf8(kv.value.clone()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let (dir, client_ports, configs) = layout(|c| c.snapshot_count = 100);
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let leader = leader_of(&nodes).await;
    let follower = (leader + 1) % 3;
    let mut client = kv_client(client_ports[leader]).await;
    put_eventually(&mut client, "before", "1").await;

    let stopped = nodes[follower].take().unwrap();
    assert_eq!(stopped.shutdown().await, None);
    // Enough writes for two snapshots and a compaction past everything the
    // stopped follower has.
    for i in 0..400 {
        put_eventually(&mut client, &format!("while-down-{i:03}"), &i.to_string()).await;
    }
    let snapshots = dir
        .path()
        .join(configs[leader].name.clone())
        .join("member/snap");
    let taken = std::fs::read_dir(&snapshots).unwrap().count();
    assert!(taken >= 1, "the leader took no snapshot");

    nodes[follower] = Some(
        raftwood_server::start(configs[follower].clone())
            .await
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while serializable_get(client_ports[follower], "while-down-399").await != Some("399".into()) {
        assert!(Instant::now() < deadline, "the follower never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        serializable_get(client_ports[follower], "before").await,
        Some("1".into())
    );
    assert_eq!(
        serializable_get(client_ports[follower], "while-down-000").await,
        Some("0".into())
    );
    // It caught up by installing a snapshot, not by replaying the log.
    let follower_member = dir
        .path()
        .join(configs[follower].name.clone())
        .join("member");
    assert!(
        follower_member.join("kv-current").exists(),
        "the follower's state machine was not replaced by a snapshot"
    );
    // And it keeps up afterwards, from the log.
    put_eventually(&mut client, "after", "2").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while serializable_get(client_ports[follower], "after").await != Some("2".into()) {
        assert!(Instant::now() < deadline, "the follower stopped following");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in nodes.into_iter().flatten() {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_backend_quota_get_etcds_error_and_deletes_still_work() {
    let (_dir, client_ports, configs) = layout(|c| c.quota_backend_bytes = 64 * 1024);
    let nodes = start_all(&configs).await;
    let mut client = kv_client(client_ports[0]).await;
    put_eventually(&mut client, "first", "small").await;
    let big = "x".repeat(16 * 1024);
    let mut refused = None;
    for i in 0..64 {
        match put(&mut client, &format!("big{i}"), &big).await {
            Ok(_) => {}
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("the quota never refused a write");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        refused.message(),
        "etcdserver: mvcc: database space exceeded"
    );
    // Deletes free space and are accepted over the quota.
    client
        .delete_range(raftwood_server::proto::etcdserverpb::DeleteRangeRequest {
            key: b"big".to_vec(),
            range_end: b"bih".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

/// A txn of `puts` puts of distinct keys.
fn txn_of_puts(puts: usize) -> TxnRequest {
    let success = (0..puts)
        .map(|i| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: format!("txn{i}").into_bytes(),
                ..PutRequest::default()
            })),
        })
        .collect();
    TxnRequest {
        success,
        ..TxnRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_follow_max_request_bytes_and_max_txn_ops() {
    const MIB: usize = 1024 * 1024;
    let (_dir, client_ports, configs) = layout(|c| {
        c.max_request_bytes = 3 * MIB as u64;
        c.max_txn_ops = 4;
    });
    let nodes = start_all(&configs).await;
    let mut client = kv_client(client_ports[0]).await;
    put_eventually(&mut client, "first", "small").await;
    let put_of = |bytes: usize| PutRequest {
        key: b"big".to_vec(),
        value: vec![7u8; bytes],
        ..PutRequest::default()
    };
    // Above etcd's default 1.5 MiB, within the configured 3 MiB.
    client.put(put_of(2 * MIB)).await.unwrap();
    // Over the limit, within gRPC's 512 KiB allowance: etcd's refusal.
    let in_the_gap = client.put(put_of(3 * MIB + 100 * 1024)).await.unwrap_err();
    assert_eq!(in_the_gap.code(), tonic::Code::InvalidArgument);
    assert_eq!(in_the_gap.message(), "etcdserver: request is too large");
    // Beyond the allowance gRPC refuses it undecoded.
    let beyond = client.put(put_of(3 * MIB + 600 * 1024)).await.unwrap_err();
    assert_ne!(beyond.code(), tonic::Code::Ok);
    assert_ne!(beyond.message(), "etcdserver: request is too large");

    client.txn(txn_of_puts(4)).await.unwrap();
    let too_many = client.txn(txn_of_puts(5)).await.unwrap_err();
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        too_many.message(),
        "etcdserver: too many operations in txn request"
    );
    let stored = get(&mut client, "big").await.unwrap();
    assert_eq!(
        stored.len(),
        2 * MIB,
        "only the put within the limit was stored"
    );
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_history_then_live_changes_in_their_range() {
    use raftwood_server::proto::etcdserverpb::watch_client::WatchClient;
    use raftwood_server::proto::etcdserverpb::watch_request::RequestUnion;
    use raftwood_server::proto::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, WatchCancelRequest, WatchCreateRequest, WatchRequest,
    };

    let (_dir, client_ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(client_ports[0]).await;
    let first = put_eventually(&mut kv, "w/a", "1").await;
    put_eventually(&mut kv, "other", "x").await;
    put_eventually(&mut kv, "w/b", "2").await;

    // A watcher on a follower, over the prefix, from the first revision.
    let mut watch = WatchClient::new(channel(client_ports[2]));
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"w/".to_vec(),
                range_end: b"w0".to_vec(),
                start_revision: first,
                prev_kv: true,
                ..WatchCreateRequest::default()
            })),
        })
        .await
        .unwrap();
    let mut responses = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let created = responses.message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled);
    let watch_id = created.watch_id;

    let mut seen: Vec<(i32, String, String)> = Vec::new();
    let next = |seen: &mut Vec<(i32, String, String)>,
                response: raftwood_server::proto::etcdserverpb::WatchResponse| {
        assert_eq!(response.watch_id, watch_id);
        for event in response.events {
            let kv = event.kv.unwrap();
            seen.push((
                event.r#type,
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
            ));
        }
    };
    while seen.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("history was not replayed")
            .unwrap()
            .unwrap();
        next(&mut seen, response);
    }
    assert_eq!(
        seen,
        vec![(0, "w/a".into(), "1".into()), (0, "w/b".into(), "2".into())]
    );

    // Live changes: a put outside the range is not seen; a delete is.
    put_eventually(&mut kv, "other", "y").await;
    put_eventually(&mut kv, "w/a", "3").await;
    kv.delete_range(DeleteRangeRequest {
        key: b"w/b".to_vec(),
        ..DeleteRangeRequest::default()
    })
    .await
    .unwrap();
    while seen.len() < 4 {
        let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("live changes did not arrive")
            .unwrap()
            .unwrap();
        next(&mut seen, response);
    }
    assert_eq!(seen[2], (0, "w/a".into(), "3".into()));
    assert_eq!(seen[3].0, 1, "a delete event");
    assert_eq!(seen[3].1, "w/b");

    // Cancel; then a watch from a compacted revision is refused with the
    // compact revision, as etcd does.
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })),
        })
        .await
        .unwrap();
    let canceled = responses.message().await.unwrap().unwrap();
    assert!(canceled.canceled);
    let revision = put_eventually(&mut kv, "w/c", "4").await;
    kv.compact(CompactionRequest {
        revision,
        physical: false,
    })
    .await
    .unwrap();
    // A linearizable read on the watcher's member: it has applied the
    // compaction before the next watch is created.
    let mut follower = kv_client(client_ports[2]).await;
    assert_eq!(get(&mut follower, "w/c").await, Some("4".into()));
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"w/a".to_vec(),
                start_revision: first,
                ..WatchCreateRequest::default()
            })),
        })
        .await
        .unwrap();
    // Created, then cancelled with the compact revision, as etcd does.
    let created = responses.message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");
    let refused = responses.message().await.unwrap().unwrap();
    assert!(refused.canceled);
    assert_eq!(refused.watch_id, created.watch_id);
    assert!(refused.compact_revision >= revision, "{refused:?}");

    drop(requests);
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_attach_keys_keep_alive_revoke_and_expire() {
    use raftwood_server::proto::etcdserverpb::lease_client::LeaseClient;
    use raftwood_server::proto::etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    };

    let (_dir, client_ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(client_ports[1]).await;
    put_eventually(&mut kv, "warmup", "1").await;
    // Through a follower or the leader alike.
    let mut leases = LeaseClient::new(channel(client_ports[1]));
    let granted = leases
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, 60);
    put_leased(&mut kv, "leased", granted.id).await;
    let ttl = leases
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: granted.id,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 0 && ttl.ttl <= 60, "{ttl:?}");
    assert_eq!(ttl.keys, vec![b"leased".to_vec()]);
    let mut answers = leases
        .lease_keep_alive(tokio_stream::once(LeaseKeepAliveRequest { id: granted.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl, 60);

    // Revoke deletes the attached key.
    leases
        .lease_revoke(LeaseRevokeRequest { id: granted.id })
        .await
        .unwrap();
    assert_eq!(get(&mut kv, "leased").await, None);
    let gone = leases
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: granted.id,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.ttl, -1);

    // A lease nobody keeps alive expires on its own and takes its key.
    let short = leases
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await
        .unwrap()
        .into_inner();
    put_leased(&mut kv, "ephemeral", short.id).await;
    assert_eq!(get(&mut kv, "ephemeral").await, Some("v".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&mut kv, "ephemeral").await.is_some() {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

/// A member other than `leader` that is running.
fn a_follower(nodes: &[Option<RunningNode>], leader: usize) -> usize {
    (0..nodes.len())
        .find(|&i| i != leader && nodes[i].is_some())
        .unwrap()
}

/// Waits until member `i` knows a leader.
async fn knows_leader(nodes: &[Option<RunningNode>], i: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes[i]
        .as_ref()
        .unwrap()
        .context
        .status
        .borrow()
        .leader
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "member {i} never learned the leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes sent to a follower reach the leader inside raft (a
/// `ProposeRequest`), and the follower answers from its own apply: the
/// answer's header names the follower, which a relayed answer (the
/// leader's) would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_go_through_raft_and_it_answers_them_itself() {
    use raftwood_server::proto::etcdserverpb::lease_client::LeaseClient;
    use raftwood_server::proto::etcdserverpb::{
        Compare, LeaseGrantRequest, LeaseLeasesRequest, RequestOp, compare, request_op,
    };

    let (_dir, client_ports, configs) = layout(|_| {});
    let nodes: Vec<Option<RunningNode>> = start_all(&configs).await.into_iter().map(Some).collect();
    let leader = leader_of(&nodes).await;
    let follower = a_follower(&nodes, leader);
    knows_leader(&nodes, follower).await;
    let follower_id = nodes[follower].as_ref().unwrap().context.member_id;
    let mut via_follower = kv_client(client_ports[follower]).await;
    let mut via_leader = kv_client(client_ports[leader]).await;

    let first = put_eventually(&mut via_follower, "fk", "v1").await;
    let second = via_follower
        .put(PutRequest {
            key: b"fk".to_vec(),
            value: b"v2".to_vec(),
            prev_kv: true,
            ..PutRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let header = second.header.unwrap();
    assert_eq!(header.revision, first + 1, "the next revision");
    assert_eq!(header.member_id, follower_id, "answered by the follower");
    let prev = second.prev_kv.unwrap();
    assert_eq!(prev.value, b"v1");
    assert_eq!(prev.mod_revision, first);
    assert_eq!(get(&mut via_leader, "fk").await, Some("v2".into()));
    assert_eq!(get(&mut via_follower, "fk").await, Some("v2".into()));

    // A txn: compare-and-swap on the value just written.
    let swap = |expected: &str, new: &str| TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"fk".to_vec(),
            target_union: Some(compare::TargetUnion::Value(expected.as_bytes().to_vec())),
            ..Compare::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"fk".to_vec(),
                value: new.as_bytes().to_vec(),
                ..PutRequest::default()
            })),
        }],
        failure: Vec::new(),
    };
    let swapped = via_follower
        .txn(swap("v2", "v3"))
        .await
        .unwrap()
        .into_inner();
    assert!(swapped.succeeded);
    let header = swapped.header.unwrap();
    assert_eq!(
        (header.revision, header.member_id),
        (first + 2, follower_id)
    );
    let refused = via_follower
        .txn(swap("v2", "v4"))
        .await
        .unwrap()
        .into_inner();
    assert!(!refused.succeeded, "the value is v3 now");
    assert_eq!(get(&mut via_leader, "fk").await, Some("v3".into()));

    // A lease granted through the follower exists on the leader.
    let granted = LeaseClient::new(channel(client_ports[follower]))
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, 60);
    assert_eq!(granted.header.unwrap().member_id, follower_id);
    let leases = LeaseClient::new(channel(client_ports[leader]))
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        leases.leases.iter().any(|l| l.id == granted.id),
        "{leases:?}"
    );

    for node in nodes.into_iter().flatten() {
        assert_eq!(node.shutdown().await, None);
    }
}

/// A write a follower forwarded to a leader that can no longer append it:
/// with the cluster unable to elect anyone, the follower times it out
/// with etcd's "possibly due to previous leader failure" error; when a new
/// leader is elected instead, the follower fails it as soon as it applies
/// the new term's first entry ("leader changed"), long before the
/// timeout. Either way the write is never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_forwarded_to_a_stopped_leader_fails_by_timeout_or_at_the_new_term() {
    // Election timeouts of 1-2 s: the follower keeps believing in the
    // stopped leader while the test sends the write.
    let (_dir, client_ports, configs) = layout(|config| {
        config.heartbeat_interval_ms = 100;
        config.election_timeout_ms = 1_000;
    });
    let mut nodes: Vec<Option<RunningNode>> =
        start_all(&configs).await.into_iter().map(Some).collect();
    let leader = leader_of(&nodes).await;
    let follower = a_follower(&nodes, leader);
    let other = 3 - leader - follower;
    let mut via_follower = kv_client(client_ports[follower]).await;
    put_eventually(&mut via_follower, "warmup", "1").await;

    // The other follower and then the leader stop: no quorum is left.
    assert_eq!(nodes[other].take().unwrap().shutdown().await, None);
    assert_eq!(nodes[leader].take().unwrap().shutdown().await, None);
    let started = Instant::now();
    let error = put(&mut via_follower, "lost", "x").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(error.code(), tonic::Code::Unavailable);
    assert_eq!(
        error.message(),
        "etcdserver: request timed out, possibly due to previous leader failure"
    );
    // The loop's deadline (the request timeout less two ticks: 6.7-6.8 s)
    // comes before the gRPC layer's 7 s, which would answer without the
    // "previous leader failure" part.
    assert!(waited >= Duration::from_millis(6_500), "{waited:?}");
    assert!(waited < Duration::from_millis(7_000), "{waited:?}");

    // Both come back; once all know the leader, that leader stops and a
    // write goes to a follower at once.
    nodes[other] = Some(
        raftwood_server::start(configs[other].clone())
            .await
            .unwrap(),
    );
    nodes[leader] = Some(
        raftwood_server::start(configs[leader].clone())
            .await
            .unwrap(),
    );
    put_eventually(&mut via_follower, "back", "1").await;
    let leader = leader_of(&nodes).await;
    for i in 0..3 {
        knows_leader(&nodes, i).await;
    }
    let follower = a_follower(&nodes, leader);
    let mut via_follower = kv_client(client_ports[follower]).await;
    put_eventually(&mut via_follower, "connected", "1").await;
    assert_eq!(nodes[leader].take().unwrap().shutdown().await, None);
    let started = Instant::now();
    let error = put(&mut via_follower, "lost-too", "x").await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable);
    assert_eq!(error.message(), "etcdserver: leader changed");
    assert!(started.elapsed() < Duration::from_millis(5_500));

    put_eventually(&mut via_follower, "after", "1").await;
    assert_eq!(get(&mut via_follower, "lost").await, None);
    assert_eq!(get(&mut via_follower, "lost-too").await, None);
    for node in nodes.into_iter().flatten() {
        assert_eq!(node.shutdown().await, None);
    }
}

/// A member listening on two client URLs keeps one lease clock: a lease
/// kept alive through one URL is not expired by the other URL's view of it
/// (each listener used to keep its own deadlines and its own expiry task,
/// which revoked kept-alive leases and deleted their keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_kept_alive_through_one_client_url_lives_on_a_member_with_two() {
    use raftwood_server::proto::etcdserverpb::lease_client::LeaseClient;
    use raftwood_server::proto::etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest,
    };

    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut config = ServerConfig::new("solo", dir.path().join("solo"));
    config.listen_client_urls = vec![PeerUrl::localhost(ports[0]), PeerUrl::localhost(ports[1])];
    config.advertise_client_urls = config.listen_client_urls.clone();
    config.listen_peer_urls = vec![PeerUrl::localhost(ports[2])];
    config.initial_advertise_peer_urls = config.listen_peer_urls.clone();
    config.initial_cluster =
        parse_initial_cluster(&format!("solo={}", PeerUrl::localhost(ports[2]))).unwrap();
    config.heartbeat_interval_ms = 20;
    config.election_timeout_ms = 200;
    let node = raftwood_server::start(config).await.unwrap();
    let mut kv = kv_client(ports[0]).await;
    put_eventually(&mut kv, "warmup", "1").await;

    let ttl_seconds = 2;
    let mut leases = LeaseClient::new(channel(ports[0]));
    let granted = leases
        .lease_grant(LeaseGrantRequest {
            ttl: ttl_seconds,
            id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.ttl, ttl_seconds);
    put_leased(&mut kv, "kept", granted.id).await;

    // Keep it alive through the first URL for three TTLs.
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    let mut answers = leases
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let until = Instant::now() + Duration::from_secs(3 * ttl_seconds as u64);
    while Instant::now() < until {
        requests
            .send(LeaseKeepAliveRequest { id: granted.id })
            .await
            .unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!(answer.ttl, ttl_seconds, "keep-alive answered {answer:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Both URLs see the lease alive and its key in place.
    assert_eq!(get(&mut kv, "kept").await, Some("v".into()));
    assert_eq!(
        get(&mut kv_client(ports[1]).await, "kept").await,
        Some("v".into())
    );
    for port in [ports[0], ports[1]] {
        let ttl = LeaseClient::new(channel(port))
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: granted.id,
                keys: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            ttl.ttl > 0,
            "lease seen as expired through port {port}: {ttl:?}"
        );
    }
    drop(requests);
    assert_eq!(node.shutdown().await, None);
}
