//! A compatibility layer under the HTTP/2 server: rewrites the
//! `:authority` header of every request to this member's own address.
//!
//! Why: for per-endpoint commands (`etcdctl endpoint status`, `endpoint
//! health`, `move-leader`, `defrag`) etcdctl 3.4 dials
//! `passthrough:///http://host:port`, and grpc-go then sends the
//! authority `http://host:port`, which is not a valid HTTP/2 authority.
//! Go's server accepts it; the `h2` crate under tonic resets the stream
//! with PROTOCOL_ERROR before raftwood sees the request (hyperium/h2
//! issues 442 and 525). raftwood uses the authority for nothing, so every
//! authority is replaced by a valid one.
//!
//! How: the bytes a client sends are parsed as HTTP/2 frames (RFC 9113
//! §4.1). A header block (HEADERS plus CONTINUATION frames) is walked
//! representation by representation (HPACK, RFC 7541 §6); a literal whose
//! name is `:authority` (static table index 1, or the literal name) gets
//! the replacement value, re-encoded as a raw string with the *same*
//! representation type. Everything else is copied byte for byte. Keeping
//! the representation type keeps the server's dynamic table in step with
//! the client's: an entry the client inserted is inserted at the same
//! position, only with the valid value (a shorter entry, so the server's
//! table may evict later than the client's, which leaves every index the
//! client can still use pointing at the same entry).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const PREFACE_BYTES: usize = 24;
const FRAME_HEADER_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may use: rewritten blocks
/// are cut into frames no larger, so they are valid whatever was agreed.
const MAX_FRAME_PAYLOAD_BYTES: usize = 16_384;
/// A header block larger than this is passed through untouched (h2 then
/// applies its own header-list limit).
const MAX_HEADER_BLOCK_BYTES: usize = 1024 * 1024;
/// Room made in the read buffer before each socket read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Rewrites the `:authority` values in one HPACK header block. Returns
/// `None` if the block does not parse (it is then passed on unchanged and
/// the HTTP/2 server reports the error as it would have).
pub fn rewrite_header_block(block: &[u8], authority: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + authority.len());
    let mut rest = block;
    while let Some(&first) = rest.first() {
        if first & 0x80 != 0 {
            // Indexed header field: copy.
            let used = integer_len(rest, 7)?;
            out.extend_from_slice(&rest[..used]);
            rest = &rest[used..];
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update: copy.
            let used = integer_len(rest, 5)?;
            out.extend_from_slice(&rest[..used]);
            rest = &rest[used..];
        } else {
            // A literal: with incremental indexing (01), or without
            // indexing / never indexed (0000 / 0001).
            let prefix_bits = if first & 0xc0 == 0x40 { 6 } else { 4 };
            let (name_index, index_len) = integer(rest, prefix_bits)?;
            let mut used = index_len;
            let is_authority = if name_index == 0 {
                let (name, name_len) = string(&rest[used..])?;
                used += name_len;
                name == Some(b":authority".as_slice())
            } else {
                name_index == 1
            };
            let (_, value_len) = string(&rest[used..])?;
            if is_authority {
                out.extend_from_slice(&rest[..used]);
                put_raw_string(&mut out, authority);
            } else {
                out.extend_from_slice(&rest[..used + value_len]);
            }
            rest = &rest[used + value_len..];
        }
    }
    Some(out)
}

