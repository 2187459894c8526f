//! Relaying the requests that only the leader can answer from a follower
//! to the leader's client URL (which the leader published through raft,
//! as every member publishes its own): lease keep-alive and time-to-live
//! (they read the leader's lease deadlines) and the membership changes
//! (the leader checks them against what it knows of its followers).
//! Writes are not relayed: a follower forwards them inside raft
//! (`MessageBody::ProposeRequest`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;

/// Metadata key marking a relayed request: a member that receives one and
/// does not lead answers "no leader" instead of relaying it again, so two
/// members with stale views never bounce a request between them.
pub const RELAYED_HEADER: &str = "raftwood-forwarded";

/// Connections to other members' client URLs, by URL (reused).
#[derive(Debug, Clone)]
pub struct Relay {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Bounds connecting and every relayed call: a leader that accepts
    /// connections but never answers (paused, overloaded) must not hold a
    /// client's keep-alive forever.
    timeout: Duration,
}

impl Relay {
    /// Relays whose connects and calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Relay {
        Relay {
            channels: Arc::default(),
            timeout,
        }
    }

    /// A connection to the member at `url` (connects lazily).
    pub fn channel(&self, url: &str) -> Option<Channel> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(url) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .ok()?
            .tcp_nodelay(true)
            .connect_timeout(self.timeout)
            .timeout(self.timeout);
        let channel = endpoint.connect_lazy();
        channels.insert(url.to_string(), channel.clone());
        Some(channel)
    }

    /// A Lease client for the member at `url`.
    pub fn lease_client(&self, url: &str) -> Option<LeaseClient<Channel>> {
        Some(LeaseClient::new(self.channel(url)?))
    }

    /// A Cluster client for the member at `url`.
    pub fn cluster_client(&self, url: &str) -> Option<ClusterClient<Channel>> {
        Some(ClusterClient::new(self.channel(url)?))
    }
}

/// Marks `message` (a request, or a stream of them) as relayed.
pub fn mark<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        RELAYED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request
}

/// Whether `request` was relayed by another member.
pub fn is_relayed<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(RELAYED_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::LeaseTimeToLiveRequest;

    #[tokio::test]
    async fn a_relay_to_a_member_that_never_answers_gives_up_at_its_timeout() {
        // Accepts the connection, never speaks: a paused leader.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", silent.local_addr().expect("address"));
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let relay = Relay::new(Duration::from_millis(300));
        let mut client = relay.lease_client(&url).expect("a client");
        let started = std::time::Instant::now();
        let answer = client
            .lease_time_to_live(mark(LeaseTimeToLiveRequest { id: 1, keys: false }))
            .await;
        assert!(answer.is_err(), "answered by a member that never speaks");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up only after {:?}",
            started.elapsed()
        );
        held.abort();
    }
}
