//! The peer protocol's framing: what travels on a member-to-member TCP
//! connection. Documented byte by byte in `docs/peer-protocol.md`.
//!
//! A connection starts with a [`Hello`] from the dialling member, then
//! carries frames `[u32 body length LE][u8 kind][body]`. Connections are
//! one-way: each member dials every peer it sends to.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raftwood_lsm::length::{len_u16, len_u32};
use raftwood_raft::{Message, NodeId};

/// `b"RWPEER"` then the protocol version.
pub const MAGIC: &[u8; 6] = b"RWPEER";
/// Bumped when the frame layout changes.
pub const PROTOCOL_VERSION: u16 = 1;
/// No frame may be larger; a length above it means a broken or hostile peer.
pub const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;
/// Longest hello accepted.
pub const MAX_HELLO_BYTES: u32 = 64 * 1024;

/// Frame kinds.
const KIND_MESSAGES: u8 = 1;
const KIND_SNAPSHOT_CHUNK: u8 = 2;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer speaks another protocol or version.
    #[error("not a raftwood peer connection: {0}")]
    BadHello(String),
    /// The peer belongs to another cluster.
    #[error("peer is in cluster {theirs:x}, this member is in {ours:x}")]
    ClusterMismatch {
        /// This member's cluster id.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// The peer was removed from the cluster: it may never take part again.
    #[error("peer {0:x} was removed from the cluster")]
    Removed(NodeId),
    /// A frame is malformed.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Who is dialling: sent once at the start of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The dialling member's cluster.
    pub cluster_id: u64,
    /// The dialling member.
    pub from: NodeId,
    /// Where clients reach the dialling member (so members can list each
    /// other's client URLs and forward requests to the leader).
    pub client_urls: Vec<String>,
    /// The dialling member's name.
    pub name: String,
}

impl Hello {
    /// `[magic 6][version u16][u32 len][cluster u64][from u64][name][n u16][urls...]`,
    /// strings as `[u16 len][utf-8]`.
    pub fn encode(&self) -> Vec<u8> {
        assert_ne!(self.from, 0, "member ids are never 0");
        let mut body = Vec::new();
        body.put_u64_le(self.cluster_id);
        body.put_u64_le(self.from);
        put_string(&mut body, &self.name);
        body.put_u16_le(len_u16(self.client_urls.len(), "hello client URL count"));
        for url in self.client_urls.iter().take(usize::from(u16::MAX)) {
            put_string(&mut body, url);
        }
        let mut out = Vec::with_capacity(12 + body.len());
        out.extend_from_slice(MAGIC);
        out.put_u16_le(PROTOCOL_VERSION);
        out.put_u32_le(len_u32(body.len(), "hello body"));
        out.extend_from_slice(&body);
        assert_eq!(out.len(), 12 + body.len(), "a hello is its header and body");
        out
    }

    /// Parses the hello's header (12 bytes): returns the body length.
    pub fn decode_header(header: &[u8; 12]) -> Result<u32, FrameError> {
        if &header[..6] != MAGIC {
            return Err(FrameError::BadHello("wrong magic".into()));
        }
        let version = u16::from_le_bytes([header[6], header[7]]);
        if version != PROTOCOL_VERSION {
            return Err(FrameError::BadHello(format!(
                "protocol version {version}, this member speaks {PROTOCOL_VERSION}"
            )));
        }
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if len > MAX_HELLO_BYTES {
            return Err(FrameError::BadHello(format!("hello of {len} bytes")));
        }
        Ok(len)
    }

    /// Parses the hello's body.
    pub fn decode_body(mut body: &[u8]) -> Result<Hello, FrameError> {
        let cluster_id = get_u64(&mut body)?;
        let from = get_u64(&mut body)?;
        // Raft reserves id 0 for nobody: a hello from it is malformed (and
        // `encode` asserts it never writes one).
        if from == 0 {
            return Err(FrameError::BadHello("from member 0".into()));
        }
        let name = get_string(&mut body)?;
        let count = get_u16(&mut body)?;
        let mut client_urls = Vec::with_capacity(usize::from(count).min(16));
        for _ in 0..count {
            client_urls.push(get_string(&mut body)?);
        }
        if !body.is_empty() {
            return Err(FrameError::BadHello("trailing bytes".into()));
        }
        Ok(Hello {
            cluster_id,
            from,
            client_urls,
            name,
        })
    }
}

