//! The seam through which the drive loop sends to peers. The server's
//! implementation is `transport::PeerTransport`; the simulator's collects
//! the messages and hands them to its simulated network.

use raftwood_raft::Message;

/// Where the drive loop's outgoing messages go.
pub trait MessageSink: Send + Sync {
    /// Sends messages, best effort (Raft tolerates loss); never blocks.
    fn send(&self, messages: Vec<Message>);
    /// Streams the snapshot an `InstallSnapshot` message names, then the
    /// message; the outcome comes back as [`super::LoopEvent::SnapshotSent`].
    fn send_snapshot(&self, message: Message);
}

impl std::fmt::Debug for dyn MessageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageSink")
    }
}
