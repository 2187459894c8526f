//! The peer listener: accepts peers' connections, checks their hello, and
//! passes the frames they send to the member (`inbound.rs`); answers a
//! joining member's membership query (`join.rs`).

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Frame, FrameError, Hello, Inbound, MAX_FRAME_BYTES, join};
use crate::accept::{AcceptBackoff, accept};
use crate::membership::MembershipWatch;

/// The frame buffer a connection keeps between frames; a larger one, left
/// by a large frame, is given back.
const KEPT_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Accepts peers' connections and forwards what they send to `inbound`;
/// runs until the member stops (failed accepts are waited out, see
/// [`crate::accept`]). Connections from another cluster, and from members
/// that were removed, are refused.
pub async fn serve_peers(
    listener: TcpListener,
    cluster_id: u64,
    membership: MembershipWatch,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, address) = accept(&listener, &mut backoff).await;
        let inbound = inbound.clone();
        let membership = membership.clone();
        tokio::spawn(async move {
            if let Err(error) = read_connection(stream, cluster_id, membership, inbound).await {
                tracing::debug!(%address, %error, "peer connection closed");
            }
        });
    }
}

async fn read_connection(
    mut stream: TcpStream,
    cluster_id: u64,
    membership: MembershipWatch,
    inbound: mpsc::Sender<Inbound>,
) -> Result<(), ConnectionError> {
    let mut header = [0u8; 12];
    stream.read_exact(&mut header).await?;
    if join::is_query(&header)? {
        let current = membership.borrow().clone();
        join::answer(&mut stream, &current).await?;
        return Ok(());
    }
    let len = Hello::decode_header(&header)?;
    let mut body = Vec::new();
    read_body(&mut stream, len, &mut body).await?;
    let hello = Hello::decode_body(&body)?;
    if hello.cluster_id != cluster_id {
        return Err(FrameError::ClusterMismatch {
            ours: cluster_id,
            theirs: hello.cluster_id,
        }
        .into());
    }
    if membership.borrow().removed.contains(&hello.from) {
        return Err(FrameError::Removed(hello.from).into());
    }
    let from = hello.from;
    if inbound.send(Inbound::Connected(hello)).await.is_err() {
        return Ok(());
    }
    loop {
        let frame = read_frame(&mut stream, &mut body).await?;
        // Waits while the member is behind: the peer's writes then wait
        // on TCP, rather than this member's memory growing.
        if inbound.send(Inbound::Frame { from, frame }).await.is_err() {
            return Ok(()); // the member is shutting down
        }
    }
}

/// Reads one frame into `body` (reused between frames) and decodes it.
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    body: &mut Vec<u8>,
) -> Result<Frame, ConnectionError> {
    let len = stream.read_u32_le().await?;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::Malformed(format!("frame of {len} bytes")).into());
    }
    read_body(stream, len, body).await?;
    let frame = Frame::decode(body)?;
    if body.capacity() > KEPT_BUFFER_BYTES {
        *body = Vec::new();
    }
    Ok(frame)
}

/// Reads `len` bytes into `body`. The buffer grows as the bytes arrive, not
/// to the declared length first: a peer that announces a large frame and
/// sends little costs what it sent.
pub(super) async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    len: u32,
    body: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    body.clear();
    let read = stream.take(u64::from(len)).read_to_end(body).await?;
    if read != len as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_frame_announced_large_costs_what_was_sent() {
        let (mut peer, mut member) = tokio::io::duplex(64 * 1024);
        let announced = 200 * 1024 * 1024u32;
        peer.write_all(&announced.to_le_bytes()).await.unwrap();
        peer.write_all(&[7u8; 1000]).await.unwrap();
        drop(peer);
        let mut body = Vec::new();
        let result = read_frame(&mut member, &mut body).await;
        assert!(matches!(result, Err(ConnectionError::Io(_))), "{result:?}");
        assert!(
            body.capacity() < 1024 * 1024,
            "{} bytes held for a frame of 1000 sent",
            body.capacity()
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_reading() {
        let (mut peer, mut member) = tokio::io::duplex(1024);
        peer.write_all(&(MAX_FRAME_BYTES + 1).to_le_bytes())
            .await
            .unwrap();
        let mut body = Vec::new();
        let result = read_frame(&mut member, &mut body).await;
        assert!(
            matches!(result, Err(ConnectionError::Frame(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn frames_round_trip_and_a_large_buffer_is_given_back() {
        let (mut peer, mut member) = tokio::io::duplex(16 * 1024 * 1024);
        let mut encoded = bytes::BytesMut::new();
        let big = super::super::SnapshotChunk {
            snapshot_index: 9,
            file: "kv/000001.sst".into(),
            offset: 0,
            data: bytes::Bytes::from(vec![1u8; 5 * 1024 * 1024]),
            finish: None,
        };
        Frame::SnapshotChunk(big.clone()).encode(&mut encoded);
        Frame::Messages(Vec::new()).encode(&mut encoded);
        peer.write_all(&encoded).await.unwrap();
        let mut body = Vec::new();
        let Frame::SnapshotChunk(read) = read_frame(&mut member, &mut body).await.unwrap() else {
            panic!("not the chunk");
        };
        assert_eq!(read.data, big.data);
        assert!(body.capacity() <= KEPT_BUFFER_BYTES);
        let next = read_frame(&mut member, &mut body).await.unwrap();
        assert!(matches!(next, Frame::Messages(messages) if messages.is_empty()));
    }
}