/// Decodes an HPACK integer with an `n`-bit prefix: (value, bytes used).
fn integer(input: &[u8], prefix_bits: u32) -> Option<(u64, usize)> {
    let mask = (1u64 << prefix_bits) - 1;
    let mut value = u64::from(*input.first()?) & mask;
    if value < mask {
        return Some((value, 1));
    }
    let mut shift = 0u32;
    for (i, byte) in input.iter().enumerate().skip(1) {
        if shift > 56 {
            return None;
        }
        value = value.checked_add(u64::from(byte & 0x7f) << shift)?;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn integer_len(input: &[u8], prefix_bits: u32) -> Option<usize> {
    integer(input, prefix_bits).map(|(_, used)| used)
}

/// A string literal: (its bytes if not Huffman-coded, bytes used).
fn string(input: &[u8]) -> Option<(Option<&[u8]>, usize)> {
    let huffman = input.first()? & 0x80 != 0;
    let (len, used) = integer(input, 7)?;
    let len = usize::try_from(len).ok()?;
    let end = used.checked_add(len)?;
    let bytes = input.get(used..end)?;
    Some((
        if huffman {
            huffman_authority(bytes)
        } else {
            Some(bytes)
        },
        end,
    ))
}

/// The Huffman code of ":authority" (RFC 7541 Appendix B), so a
/// Huffman-coded literal name is recognised without a Huffman decoder.
fn huffman_authority(bytes: &[u8]) -> Option<&[u8]> {
    const CODED: [u8; 8] = [0xb8, 0x3b, 0x53, 0x39, 0xec, 0x32, 0x7d, 0x7f];
    (bytes == CODED).then_some(b":authority".as_slice())
}

fn put_raw_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    put_integer(out, 0x00, 7, bytes.len() as u64);
    out.extend_from_slice(bytes);
    // A raw (not Huffman-coded) string: the reader takes back the bytes.
    debug_assert_eq!(
        string(&out[start..]),
        Some((Some(bytes), out.len() - start))
    );
}

fn put_integer(out: &mut Vec<u8>, high_bits: u8, prefix_bits: u32, value: u64) {
    // The high bits are the representation's, outside the prefix.
    debug_assert_eq!(u64::from(high_bits) & ((1u64 << prefix_bits) - 1), 0);
    let start = out.len();
    let mask = (1u64 << prefix_bits) - 1;
    if value < mask {
        out.push(high_bits | value as u8);
        return;
    }
    out.push(high_bits | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
    debug_assert_eq!(
        integer(&out[start..], prefix_bits),
        Some((value, out.len() - start)),
        "RFC 7541 §5.1: the reader takes back {value}"
    );
}

/// A client connection whose incoming header blocks are rewritten.
#[derive(Debug)]
pub struct AuthorityRewritingStream {
    inner: TcpStream,
    authority: Vec<u8>,
    /// Bytes read from the socket, not yet examined.
    pending: BytesMut,
    /// Bytes examined (and rewritten), ready for the HTTP/2 server.
    ready: BytesMut,
    preface_done: bool,
    /// A header block being collected: the first frame's header fields
    /// (flags, stream id, priority bytes) and the fragments so far.
    block: Option<HeaderBlock>,
    /// Set when the stream stopped looking like HTTP/2: everything is then
    /// passed through unchanged.
    passthrough: bool,
}

#[derive(Debug)]
struct HeaderBlock {
    flags: u8,
    stream_id: [u8; 4],
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
}

impl AuthorityRewritingStream {
    /// Wraps `inner`; every `:authority` becomes `authority`.
    pub fn new(inner: TcpStream, authority: String) -> AuthorityRewritingStream {
        // An empty authority would be no more valid than the client's.
        assert!(!authority.is_empty(), "rewriting to an empty authority");
        AuthorityRewritingStream {
            inner,
            authority: authority.into_bytes(),
            pending: BytesMut::with_capacity(READ_CHUNK_BYTES),
            ready: BytesMut::with_capacity(READ_CHUNK_BYTES),
            preface_done: false,
            block: None,
            passthrough: false,
        }
    }

    /// Moves whatever can be examined from `pending` to `ready`.
    fn process(&mut self) {
        if self.passthrough {
            let all = self.pending.split();
            self.ready.unsplit(all);
            return;
        }
        if !self.preface_done {
            if self.pending.len() < PREFACE_BYTES {
                return;
            }
            let preface = self.pending.split_to(PREFACE_BYTES);
            self.ready.unsplit(preface);
            self.preface_done = true;
        }
        while self.pending.len() >= FRAME_HEADER_BYTES {
            let len = usize::from(self.pending[0]) << 16
                | usize::from(self.pending[1]) << 8
                | usize::from(self.pending[2]);
            if self.pending.len() < FRAME_HEADER_BYTES + len {
                return;
            }
            let kind = self.pending[3];
            let in_block = self.block.is_some();
            if kind != TYPE_HEADERS && !(kind == TYPE_CONTINUATION && in_block) {
                if in_block {
                    // A frame inside a header block is a protocol error;
                    // let the server see the stream as it is.
                    self.give_up();
                    return;
                }
                let frame = self.pending.split_to(FRAME_HEADER_BYTES + len);
                self.ready.unsplit(frame);
                continue;
            }
            let mut frame = self.pending.split_to(FRAME_HEADER_BYTES + len);
            let flags = frame[4];
            let mut stream_id = [0u8; 4];
            stream_id.copy_from_slice(&frame[5..9]);
            frame.advance(FRAME_HEADER_BYTES);
            if kind == TYPE_HEADERS {
                let mut payload = &frame[..];
                let mut padding = 0usize;
                if flags & FLAG_PADDED != 0 {
                    let Some((&pad, rest)) = payload.split_first() else {
                        return self.give_up_with(frame);
                    };
                    padding = usize::from(pad);
                    payload = rest;
                }
                let mut priority = None;
                if flags & FLAG_PRIORITY != 0 {
                    if payload.len() < 5 {
                        return self.give_up_with(frame);
                    }
                    let mut bytes = [0u8; 5];
                    bytes.copy_from_slice(&payload[..5]);
                    priority = Some(bytes);
                    payload = &payload[5..];
                }
                if payload.len() < padding {
                    return self.give_up_with(frame);
                }
                let fragment = &payload[..payload.len() - padding];
                self.block = Some(HeaderBlock {
                    flags,
                    stream_id,
                    priority,
                    fragments: fragment.to_vec(),
                });
            } else if let Some(block) = self.block.as_mut() {
                block.fragments.extend_from_slice(&frame);
            }
            let ended = flags & FLAG_END_HEADERS != 0;
            let too_big = self
                .block
                .as_ref()
                .is_some_and(|b| b.fragments.len() > MAX_HEADER_BLOCK_BYTES);
            if too_big {
                self.give_up();
                return;
            }
            if ended && let Some(block) = self.block.take() {
                self.emit_block(block);
            }
        }
    }

    fn emit_block(&mut self, block: HeaderBlock) {
        let fragments =
            rewrite_header_block(&block.fragments, &self.authority).unwrap_or(block.fragments);
        let mut first = true;
        let mut rest = &fragments[..];
        loop {
            let room = if first && block.priority.is_some() {
                MAX_FRAME_PAYLOAD_BYTES - 5
            } else {
                MAX_FRAME_PAYLOAD_BYTES
            };
            let take = rest.len().min(room);
            let (chunk, after) = rest.split_at(take);
            let last = after.is_empty();
            let (kind, mut flags) = if first {
                let keep = block.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
                (TYPE_HEADERS, keep)
            } else {
                (TYPE_CONTINUATION, 0)
            };
            if last {
                flags |= FLAG_END_HEADERS;
            }
            let priority_len = if first {
                block.priority.map_or(0, |_| 5)
            } else {
                0
            };
            let len = chunk.len() + priority_len;
            // Within the peer's default SETTINGS_MAX_FRAME_SIZE.
            debug_assert!(len <= MAX_FRAME_PAYLOAD_BYTES);
            self.ready.put_u8((len >> 16) as u8);
            self.ready.put_u8((len >> 8) as u8);
            self.ready.put_u8(len as u8);
            self.ready.put_u8(kind);
            self.ready.put_u8(flags);
            self.ready.put_slice(&block.stream_id);
            if first && let Some(priority) = block.priority {
                self.ready.put_slice(&priority);
            }
            self.ready.put_slice(chunk);
            first = false;
            rest = after;
            if last {
                break;
            }
        }
    }

    fn give_up(&mut self) {
        self.passthrough = true;
        let all = self.pending.split();
        self.ready.unsplit(all);
    }

    fn give_up_with(&mut self, frame: BytesMut) {
        // The frame's header was consumed: put it back as it was is not
        // possible cheaply, so the connection is passed through from here
        // with the frame's payload; the server will reject the stream.
        self.passthrough = true;
        self.ready.unsplit(frame);
        let all = self.pending.split();
        self.ready.unsplit(all);
    }
}

impl AsyncRead for AuthorityRewritingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(buf.remaining());
                buf.put_slice(&self.ready[..n]);
                self.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            let this = &mut *self;
            // Straight into `pending`'s spare room: no zeroed scratch
            // buffer and no extra copy per read (a put is a few hundred
            // bytes, so reads are many and small).
            this.pending.reserve(READ_CHUNK_BYTES);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.pending) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(0)) => {
                    // End of stream: hand over anything left as is.
                    this.give_up();
                    if this.ready.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(_)) => this.process(),
            }
        }
    }
}