/// One chunk of a snapshot being streamed to a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot's index (identifies the transfer).
    pub snapshot_index: u64,
    /// The file within the checkpoint, relative to its directory.
    pub file: String,
    /// Offset of `data` within the file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// Set on the last chunk of the last file: the crc32c of every chunk's
    /// data in order, and the message that installs the snapshot.
    pub finish: Option<(u32, Message)>,
}

/// A frame as read from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Raft messages, in order.
    Messages(Vec<Message>),
    /// Part of a snapshot.
    SnapshotChunk(SnapshotChunk),
}

impl Frame {
    /// Appends the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32_le(0); // length, patched below
        match self {
            Frame::Messages(messages) => {
                out.put_u8(KIND_MESSAGES);
                out.put_u32_le(len_u32(messages.len(), "frame message count"));
                let mut scratch = Vec::new();
                let mut items = 0;
                for message in messages {
                    scratch.clear();
                    raftwood_raft::codec::encode_message(message, &mut scratch);
                    out.put_u32_le(len_u32(scratch.len(), "frame item"));
                    out.extend_from_slice(&scratch);
                    items += 4 + scratch.len();
                }
                // Kind, count, then each message behind its length.
                debug_assert_eq!(out.len() - start, 4 + 1 + 4 + items);
            }
            Frame::SnapshotChunk(chunk) => {
                out.put_u8(KIND_SNAPSHOT_CHUNK);
                out.put_u64_le(chunk.snapshot_index);
                put_string(out, &chunk.file);
                out.put_u64_le(chunk.offset);
                out.put_u32_le(len_u32(chunk.data.len(), "snapshot chunk"));
                out.extend_from_slice(&chunk.data);
                let finish = match &chunk.finish {
                    None => {
                        out.put_u8(0);
                        1
                    }
                    Some((crc, message)) => {
                        out.put_u8(1);
                        out.put_u32_le(*crc);
                        let mut scratch = Vec::new();
                        raftwood_raft::codec::encode_message(message, &mut scratch);
                        out.put_u32_le(len_u32(scratch.len(), "frame item"));
                        out.extend_from_slice(&scratch);
                        1 + 4 + 4 + scratch.len()
                    }
                };
                // The layout of `docs/peer-protocol.md`, field by field (the
                // file name is cut at a u16 length, as `put_string` cuts it).
                let file = 2 + chunk.file.len().min(usize::from(u16::MAX));
                debug_assert_eq!(
                    out.len() - start,
                    4 + 1 + 8 + file + 8 + 4 + chunk.data.len() + finish
                );
            }
        }
        let body_len = out.len() - start - 4;
        let len_bytes = len_u32(body_len, "frame body").to_le_bytes();
        out[start..start + 4].copy_from_slice(&len_bytes);
    }

    /// Parses one frame body (after its length).
    pub fn decode(mut body: &[u8]) -> Result<Frame, FrameError> {
        let kind = get_u8(&mut body)?;
        let frame = match kind {
            KIND_MESSAGES => {
                let count = get_u32(&mut body)?;
                let mut messages = Vec::with_capacity((count as usize).min(4096));
                for _ in 0..count {
                    messages.push(get_message(&mut body)?);
                }
                Frame::Messages(messages)
            }
            KIND_SNAPSHOT_CHUNK => {
                let snapshot_index = get_u64(&mut body)?;
                let file = get_string(&mut body)?;
                let offset = get_u64(&mut body)?;
                let len = get_u32(&mut body)? as usize;
                if body.len() < len {
                    return Err(FrameError::Malformed(
                        "chunk shorter than its length".into(),
                    ));
                }
                let data = Bytes::copy_from_slice(&body[..len]);
                body.advance(len);
                let finish = match get_u8(&mut body)? {
                    0 => None,
                    1 => {
                        let crc = get_u32(&mut body)?;
                        Some((crc, get_message(&mut body)?))
                    }
                    other => {
                        return Err(FrameError::Malformed(format!("finish flag {other}")));
                    }
                };
                Frame::SnapshotChunk(SnapshotChunk {
                    snapshot_index,
                    file,
                    offset,
                    data,
                    finish,
                })
            }
            other => return Err(FrameError::Malformed(format!("unknown frame kind {other}"))),
        };
        if !body.is_empty() {
            return Err(FrameError::Malformed("trailing bytes in frame".into()));
        }
        Ok(frame)
    }
}

