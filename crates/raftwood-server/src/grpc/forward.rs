//! Forwarding writes from a follower to the leader. The follower acts as
//! the client's proxy: it re-sends the request to the leader's client URL
//! (learned from the leader's peer hello) and returns the leader's answer.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::proto::etcdserverpb::kv_client::KvClient;

/// Metadata key marking a forwarded request: a member that receives one
/// and does not lead answers "no leader" instead of forwarding again, so
/// two members with stale views never bounce a request between them.
pub const FORWARDED_HEADER: &str = "raftwood-forwarded";

/// Clients of other members' KV services, by URL (connections are reused).
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    clients: Arc<Mutex<HashMap<String, KvClient<Channel>>>>,
}

impl Forwarder {
    /// A client for the member at `url` (connects lazily).
    pub fn client(&self, url: &str) -> Option<KvClient<Channel>> {
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(url) {
            return Some(client.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .ok()?
            .tcp_nodelay(true);
        let client = KvClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(url.to_string(), client.clone());
        Some(client)
    }
}

/// Marks `request` as forwarded.
pub fn mark<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request
}

/// Whether `request` was forwarded by another member.
pub fn is_forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_HEADER)
}
