//! The `raft-snapshot` file inside every snapshot directory: which log
//! position and membership the state machine's checkpoint stands for.
//!
//! Layout: `[magic "RWSNAP01"][u32 LE length][SnapshotMeta as encoded by
//! raftwood_raft::codec][u32 LE crc32c of the encoded meta]`.

use raftwood_raft::SnapshotMeta;
use raftwood_raft::codec::{decode_snapshot_meta, encode_snapshot_meta};

/// The file's name within a snapshot directory.
pub const META_FILE: &str = "raft-snapshot";
const MAGIC: &[u8; 8] = b"RWSNAP01";

/// Encodes the file's contents.
pub fn encode(meta: &SnapshotMeta) -> Vec<u8> {
    let mut encoded = Vec::new();
    encode_snapshot_meta(meta, &mut encoded);
    let mut out = Vec::with_capacity(encoded.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &raftwood_lsm::length::len_u32(encoded.len(), "snapshot meta").to_le_bytes(),
    );
    out.extend_from_slice(&encoded);
    out.extend_from_slice(&crc32c::crc32c(&encoded).to_le_bytes());
    // The documented layout, and it reads back.
    debug_assert_eq!(out.len(), MAGIC.len() + 4 + encoded.len() + 4);
    debug_assert_eq!(decode(&out).as_ref(), Some(meta));
    out
}

/// Decodes the file's contents; `None` if it is damaged in any way.
pub fn decode(bytes: &[u8]) -> Option<SnapshotMeta> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let encoded = rest.get(4..4 + len)?;
    let crc = u32::from_le_bytes(rest.get(4 + len..8 + len)?.try_into().ok()?);
    if rest.len() != 8 + len || crc32c::crc32c(encoded) != crc {
        return None;
    }
    let (meta, used) = decode_snapshot_meta(encoded).ok()?;
    (used == encoded.len()).then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwood_raft::ConfState;

    #[test]
    fn round_trips_and_refuses_any_damage() {
        let meta = SnapshotMeta {
            index: 42,
            term: 3,
            conf_state: ConfState::with_voters([1, 2, 3]),
        };
        let bytes = encode(&meta);
        assert_eq!(decode(&bytes), Some(meta));
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert_eq!(decode(&flipped), None, "flip at {i}");
            assert_eq!(decode(&bytes[..i]), None, "cut at {i}");
        }
    }
}