fn get_message(body: &mut &[u8]) -> Result<Message, FrameError> {
    let len = get_u32(body)? as usize;
    if body.len() < len {
        return Err(FrameError::Malformed(
            "message shorter than its length".into(),
        ));
    }
    let message = raftwood_raft::codec::decode_message(&body[..len])
        .map_err(|e| FrameError::Malformed(format!("raft message: {e}")))?;
    body.advance(len);
    Ok(message)
}

pub(super) fn put_string(out: &mut impl BufMut, text: &str) {
    let bytes = text.as_bytes();
    let len = bytes.len().min(usize::from(u16::MAX));
    out.put_u16_le(len_u16(len, "frame string"));
    out.put_slice(&bytes[..len]);
}

pub(super) fn get_string(body: &mut &[u8]) -> Result<String, FrameError> {
    let len = usize::from(get_u16(body)?);
    if body.len() < len {
        return Err(FrameError::Malformed(
            "string shorter than its length".into(),
        ));
    }
    let text = std::str::from_utf8(&body[..len])
        .map_err(|_| FrameError::Malformed("string is not UTF-8".into()))?
        .to_string();
    body.advance(len);
    Ok(text)
}

fn need(body: &[u8], n: usize) -> Result<(), FrameError> {
    if body.len() < n {
        Err(FrameError::Malformed("truncated frame".into()))
    } else {
        Ok(())
    }
}

pub(super) fn get_u8(body: &mut &[u8]) -> Result<u8, FrameError> {
    need(body, 1)?;
    Ok(body.get_u8())
}

pub(super) fn get_u16(body: &mut &[u8]) -> Result<u16, FrameError> {
    need(body, 2)?;
    Ok(body.get_u16_le())
}

pub(super) fn get_u32(body: &mut &[u8]) -> Result<u32, FrameError> {
    need(body, 4)?;
    Ok(body.get_u32_le())
}

pub(super) fn get_u64(body: &mut &[u8]) -> Result<u64, FrameError> {
    need(body, 8)?;
    Ok(body.get_u64_le())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwood_raft::MessageBody;

    fn heartbeat() -> Message {
        Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::Heartbeat {
                commit: 7,
                read_context: Some(Bytes::from_static(b"ctx")),
            },
        }
    }

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            cluster_id: 9,
            from: 4,
            client_urls: vec!["http://127.0.0.1:2379".into()],
            name: "a".into(),
        };
        let bytes = hello.encode();
        let header: [u8; 12] = bytes[..12].try_into().unwrap();
        let len = Hello::decode_header(&header).unwrap() as usize;
        assert_eq!(len, bytes.len() - 12);
        assert_eq!(Hello::decode_body(&bytes[12..]).unwrap(), hello);
        let mut wrong = header;
        wrong[0] = b'X';
        assert!(Hello::decode_header(&wrong).is_err());
        // A hello from member 0 (raft's "nobody") is malformed; found by
        // the peer_hello fuzz target once `encode` asserted it.
        let mut from_zero = bytes[12..].to_vec();
        from_zero[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert!(Hello::decode_body(&from_zero).is_err());
    }

    #[test]
    fn frames_round_trip_and_every_truncation_is_an_error() {
        let frames = [
            Frame::Messages(vec![heartbeat(), heartbeat()]),
            Frame::SnapshotChunk(SnapshotChunk {
                snapshot_index: 5,
                file: "000001.sst".into(),
                offset: 4096,
                data: Bytes::from_static(b"abc"),
                finish: Some((77, heartbeat())),
            }),
        ];
        for frame in frames {
            let mut out = BytesMut::new();
            frame.encode(&mut out);
            let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
            assert_eq!(len, out.len() - 4);
            let body = &out[4..];
            assert_eq!(Frame::decode(body).unwrap(), frame);
            for cut in 0..body.len() {
                assert!(Frame::decode(&body[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}