impl AsyncWrite for AuthorityRewritingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for AuthorityRewritingStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_at_every_prefix() {
        for prefix in [4u32, 5, 6, 7] {
            for value in [
                0u64,
                1,
                14,
                15,
                16,
                30,
                31,
                62,
                63,
                126,
                127,
                128,
                1337,
                1 << 20,
            ] {
                let mut out = Vec::new();
                put_integer(&mut out, 0, prefix, value);
                assert_eq!(
                    integer(&out, prefix),
                    Some((value, out.len())),
                    "{prefix} {value}"
                );
            }
        }
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
    }

    #[test]
    fn the_authority_literal_is_replaced_and_everything_else_kept() {
        let mut block = Vec::new();
        block.push(0x83); // indexed: :method POST... (static 3)
        block.push(0x86); // indexed: :scheme http
        // Literal with incremental indexing, name index 1 (:authority).
        block.push(0x41);
        put_raw_string(&mut block, b"http://127.0.0.1:2379");
        // Literal without indexing, literal name.
        block.push(0x00);
        put_raw_string(&mut block, b"te");
        put_raw_string(&mut block, b"trailers");
        let rewritten = rewrite_header_block(&block, b"127.0.0.1:2379").unwrap();
        let mut expected = vec![0x83, 0x86, 0x41];
        put_raw_string(&mut expected, b"127.0.0.1:2379");
        expected.push(0x00);
        put_raw_string(&mut expected, b"te");
        put_raw_string(&mut expected, b"trailers");
        assert_eq!(rewritten, expected);

        // A literal name ":authority", Huffman-coded, never indexed.
        let mut block = vec![0x10, 0x88, 0xb8, 0x3b, 0x53, 0x39, 0xec, 0x32, 0x7d, 0x7f];
        put_raw_string(&mut block, b"x");
        let rewritten = rewrite_header_block(&block, b"h:1").unwrap();
        let mut expected = vec![0x10, 0x88, 0xb8, 0x3b, 0x53, 0x39, 0xec, 0x32, 0x7d, 0x7f];
        put_raw_string(&mut expected, b"h:1");
        assert_eq!(rewritten, expected);

        // Truncated blocks are refused, never a panic.
        for cut in 0..block.len() {
            let _ = rewrite_header_block(&block[..cut], b"h:1");
        }
        assert!(rewrite_header_block(&[0x41, 0x05, b'a'], b"h:1").is_none());
    }
}
