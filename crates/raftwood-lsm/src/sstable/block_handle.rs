//! A pointer to a block inside an SSTable file.

use super::coding::read_u64_le;

/// Where a block lives: `size_bytes` stored bytes at `offset`, followed by a
/// [`BLOCK_TRAILER_LEN`](super::block_trailer::BLOCK_TRAILER_LEN)-byte trailer
/// that `size_bytes` does not include.
///
/// Encoded as two little-endian `u64`s (16 bytes): offset, then size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct BlockHandle {
    /// Byte offset of the block's first byte in the file.
    pub offset: u64,
    /// Length of the stored (possibly compressed) block, trailer excluded.
    pub size_bytes: u64,
}

impl BlockHandle {
    /// Length of an encoded handle.
    pub const ENCODED_LEN: usize = 16;

    /// Appends the 16-byte encoding.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.size_bytes.to_le_bytes());
    }

    /// Decodes a handle from exactly 16 bytes; `None` for any other length.
    pub fn decode(data: &[u8]) -> Option<BlockHandle> {
        if data.len() != Self::ENCODED_LEN {
            return None;
        }
        Some(BlockHandle {
            offset: read_u64_le(data, 0)?,
            size_bytes: read_u64_le(data, 8)?,
        })
    }

    /// Offset just past the block and its trailer, or `None` on overflow.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size_bytes)?
            .checked_add(super::block_trailer::BLOCK_TRAILER_LEN as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_wrong_lengths() {
        let handle = BlockHandle {
            offset: 0x0102_0304_0506_0708,
            size_bytes: 4096,
        };
        let mut out = Vec::new();
        handle.encode_to(&mut out);
        assert_eq!(out.len(), BlockHandle::ENCODED_LEN);
        assert_eq!(BlockHandle::decode(&out), Some(handle));
        assert_eq!(BlockHandle::decode(&out[..15]), None);
        out.push(0);
        assert_eq!(BlockHandle::decode(&out), None);
        let overflowing = BlockHandle {
            offset: u64::MAX,
            size_bytes: 1,
        };
        assert_eq!(overflowing.end_with_trailer(), None);
    }
}
