//! Peer transport: one long-lived TCP connection from this member to each
//! peer, messages batched into frames, reconnect with backoff; snapshots
//! streamed as chunks and reassembled on arrival; and the listener that
//! accepts peers' connections and routes what they send to the drive loop
//! (`inbound.rs`).

mod frame;
mod inbound;
mod snapshot_receive;
mod snapshot_send;
#[cfg(test)]
mod snapshot_transfer_tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use raftwood_raft::{Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub use frame::{Frame, FrameError, Hello, MAX_FRAME_BYTES, SnapshotChunk};
pub use inbound::{Inbound, route_inbound};
pub use snapshot_receive::{ReceiveError, SnapshotReceiver};

use crate::accept::{AcceptBackoff, accept};
use crate::driver::MessageSink;
use crate::snapshot::SnapshotStore;

/// Most messages put into one frame; more wait for the next write.
const MAX_BATCH_MESSAGES: usize = 4096;
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

enum Outgoing {
    Message(Message),
    Frame(Frame),
}

struct PeerHandle {
    queue: mpsc::UnboundedSender<Outgoing>,
}

/// Outgoing connections, one sender task per peer.
pub struct PeerTransport {
    hello: Hello,
    /// This member's snapshots, streamed from here.
    snapshots: SnapshotStore,
    peers: Mutex<HashMap<NodeId, PeerHandle>>,
    inbound: mpsc::UnboundedSender<Inbound>,
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
        inbound: mpsc::UnboundedSender<Inbound>,
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
        let (queue, receiver) = mpsc::unbounded_channel();
        let hello = self.hello.encode();
        let inbound = self.inbound.clone();
        tokio::spawn(run_sender(peer, addresses, hello, receiver, inbound));
        self.peers.lock().insert(peer, PeerHandle { queue });
    }

    /// Queues a whole frame (a snapshot chunk) for `peer`.
    pub fn send_frame(&self, peer: NodeId, frame: Frame) -> bool {
        match self.peers.lock().get(&peer) {
            Some(handle) => handle.queue.send(Outgoing::Frame(frame)).is_ok(),
            None => false,
        }
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
        let dir = self.snapshots.path_of(index);
        let fs = Arc::clone(self.snapshots.fs());
        let transport = self.clone();
        tokio::spawn(async move {
            let result =
                snapshot_send::stream_snapshot(&transport, fs, peer, dir, index, message).await;
            if let Err(error) = &result {
                tracing::info!(peer, index, %error, "snapshot not sent");
            }
            let _ = transport.inbound.send(Inbound::SnapshotSent {
                peer,
                ok: result.is_ok(),
            });
        });
    }
}

impl PeerTransport {
    /// Queues each message for its peer's connection.
    pub fn send_messages(&self, messages: Vec<Message>) {
        let peers = self.peers.lock();
        for message in messages {
            match peers.get(&message.to) {
                Some(handle) => {
                    // A closed queue means the sender task ended (shutdown).
                    let _ = handle.queue.send(Outgoing::Message(message));
                }
                None => {
                    tracing::debug!(to = message.to, "message to an unknown peer dropped");
                }
            }
        }
    }
}

async fn connect(addresses: &[String]) -> Option<TcpStream> {
    for address in addresses {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

async fn run_sender(
    peer: NodeId,
    addresses: Vec<String>,
    hello: Vec<u8>,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    // The first item waiting to be written, kept across a reconnect only if
    // it is a snapshot chunk (a lost raft message is resent by raft itself).
    'connection: loop {
        let Some(mut stream) = connect(&addresses).await else {
            // Messages queued for an unreachable peer are stale by the
            // time it comes back; drop them and let raft probe again.
            let mut dropped = 0usize;
            loop {
                match queue.try_recv() {
                    Ok(_) => dropped += 1,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            if dropped > 0 {
                let _ = inbound.send(Inbound::Unreachable { peer });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue 'connection;
        };
        if stream.write_all(&hello).await.is_err() {
            continue 'connection;
        }
        backoff = MIN_BACKOFF;
        tracing::debug!(peer, "connected");
        loop {
            let Some(first) = queue.recv().await else {
                return; // transport dropped: shutting down
            };
            buffer.clear();
            let mut messages = Vec::new();
            let push =
                |item: Outgoing, buffer: &mut BytesMut, messages: &mut Vec<Message>| match item {
                    Outgoing::Message(message) => messages.push(message),
                    Outgoing::Frame(frame) => {
                        if !messages.is_empty() {
                            Frame::Messages(std::mem::take(messages)).encode(buffer);
                        }
                        frame.encode(buffer);
                    }
                };
            push(first, &mut buffer, &mut messages);
            while messages.len() < MAX_BATCH_MESSAGES && buffer.len() < 4 * 1024 * 1024 {
                match queue.try_recv() {
                    Ok(item) => push(item, &mut buffer, &mut messages),
                    Err(_) => break,
                }
            }
            if !messages.is_empty() {
                Frame::Messages(messages).encode(&mut buffer);
            }
            if let Err(error) = stream.write_all(&buffer).await {
                tracing::debug!(peer, %error, "peer connection lost");
                let _ = inbound.send(Inbound::Unreachable { peer });
                continue 'connection;
            }
        }
    }
}

/// Accepts peers' connections and forwards what they send to `inbound`;
/// runs until the member stops (failed accepts are waited out, see
/// [`crate::accept`]). Connections from another cluster are refused.
pub async fn serve_peers(
    listener: TcpListener,
    cluster_id: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, address) = accept(&listener, &mut backoff).await;
        let inbound = inbound.clone();
        tokio::spawn(async move {
            if let Err(error) = read_connection(stream, cluster_id, inbound).await {
                tracing::debug!(%address, %error, "peer connection closed");
            }
        });
    }
}

async fn read_connection(
    mut stream: TcpStream,
    cluster_id: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) -> Result<(), ConnectionError> {
    let mut header = [0u8; 12];
    stream.read_exact(&mut header).await?;
    let len = Hello::decode_header(&header)?;
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    let hello = Hello::decode_body(&body)?;
    if hello.cluster_id != cluster_id {
        return Err(FrameError::ClusterMismatch {
            ours: cluster_id,
            theirs: hello.cluster_id,
        }
        .into());
    }
    let from = hello.from;
    if inbound.send(Inbound::Connected(hello)).is_err() {
        return Ok(());
    }
    let mut body = Vec::new();
    loop {
        let len = stream.read_u32_le().await?;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::Malformed(format!("frame of {len} bytes")).into());
        }
        body.resize(len as usize, 0);
        stream.read_exact(&mut body).await?;
        let frame = Frame::decode(&body)?;
        if inbound.send(Inbound::Frame { from, frame }).is_err() {
            return Ok(()); // the member is shutting down
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}
