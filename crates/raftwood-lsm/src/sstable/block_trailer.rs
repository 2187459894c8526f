//! How a block is framed on disk: optional LZ4 compression, then a 5-byte
//! trailer (compression type byte + CRC-32C).
//!
//! ```text
//! stored block bytes (size given by the block handle)
//!   type 0 (none): the block itself
//!   type 1 (lz4):  uncompressed_len u32 LE | LZ4 block-format data
//! compression type: u8
//! crc32c:           u32 LE over the stored bytes and the type byte
//! ```
//!
//! The checksum covers the stored (compressed) bytes, so corruption is caught
//! before the decompressor ever sees the data.

use crate::error::{Error, Result};
use crate::options::Compression;

use super::coding::read_u32_le;

/// Bytes that follow every stored block.
pub const BLOCK_TRAILER_LEN: usize = 5;

const TYPE_NONE: u8 = 0;
const TYPE_LZ4: u8 = 1;
const LZ4_SIZE_PREFIX_LEN: usize = 4;

/// LZ4 cannot expand data by more than about 255:1; a recorded uncompressed
/// size beyond this bound is corrupt, and rejecting it avoids allocating a
/// buffer of attacker-chosen size.
const LZ4_MAX_EXPANSION: usize = 255;

/// Appends `raw` in its stored form plus trailer to `out` and returns the
/// stored size (what the block handle records). `scratch` is reused
/// compression space.
pub fn append_block(
    out: &mut Vec<u8>,
    raw: &[u8],
    compression: Compression,
    scratch: &mut Vec<u8>,
) -> u64 {
    let start = out.len();
    let mut block_type = TYPE_NONE;
    if compression == Compression::Lz4
        && let Ok(raw_len) = u32::try_from(raw.len())
    {
        scratch.clear();
        scratch.resize(
            LZ4_SIZE_PREFIX_LEN + lz4_flex::block::get_maximum_output_size(raw.len()),
            0,
        );
        scratch[..LZ4_SIZE_PREFIX_LEN].copy_from_slice(&raw_len.to_le_bytes());
        if let Ok(compressed_len) =
            lz4_flex::block::compress_into(raw, &mut scratch[LZ4_SIZE_PREFIX_LEN..])
        {
            let stored_len = LZ4_SIZE_PREFIX_LEN + compressed_len;
            // Compression costs CPU on every read; keep it only when it saves
            // at least an eighth.
            if stored_len <= raw.len() - raw.len() / 8 {
                out.extend_from_slice(&scratch[..stored_len]);
                block_type = TYPE_LZ4;
            }
        }
    }
    if block_type == TYPE_NONE {
        out.extend_from_slice(raw);
    }
    let stored_len = out.len() - start;
    // Compression is kept only where it saves an eighth, and what it
    // keeps decompresses to the block.
    debug_assert!(stored_len <= raw.len());
    debug_assert!(
        block_type != TYPE_LZ4
            || lz4_flex::block::decompress(&out[start + LZ4_SIZE_PREFIX_LEN..], raw.len())
                .is_ok_and(|decompressed| decompressed == raw)
    );
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..]), &[block_type]);
    out.push(block_type);
    out.extend_from_slice(&crc.to_le_bytes());
    stored_len as u64
}

/// Verifies and decodes a block read from disk together with its trailer.
/// `file` and `offset` only label errors.
pub fn decode_stored_block(mut stored: Vec<u8>, file: &str, offset: u64) -> Result<Vec<u8>> {
    let corrupt =
        |detail: String| Error::corruption(file, format!("block at offset {offset}: {detail}"));
    let body_len = stored
        .len()
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or_else(|| corrupt("shorter than its trailer".to_string()))?;
    let block_type = *stored
        .get(body_len)
        .ok_or_else(|| corrupt("missing type byte".to_string()))?;
    let recorded_crc = read_u32_le(&stored, body_len + 1)
        .ok_or_else(|| corrupt("missing checksum".to_string()))?;
    let actual_crc = crc32c::crc32c(stored.get(..body_len + 1).unwrap_or_default());
    if actual_crc != recorded_crc {
        return Err(corrupt(format!(
            "checksum mismatch (recorded {recorded_crc:#010x}, computed {actual_crc:#010x})"
        )));
    }
    match block_type {
        TYPE_NONE => {
            stored.truncate(body_len);
            Ok(stored)
        }
        TYPE_LZ4 => {
            let body = stored.get(..body_len).unwrap_or_default();
            let uncompressed_len = read_u32_le(body, 0)
                .and_then(|len| usize::try_from(len).ok())
                .ok_or_else(|| corrupt("lz4 block lacks its size prefix".to_string()))?;
            let compressed = body.get(LZ4_SIZE_PREFIX_LEN..).unwrap_or_default();
            if uncompressed_len > compressed.len().saturating_mul(LZ4_MAX_EXPANSION) + 64 {
                return Err(corrupt(format!(
                    "lz4 block claims {uncompressed_len} bytes from {} compressed",
                    compressed.len()
                )));
            }
            let mut output = vec![0u8; uncompressed_len];
            match lz4_flex::block::decompress_into(compressed, &mut output) {
                Ok(written) if written == uncompressed_len => Ok(output),
                Ok(written) => Err(corrupt(format!(
                    "lz4 block decompressed to {written} bytes, expected {uncompressed_len}"
                ))),
                Err(error) => Err(corrupt(format!("lz4 decompression failed: {error}"))),
            }
        }
        unknown => Err(corrupt(format!("unknown compression type {unknown}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_blocks_are_compressed_and_round_trip() {
        let raw: Vec<u8> = b"abcdefgh".iter().cycle().take(4096).copied().collect();
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let stored = append_block(&mut out, &raw, Compression::Lz4, &mut scratch);
        assert!(stored < 1000);
        assert_eq!(out.len() as u64, stored + BLOCK_TRAILER_LEN as u64);
        assert_eq!(out[stored as usize], TYPE_LZ4);
        assert_eq!(decode_stored_block(out, "t", 0).unwrap(), raw);
    }

    #[test]
    fn incompressible_blocks_are_stored_raw() {
        // A short pseudo-random sequence does not shrink by an eighth.
        let mut state = 0x1234_5678_u32;
        let raw: Vec<u8> = (0..512)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let mut out = Vec::new();
        let stored = append_block(&mut out, &raw, Compression::Lz4, &mut Vec::new());
        assert_eq!(stored, raw.len() as u64);
        assert_eq!(out[raw.len()], TYPE_NONE);
        assert_eq!(decode_stored_block(out, "t", 0).unwrap(), raw);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let raw: Vec<u8> = b"0123".iter().cycle().take(300).copied().collect();
        for compression in [Compression::None, Compression::Lz4] {
            let mut out = Vec::new();
            append_block(&mut out, &raw, compression, &mut Vec::new());
            for byte in 0..out.len() {
                for bit in 0..8 {
                    let mut damaged = out.clone();
                    damaged[byte] ^= 1 << bit;
                    let error = decode_stored_block(damaged, "t", 7).unwrap_err();
                    assert!(error.is_corruption());
                }
            }
        }
    }

    #[test]
    fn lz4_size_prefix_is_bounded() {
        // A checksummed block that claims an absurd uncompressed size.
        let mut body = u32::MAX.to_le_bytes().to_vec();
        body.extend_from_slice(&[0x10, b'x']);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&body), &[TYPE_LZ4]);
        body.push(TYPE_LZ4);
        body.extend_from_slice(&crc.to_le_bytes());
        assert!(
            decode_stored_block(body, "t", 0)
                .unwrap_err()
                .is_corruption()
        );
    }
}
