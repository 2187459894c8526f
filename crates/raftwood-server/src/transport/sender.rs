//! One peer's outgoing connection: a task that connects (with backoff),
//! introduces this member, and writes what is queued for the peer.
//!
//! Memory is bounded however slow the peer is. Raft messages wait in a
//! queue of at most [`MESSAGE_QUEUE`] messages and [`MESSAGE_QUEUE_BYTES`]
//! of entries; past either a message is dropped, which raft tolerates
//! (heartbeats repeat, appends are resent from the follower's progress). Snapshot chunks wait in a queue of
//! [`SNAPSHOT_QUEUE`]; a transfer waits for room, so a snapshot streams
//! from disk at the speed of the connection, and each chunk's sender hears
//! whether it was written. A write that takes longer than
//! [`WRITE_TIMEOUT`] (a stopped or overloaded peer) ends the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use raftwood_raft::{Entry, Message, MessageBody, NodeId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::{Frame, Inbound, SnapshotChunk};

/// Raft messages queued for one peer at most; more are dropped.
pub const MESSAGE_QUEUE: usize = 4096;
/// Bytes of entries and commands queued for one peer at most.
pub const MESSAGE_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// What a message costs in the queue besides its entries, near enough.
const MESSAGE_OVERHEAD_BYTES: usize = 128;
/// Snapshot chunks (1 MiB each) queued for one peer at most.
pub const SNAPSHOT_QUEUE: usize = 4;
/// The longest a write to a peer may take (etcd's rafthttp allows 5 s).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most messages put into one frame; more wait for the next write.
const MAX_BATCH_MESSAGES: usize = 4096;
/// Messages stop being added to a write past this many bytes.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// A snapshot chunk and whom to tell once it is written. Dropping
/// `written` unsent tells the transfer it failed.
#[derive(Debug)]
pub struct QueuedChunk {
    pub chunk: SnapshotChunk,
    pub written: oneshot::Sender<()>,
}

/// The queues of one peer's sender task.
#[derive(Debug, Clone)]
pub struct PeerQueues {
    messages: mpsc::Sender<Message>,
    pub(super) chunks: mpsc::Sender<QueuedChunk>,
    /// Bytes of the messages queued (see [`queued_bytes`]).
    queued_bytes: Arc<AtomicUsize>,
    /// Messages dropped because the queue was full.
    dropped: Arc<AtomicU64>,
}

