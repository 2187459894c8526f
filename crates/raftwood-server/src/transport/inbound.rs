//! What peer connections report, and the task that turns it into the
//! drive loop's events: snapshot chunks are reassembled into a directory
//! before the loop hears of the snapshot, everything else is passed on.
//! (A peer's hello teaches nothing: what members are called and where
//! clients reach them is published through raft, never taken from a
//! connection.)

use std::sync::Arc;

use raftwood_raft::{MessageBody, NodeId};
use tokio::sync::{Semaphore, mpsc};

use super::snapshot_receive::SnapshotReceiver;
use super::{Frame, Hello};
use crate::driver::LoopEvent;

/// Reports waiting for the member at most: past it, peer connections wait
/// (and so, through TCP, do the peers' writes).
pub const INBOUND_QUEUE: usize = 256;
/// Frames of peer messages handed to the drive loop and not yet stepped,
/// at most: past it this router waits for the loop, the inbound queue
/// fills, and the peers' writes wait on TCP.
pub const LOOP_MESSAGE_FRAMES: usize = 64;

/// What a peer connection reports to the member.
#[derive(Debug)]
pub enum Inbound {
    /// A peer connected and introduced itself.
    Connected(Hello),
    /// A frame arrived from `from`.
    Frame {
        /// The sending member, from its hello.
        from: NodeId,
        /// What it sent.
        frame: Frame,
    },
    /// Streaming a snapshot to `peer` ended.
    SnapshotSent {
        /// The follower.
        peer: NodeId,
        /// Whether every chunk was written.
        ok: bool,
    },
    /// A connection to `peer` failed: the leader should probe it again
    /// rather than keep streaming into the void.
    Unreachable {
        /// The peer that could not be reached.
        peer: NodeId,
    },
}

/// Routes what peers report to the drive loop's `events` until either
/// side closes. Runs as one task per member.
pub async fn route_inbound(
    mut inbound: mpsc::Receiver<Inbound>,
    events: mpsc::UnboundedSender<LoopEvent>,
    mut snapshots: SnapshotReceiver,
) {
    let in_loop = Arc::new(Semaphore::new(LOOP_MESSAGE_FRAMES));
    while let Some(report) = inbound.recv().await {
        let event = match report {
            Inbound::Frame {
                frame: Frame::Messages(messages),
                ..
            } => {
                let Ok(permit) = Arc::clone(&in_loop).acquire_owned().await else {
                    return; // never closed
                };
                Some(LoopEvent::PeerMessages(messages, permit))
            }
            Inbound::Frame {
                frame: Frame::SnapshotChunk(chunk),
                from,
            } => {
                // Writing and syncing files blocks: off the runtime's
                // workers, so that ticks and heartbeats go on meanwhile.
                let received = tokio::task::spawn_blocking(move || {
                    let event = receive_chunk(&mut snapshots, from, chunk);
                    (snapshots, event)
                })
                .await;
                let Ok((receiver, event)) = received else {
                    tracing::error!("receiving a snapshot chunk panicked; peer reports stop");
                    return;
                };
                snapshots = receiver;
                event
            }
            Inbound::Connected(hello) => {
                tracing::debug!(from = %format!("{:x}", hello.from), name = %hello.name, "peer connected");
                None
            }
            Inbound::SnapshotSent { peer, ok } => Some(LoopEvent::SnapshotSent { peer, ok }),
            Inbound::Unreachable { peer } => Some(LoopEvent::Unreachable(peer)),
        };
        let Some(event) = event else {
            continue;
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Takes one snapshot chunk; the loop's event once the snapshot is whole.
fn receive_chunk(
    snapshots: &mut SnapshotReceiver,
    from: NodeId,
    chunk: super::SnapshotChunk,
) -> Option<LoopEvent> {
    match snapshots.receive(from, chunk) {
        Ok(Some((dir, message))) => {
            let MessageBody::InstallSnapshot { snapshot } = &message.body else {
                tracing::warn!(from, "a snapshot transfer ended with another message");
                return None;
            };
            Some(LoopEvent::SnapshotReceived {
                dir,
                index: snapshot.index,
                message,
            })
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(from, %error, "snapshot transfer abandoned");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use raftwood_lsm::fs::{CrashFs, FileSystem};

    use super::*;

    fn frame() -> Inbound {
        Inbound::Frame {
            from: 2,
            frame: Frame::Messages(Vec::new()),
        }
    }

    #[tokio::test]
    async fn a_loop_that_falls_behind_stops_the_router_and_then_the_peers() {
        let (inbound, reports) = mpsc::channel(INBOUND_QUEUE);
        let (events, mut loop_side) = mpsc::unbounded_channel();
        let fs = Arc::new(CrashFs::new()) as Arc<dyn FileSystem>;
        let snapshots = SnapshotReceiver::new(fs, "/incoming".into(), u64::MAX);
        tokio::spawn(route_inbound(reports, events, snapshots));

        // The loop steps nothing: the router hands it a bounded number of
        // frames, the inbound queue fills behind it, and then a peer's
        // connection has to wait (here: try_send fails).
        let mut accepted = 0;
        for _ in 0..(INBOUND_QUEUE + LOOP_MESSAGE_FRAMES) * 2 {
            if inbound.try_send(frame()).is_err() {
                break;
            }
            accepted += 1;
            tokio::task::yield_now().await;
        }
        assert!(
            accepted <= INBOUND_QUEUE + LOOP_MESSAGE_FRAMES + 1,
            "{accepted}"
        );
        let mut held = Vec::new();
        while let Ok(event) = loop_side.try_recv() {
            held.push(event);
        }
        assert_eq!(held.len(), LOOP_MESSAGE_FRAMES);
        // Once the loop has stepped them, the rest flows again.
        drop(held);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut more = 0;
        while let Ok(event) =
            tokio::time::timeout(Duration::from_millis(200), loop_side.recv()).await
        {
            assert!(matches!(event, Some(LoopEvent::PeerMessages(..))));
            more += 1;
            if more == LOOP_MESSAGE_FRAMES {
                break;
            }
        }
        assert_eq!(more, LOOP_MESSAGE_FRAMES);
    }
}
