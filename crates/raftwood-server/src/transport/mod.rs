//! Peer transport: one long-lived TCP connection from this member to each
//! peer, messages batched into frames, reconnect with backoff; snapshots
//! streamed as chunks and reassembled on arrival; and the listener that
//! accepts peers' connections and routes what they send to the drive loop
//! (`inbound.rs`).

mod frame;
mod inbound;
pub mod join;
mod reader;
mod sender;
#[cfg(test)]
mod sender_tests;
mod snapshot_receive;
mod snapshot_send;
#[cfg(test)]
mod snapshot_transfer_tests;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use raftwood_raft::{Message, NodeId};
use tokio::sync::mpsc;

pub use frame::{Frame, FrameError, Hello, MAX_FRAME_BYTES, SnapshotChunk};
pub use inbound::{INBOUND_QUEUE, Inbound, LOOP_MESSAGE_FRAMES, route_inbound};
pub use reader::serve_peers;

/// Keeps `network`'s senders in line with the membership as it is applied:
/// senders for members added, none for members removed. Runs as one task
/// per member.
pub async fn follow_membership(
    network: Arc<PeerTransport>,
    mut membership: crate::membership::MembershipWatch,
) {
    loop {
        let current = Arc::clone(&membership.borrow_and_update());
        network.follow_membership(&current);
        if membership.changed().await.is_err() {
            return;
        }
    }
}
pub use sender::{MESSAGE_QUEUE, MESSAGE_QUEUE_BYTES, PeerQueues, SNAPSHOT_QUEUE, WRITE_TIMEOUT};
pub use snapshot_receive::{ReceiveError, SnapshotReceiver};

use crate::driver::MessageSink;
use crate::snapshot::SnapshotStore;

/// Outgoing connections, one sender task per peer.
pub struct PeerTransport {
    hello: Hello,
    /// This member's snapshots, streamed from here.
    snapshots: SnapshotStore,
    peers: Mutex<HashMap<NodeId, Peer>>,
    inbound: mpsc::Sender<Inbound>,
}

/// A peer this member sends to: where it dials, and its sender's queues.
struct Peer {
    addresses: Vec<String>,
    queues: PeerQueues,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("from", &self.hello.from)
            .field("peers", &self.peers.lock().len())
            .finish()
    }
}

impl PeerTransport {
    /// A transport that introduces itself with `hello` and reports
    /// connection failures on `inbound`.
    pub fn new(
        hello: Hello,
        snapshots: SnapshotStore,
        inbound: mpsc::Sender<Inbound>,
    ) -> Arc<PeerTransport> {
        Arc::new(PeerTransport {
            hello,
            snapshots,
            peers: Mutex::new(HashMap::new()),
            inbound,
        })
    }

    /// Starts (or restarts with new addresses) the sender for `peer`. Must
    /// be called inside the tokio runtime.
    pub fn add_peer(&self, peer: NodeId, addresses: Vec<String>) {
        assert_ne!(peer, self.hello.from, "a member never dials itself");
        let queues = sender::spawn_sender(
            peer,
            addresses.clone(),
            self.hello.encode(),
            self.inbound.clone(),
        );
        self.peers.lock().insert(peer, Peer { addresses, queues });
    }

    /// Brings the peers in line with `membership`: a sender for every other
    /// member (restarted where its peer URLs changed), none for anyone else
    /// (a dropped sender takes its queued messages with it).
    pub fn follow_membership(&self, membership: &crate::membership::Membership) {
        let wanted: HashMap<NodeId, Vec<String>> = membership
            .members
            .values()
            .filter(|m| m.id != self.hello.from)
            .map(|m| (m.id, m.peer_urls.iter().map(|u| u.authority()).collect()))
            .collect();
        self.peers.lock().retain(|peer, _| {
            let keep = wanted.contains_key(peer);
            if !keep {
                tracing::info!(peer = %format!("{peer:x}"), "no longer a member; not sending to it");
            }
            keep
        });
        for (peer, addresses) in wanted {
            let current = self.peers.lock().get(&peer).map(|p| p.addresses.clone());
            if current.as_ref() != Some(&addresses) {
                tracing::info!(peer = %format!("{peer:x}"), ?addresses, "sending to peer");
                self.add_peer(peer, addresses);
            }
        }
        debug_assert!(
            self.peers
                .lock()
                .keys()
                .all(|peer| membership.members.contains_key(peer)),
            "a sender for a member no longer in the cluster"
        );
    }

    /// The queues of `peer`'s connection, if it is a peer.
    pub fn queues(&self, peer: NodeId) -> Option<PeerQueues> {
        self.peers.lock().get(&peer).map(|p| p.queues.clone())
    }
}

impl MessageSink for Arc<PeerTransport> {
    fn send(&self, messages: Vec<Message>) {
        self.send_messages(messages);
    }

    fn send_snapshot(&self, message: Message) {
        let raftwood_raft::MessageBody::InstallSnapshot { snapshot } = &message.body else {
            return;
        };
        let index = snapshot.index;
        let peer = message.to;
        debug_assert_eq!(
            message.from, self.hello.from,
            "only this member's snapshots"
        );
        let dir = self.snapshots.path_of(index);
        let fs = Arc::clone(self.snapshots.fs());
        let transport = self.clone();
        tokio::spawn(async move {
            let result =
                snapshot_send::stream_snapshot(&transport, fs, peer, dir, index, message).await;
            if let Err(error) = &result {
                tracing::info!(peer, index, %error, "snapshot not sent");
            }
            let sent = Inbound::SnapshotSent {
                peer,
                ok: result.is_ok(),
            };
            let _ = transport.inbound.send(sent).await;
        });
    }
}

impl PeerTransport {
    /// Queues each message for its peer's connection (dropped when the
    /// queue is full: see `sender.rs`).
    pub fn send_messages(&self, messages: Vec<Message>) {
        let peers = self.peers.lock();
        for message in messages {
            debug_assert_eq!(message.from, self.hello.from, "only this member's messages");
            debug_assert_ne!(message.to, self.hello.from, "no peer is this member");
            match peers.get(&message.to) {
                Some(peer) => peer.queues.send_message(message),
                None => {
                    tracing::debug!(to = message.to, "message to an unknown peer dropped");
                }
            }
        }
    }
}