impl PeerQueues {
    /// Queues `message`, or drops it if the queue is full (counted).
    pub fn send_message(&self, message: Message) {
        let bytes = queued_bytes(&message);
        let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > MESSAGE_QUEUE_BYTES && before > 0 {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.messages.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The task ended: the member is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Bytes of the messages waiting to be written (see [`queued_bytes`]).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Messages dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting to be written.
    pub fn queued_messages(&self) -> usize {
        MESSAGE_QUEUE - self.messages.capacity()
    }
}

/// Starts the sender task of `peer` and returns its queues.
pub fn spawn_sender(
    peer: NodeId,
    addresses: Vec<String>,
    hello: Vec<u8>,
    inbound: mpsc::Sender<Inbound>,
) -> PeerQueues {
    let (messages, message_queue) = mpsc::channel(MESSAGE_QUEUE);
    let (chunks, chunk_queue) = mpsc::channel(SNAPSHOT_QUEUE);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let connection = Connection {
        peer,
        addresses,
        hello,
        messages: message_queue,
        queued_bytes: Arc::clone(&queued_bytes),
        chunks: chunk_queue,
        inbound,
    };
    tokio::spawn(connection.run());
    PeerQueues {
        messages,
        chunks,
        queued_bytes,
        dropped: Arc::new(AtomicU64::new(0)),
    }
}

/// What the sender task owns.
struct Connection {
    peer: NodeId,
    addresses: Vec<String>,
    hello: Vec<u8>,
    messages: mpsc::Receiver<Message>,
    /// Shared with [`PeerQueues`]: lowered as messages are taken.
    queued_bytes: Arc<AtomicUsize>,
    chunks: mpsc::Receiver<QueuedChunk>,
    inbound: mpsc::Sender<Inbound>,
}

/// What a write starts with.
enum Next {
    Message(Message),
    Chunk(QueuedChunk),
}

/// One write: encoded frames and the chunks it carries.
struct Write {
    buffer: BytesMut,
    written: Vec<oneshot::Sender<()>>,
}

/// Why the task stops writing to a connection.
enum Stop {
    /// The member is stopping.
    Shutdown,
    /// The connection failed or timed out.
    Lost,
}

impl Connection {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let Some(mut stream) = connect(&self.addresses).await else {
                if !self.discard_queued() {
                    return;
                }
                debug_assert!((MIN_BACKOFF..=MAX_BACKOFF).contains(&backoff));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            };
            backoff = MIN_BACKOFF;
            let introduced =
                tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&self.hello)).await;
            if !matches!(introduced, Ok(Ok(()))) {
                self.report_unreachable().await;
                continue;
            }
            tracing::debug!(peer = self.peer, "connected");
            match self.write_until_lost(&mut stream).await {
                Stop::Shutdown => return,
                Stop::Lost => {
                    self.report_unreachable().await;
                    // Chunks queued for this connection cannot continue on
                    // the next: their transfers hear that they failed.
                    while self.chunks.try_recv().is_ok() {}
                }
            }
        }
    }

    /// Writes what is queued until the connection fails.
    async fn write_until_lost(&mut self, stream: &mut TcpStream) -> Stop {
        let mut buffer = BytesMut::with_capacity(64 * 1024);
        loop {
            // Messages first: a snapshot transfer must not hold up
            // heartbeats (its chunks go one per write between them).
            let first = tokio::select! {
                biased;
                message = self.messages.recv() => message.map(|m| Next::Message(self.taken(m))),
                chunk = self.chunks.recv() => chunk.map(Next::Chunk),
            };
            let Some(first) = first else {
                return Stop::Shutdown;
            };
            buffer.clear();
            let write = self.batch(first, buffer);
            let result = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&write.buffer)).await;
            buffer = write.buffer;
            match result {
                Ok(Ok(())) => {
                    for written in write.written {
                        let _ = written.send(());
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(peer = self.peer, %error, "peer connection lost");
                    return Stop::Lost;
                }
                Err(_) => {
                    tracing::info!(
                        peer = self.peer,
                        "a write to the peer timed out; reconnecting"
                    );
                    return Stop::Lost;
                }
            }
        }
    }

    /// One write: `first`, then the messages queued after it (up to the
    /// batch limits); at most one chunk a write.
    fn batch(&mut self, first: Next, mut buffer: BytesMut) -> Write {
        let mut messages = Vec::new();
        let mut written = Vec::new();
        match first {
            Next::Message(message) => messages.push(message),
            Next::Chunk(queued) => {
                Frame::SnapshotChunk(queued.chunk).encode(&mut buffer);
                written.push(queued.written);
            }
        }
        while messages.len() < MAX_BATCH_MESSAGES && buffer.len() < MAX_BATCH_BYTES {
            match self.messages.try_recv() {
                Ok(message) => messages.push(self.taken(message)),
                Err(_) => break,
            }
        }
        if !messages.is_empty() {
            Frame::Messages(messages).encode(&mut buffer);
        }
        // Every write carries a frame; a chunk's sender hears of its own
        // chunk only.
        debug_assert!(!buffer.is_empty() && written.len() <= 1);
        Write { buffer, written }
    }

    /// A message taken off the queue: its bytes no longer count.
    fn taken(&self, message: Message) -> Message {
        debug_assert_eq!(message.to, self.peer, "a message queued for another peer");
        let bytes = queued_bytes(&message);
        let before = self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        // Invariant: a message's bytes were counted when it was queued.
        debug_assert!(before >= bytes, "{before} bytes queued, {bytes} taken");
        message
    }

    /// The peer cannot be reached: messages queued for it are stale by the
    /// time it comes back, and chunks cannot go. Drops them; reports the
    /// peer unreachable if there were any. False once the member stops.
    fn discard_queued(&mut self) -> bool {
        let mut dropped = 0usize;
        loop {
            match self.messages.try_recv() {
                Ok(message) => {
                    self.taken(message);
                    dropped += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        while self.chunks.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            let _ = self
                .inbound
                .try_send(Inbound::Unreachable { peer: self.peer });
        }
        true
    }

    /// Tells raft to probe the peer again rather than stream into the void.
    async fn report_unreachable(&self) {
        let _ = self
            .inbound
            .send(Inbound::Unreachable { peer: self.peer })
            .await;
    }
}

/// What `message` counts for in the queue: its entries' and commands'
/// bytes, and a little for the rest.
fn queued_bytes(message: &Message) -> usize {
    let payload: u64 = match &message.body {
        MessageBody::AppendRequest { entries, .. } => {
            entries.iter().map(Entry::payload_size_bytes).sum()
        }
        MessageBody::ProposeRequest { commands, .. } => {
            commands.iter().map(|command| command.len() as u64).sum()
        }
        _ => 0,
    };
    MESSAGE_OVERHEAD_BYTES.saturating_add(usize::try_from(payload).unwrap_or(usize::MAX))
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
