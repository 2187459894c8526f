//! What the in-process cluster tests share: three members' settings on
//! free ports, starting them, clients, and waiting for a leader.

#![allow(dead_code, reason = "each test file uses a part")]

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use raftwood_server::config::{InitialClusterState, parse_initial_cluster};
use raftwood_server::proto::etcdserverpb::kv_client::KvClient;
use raftwood_server::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftwood_server::url::PeerUrl;
use raftwood_server::{RunningNode, ServerConfig};
use tonic::transport::Channel;

pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub fn configs(root: &Path, client: &[u16], peer: &[u16]) -> Vec<ServerConfig> {
    let names = ["a", "b", "c"];
    let cluster = names
        .iter()
        .zip(peer)
        .map(|(n, p)| format!("{n}={}", PeerUrl::localhost(*p)))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = parse_initial_cluster(&cluster).unwrap();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut config = ServerConfig::new(name, root.join(name));
            config.listen_client_urls = vec![PeerUrl::localhost(client[i])];
            config.advertise_client_urls = vec![PeerUrl::localhost(client[i])];
            config.listen_peer_urls = vec![PeerUrl::localhost(peer[i])];
            config.initial_advertise_peer_urls = vec![PeerUrl::localhost(peer[i])];
            config.initial_cluster = cluster.clone();
            config.initial_cluster_state = InitialClusterState::New;
            config.heartbeat_interval_ms = 20;
            config.election_timeout_ms = 200;
            config
        })
        .collect()
}

/// Three members' settings on free ports in a fresh directory, each
/// adjusted by `adjust`.
pub fn layout(
    adjust: impl Fn(&mut ServerConfig),
) -> (tempfile::TempDir, Vec<u16>, Vec<ServerConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (client_ports, peer_ports) = ports.split_at(3);
    let mut configs = configs(dir.path(), client_ports, peer_ports);
    configs.iter_mut().for_each(adjust);
    (dir, client_ports.to_vec(), configs)
}

pub async fn start_all(configs: &[ServerConfig]) -> Vec<RunningNode> {
    let mut nodes = Vec::new();
    for config in configs {
        nodes.push(raftwood_server::start(config.clone()).await.unwrap());
    }
    nodes
}

/// A lazy connection to the member serving clients on `port`.
pub fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy()
}

pub async fn kv_client(port: u16) -> KvClient<Channel> {
    KvClient::new(channel(port))
}

pub async fn put(
    client: &mut KvClient<Channel>,
    key: &str,
    value: &str,
) -> Result<i64, tonic::Status> {
    let response = client
        .put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..PutRequest::default()
        })
        .await?;
    Ok(response.into_inner().header.unwrap().revision)
}

pub async fn get(client: &mut KvClient<Channel>, key: &str) -> Option<String> {
    let response = client
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    response
        .kvs
        .first()
        .map(|kv| String::from_utf8(kv.value.clone()).unwrap())
}

/// Puts `key` = "v" attached to `lease`.
pub async fn put_leased(kv: &mut KvClient<Channel>, key: &str, lease: i64) {
    kv.put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        lease,
        ..PutRequest::default()
    })
    .await
    .unwrap();
}

/// Retries a write until the cluster accepts it (an election may be under
/// way).
pub async fn put_eventually(client: &mut KvClient<Channel>, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match put(client, key, value).await {
            Ok(revision) => return revision,
            Err(status) => {
                assert!(Instant::now() < deadline, "write never succeeded: {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub async fn leader_of(nodes: &[Option<RunningNode>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, node) in nodes.iter().enumerate() {
            if let Some(node) = node
                && node.context.status.borrow().is_leader
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
