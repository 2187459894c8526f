//! Relaying the lease requests that only the leader can answer —
//! keep-alive and time-to-live read the leader's lease deadlines
//! (`LeaseClock`) — from a follower to the leader's client URL (learned
//! from the leader's peer hello). Writes are not relayed here: a follower
//! forwards them inside raft (`MessageBody::ProposeRequest`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::proto::etcdserverpb::lease_client::LeaseClient;

/// Metadata key marking a relayed request: a member that receives one and
/// does not lead answers "no leader" instead of relaying it again, so two
/// members with stale views never bounce a request between them.
pub const RELAYED_HEADER: &str = "raftwood-forwarded";

/// Connections to other members' client URLs, by URL (reused).
#[derive(Debug, Clone, Default)]
pub struct Relay {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Relay {
    /// A connection to the member at `url` (connects lazily).
    pub fn channel(&self, url: &str) -> Option<Channel> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(url) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .ok()?
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(url.to_string(), channel.clone());
        Some(channel)
    }

    /// A Lease client for the member at `url`.
    pub fn lease_client(&self, url: &str) -> Option<LeaseClient<Channel>> {
        Some(LeaseClient::new(self.channel(url)?))
    }
}

/// Marks `message` as relayed.
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
