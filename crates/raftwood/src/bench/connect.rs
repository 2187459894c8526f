//! Endpoints, connections and the leader.
//!
//! A tonic `Channel` is one HTTP/2 connection that any number of clients
//! share, each request its own stream; `--conns` channels are opened and
//! spread over the endpoints round-robin, as etcd's tool does.

use std::time::Duration;

use raftwood_server::proto::etcdserverpb::StatusRequest;
use raftwood_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

/// Endpoints as URLs: `host:port` becomes `http://host:port`; empty
/// entries (a trailing comma) are dropped.
pub fn normalize_endpoints(endpoints: &[String]) -> Result<Vec<String>, String> {
    let urls: Vec<String> = endpoints
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.contains("://") {
                e.to_string()
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    if urls.is_empty() {
        return Err("--endpoints names no endpoint".into());
    }
    if let Some(tls) = urls.iter().find(|u| u.starts_with("https://")) {
        return Err(format!("{tls}: TLS endpoints are not supported"));
    }
    Ok(urls)
}

/// Connection `connection_index` goes to this endpoint.
pub fn endpoint_for_connection(endpoints: &[String], connection_index: usize) -> &str {
    &endpoints[connection_index % endpoints.len()]
}

async fn dial(url: &str, dial_timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url}: not a valid endpoint: {e}"))?
        .connect_timeout(dial_timeout)
        .tcp_nodelay(true);
    endpoint
        .connect()
        .await
        .map_err(|e| format!("{url}: cannot connect: {e}"))
}

/// Opens `conns` connections, spread over `endpoints`.
pub async fn dial_all(
    endpoints: &[String],
    conns: usize,
    dial_timeout: Duration,
) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(conns);
    for i in 0..conns {
        channels.push(dial(endpoint_for_connection(endpoints, i), dial_timeout).await?);
    }
    Ok(channels)
}

/// The endpoint of the leader: the one whose Status names itself as
/// leader (`header.member_id == leader`). Endpoints that do not answer are
/// skipped; it is an error if none is the leader.
pub async fn find_leader(endpoints: &[String], dial_timeout: Duration) -> Result<String, String> {
    let mut problems = Vec::new();
    for url in endpoints {
        let channel = match dial(url, dial_timeout).await {
            Ok(channel) => channel,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let mut client = MaintenanceClient::new(channel);
        let status = tokio::time::timeout(dial_timeout, client.status(StatusRequest {})).await;
        match status {
            Ok(Ok(response)) => {
                let status = response.into_inner();
                let member_id = status.header.map(|h| h.member_id);
                if status.leader != 0 && member_id == Some(status.leader) {
                    return Ok(url.clone());
                }
            }
            Ok(Err(error)) => problems.push(format!("{url}: status: {}", error.message())),
            Err(_) => problems.push(format!("{url}: status: no answer within {dial_timeout:?}")),
        }
    }
    let mut message = String::from("--target-leader: no endpoint is the leader");
    if !problems.is_empty() {
        message.push_str(" (");
        message.push_str(&problems.join("; "));
        message.push(')');
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn endpoints_get_a_scheme_and_empty_entries_are_dropped() {
        let given = ["127.0.0.1:2379", " http://127.0.0.1:22379", ""].map(String::from);
        assert_eq!(
            normalize_endpoints(&given).unwrap(),
            ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
        );
        assert!(normalize_endpoints(&[String::new()]).is_err());
        assert!(normalize_endpoints(&["https://a:1".to_string()]).is_err());
    }

    #[test]
    fn connections_are_spread_round_robin() {
        let endpoints = ["a", "b", "c"].map(String::from);
        let chosen: Vec<&str> = (0..5)
            .map(|i| endpoint_for_connection(&endpoints, i))
            .collect();
        assert_eq!(chosen, ["a", "b", "c", "a", "b"]);
    }
}
