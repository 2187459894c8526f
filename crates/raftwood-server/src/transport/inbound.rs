//! What peer connections report, and the task that turns it into the
//! drive loop's events: a peer's hello updates what this member knows of
//! it, snapshot chunks are reassembled into a directory before the loop
//! hears of the snapshot, everything else is passed on.

use std::sync::Arc;

use parking_lot::RwLock;
use raftwood_raft::{MessageBody, NodeId};
use tokio::sync::mpsc;

use super::snapshot_receive::SnapshotReceiver;
use super::{Frame, Hello};
use crate::driver::LoopEvent;
use crate::membership::Membership;

/// Reports waiting for the member at most: past it, peer connections wait
/// (and so, through TCP, do the peers' writes).
pub const INBOUND_QUEUE: usize = 256;

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
    membership: Arc<RwLock<Membership>>,
    mut snapshots: SnapshotReceiver,
) {
    while let Some(report) = inbound.recv().await {
        let event = match report {
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
            other => to_event(other, &membership),
        };
        let Some(event) = event else {
            continue;
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// The loop's event for one report other than a snapshot chunk, if it has
/// one.
fn to_event(report: Inbound, membership: &RwLock<Membership>) -> Option<LoopEvent> {
    match report {
        Inbound::Connected(hello) => {
            if let Some(member) = membership.write().members.get_mut(&hello.from) {
                member.client_urls = hello
                    .client_urls
                    .iter()
                    .filter_map(|u| u.parse().ok())
                    .collect();
            }
            None
        }
        Inbound::Frame {
            frame: Frame::Messages(messages),
            ..
        } => Some(LoopEvent::Messages(messages)),
        Inbound::Frame {
            frame: Frame::SnapshotChunk(_),
            from,
        } => {
            tracing::warn!(from, "a snapshot chunk reached the wrong router");
            None
        }
        Inbound::SnapshotSent { peer, ok } => Some(LoopEvent::SnapshotSent { peer, ok }),
        Inbound::Unreachable { peer } => Some(LoopEvent::Unreachable(peer)),
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
