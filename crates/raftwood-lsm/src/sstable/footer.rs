//! The fixed-size footer at the end of every SSTable: where the meta blocks
//! are, which format version wrote the file, and a magic number.
//!
//! ```text
//! offset  size  field
//!      0    16  index block handle          (offset u64 LE, size u64 LE)
//!     16    16  filter block handle         (0, 0) when the table has no filter
//!     32    16  range-deletion block handle
//!     48    16  properties block handle
//!     64     4  format version              u32 LE, currently 1
//!     68     4  crc32c of bytes 0..68       u32 LE
//!     72     8  magic number                u64 LE; the bytes spell "raftwSST"
//! ```
//!
//! A reader checks, in order: the file is at least 80 bytes; the magic
//! matches (otherwise this is not an SSTable: corruption); the version is
//! known (a newer one is `UnsupportedFormatVersion`, checked before the
//! checksum because a newer version may lay the footer out differently); the
//! checksum; and finally that every handle lies before the footer.

use super::block_handle::BlockHandle;
use super::coding::{read_u32_le, read_u64_le};
use crate::error::{Error, Result};

/// Length of the footer in bytes.
pub const FOOTER_LEN: usize = 80;
/// The magic number ending every SSTable.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"raftwSST");
/// The newest (and only) table format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const VERSION_OFFSET: usize = 64;
const CHECKSUM_OFFSET: usize = 68;
const MAGIC_OFFSET: usize = 72;

/// Decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// The index block: one entry per data block.
    pub index: BlockHandle,
    /// The Bloom filter block, if the table has one.
    pub filter: Option<BlockHandle>,
    /// The range-deletion block.
    pub range_deletions: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
}

impl Footer {
    /// The 80-byte encoding.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = Vec::with_capacity(FOOTER_LEN);
        self.index.encode_to(&mut out);
        self.filter.unwrap_or_default().encode_to(&mut out);
        self.range_deletions.encode_to(&mut out);
        self.properties.encode_to(&mut out);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        debug_assert_eq!(out.len(), FOOTER_LEN);
        let mut encoded = [0u8; FOOTER_LEN];
        encoded.copy_from_slice(&out);
        encoded
    }

    /// Decodes and verifies the last `FOOTER_LEN` bytes of a file. Every
    /// handle must end (with its trailer) at or before `data_end`, the offset
    /// where the footer begins. `file` labels errors.
    pub fn decode(data: &[u8], data_end: u64, file: &str) -> Result<Footer> {
        let corrupt = |detail: String| Error::corruption(file, format!("footer: {detail}"));
        if data.len() != FOOTER_LEN {
            return Err(corrupt(format!(
                "{} bytes instead of {FOOTER_LEN}",
                data.len()
            )));
        }
        let magic = read_u64_le(data, MAGIC_OFFSET).unwrap_or_default();
        if magic != TABLE_MAGIC {
            return Err(corrupt(format!("bad magic number {magic:#018x}")));
        }
        let version = read_u32_le(data, VERSION_OFFSET).unwrap_or_default();
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                what: "sstable",
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(corrupt("format version 0".to_string()));
        }
        let recorded_crc = read_u32_le(data, CHECKSUM_OFFSET).unwrap_or_default();
        let actual_crc = crc32c::crc32c(data.get(..CHECKSUM_OFFSET).unwrap_or_default());
        if recorded_crc != actual_crc {
            return Err(corrupt(format!(
                "checksum mismatch (recorded {recorded_crc:#010x}, computed {actual_crc:#010x})"
            )));
        }
        let handle = |index: usize, name: &str| -> Result<BlockHandle> {
            let start = index * BlockHandle::ENCODED_LEN;
            let handle = data
                .get(start..start + BlockHandle::ENCODED_LEN)
                .and_then(BlockHandle::decode)
                .ok_or_else(|| corrupt(format!("unreadable {name} handle")))?;
            if handle.end_with_trailer().is_none_or(|end| end > data_end) {
                return Err(corrupt(format!(
                    "{name} handle {handle:?} extends past the data region ({data_end} bytes)"
                )));
            }
            Ok(handle)
        };
        let filter_raw = data
            .get(16..32)
            .and_then(BlockHandle::decode)
            .unwrap_or_default();
        Ok(Footer {
            index: handle(0, "index")?,
            filter: if filter_raw == BlockHandle::default() {
                None
            } else {
                Some(handle(1, "filter")?)
            },
            range_deletions: handle(2, "range-deletion")?,
            properties: handle(3, "properties")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Footer {
        Footer {
            index: BlockHandle {
                offset: 100,
                size_bytes: 50,
            },
            filter: Some(BlockHandle {
                offset: 10,
                size_bytes: 20,
            }),
            range_deletions: BlockHandle {
                offset: 35,
                size_bytes: 10,
            },
            properties: BlockHandle {
                offset: 50,
                size_bytes: 40,
            },
        }
    }

    #[test]
    fn magic_matches_the_documented_value() {
        assert_eq!(TABLE_MAGIC, 0x5453_5377_7466_6172);
        assert_eq!(&sample().encode()[MAGIC_OFFSET..], b"raftwSST");
    }

    #[test]
    fn round_trips_with_and_without_filter() {
        let footer = sample();
        assert_eq!(Footer::decode(&footer.encode(), 1000, "t").unwrap(), footer);
        let no_filter = Footer {
            filter: None,
            ..footer
        };
        assert_eq!(
            Footer::decode(&no_filter.encode(), 1000, "t").unwrap(),
            no_filter
        );
    }

    #[test]
    fn rejects_bad_magic_version_checksum_and_handles() {
        let encoded = sample().encode();
        let mut bad_magic = encoded;
        bad_magic[79] ^= 1;
        assert!(
            Footer::decode(&bad_magic, 1000, "t")
                .unwrap_err()
                .is_corruption()
        );

        let mut newer = encoded;
        newer[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Footer::decode(&newer, 1000, "t"),
            Err(Error::UnsupportedFormatVersion {
                what: "sstable",
                found: 2,
                supported: 1
            })
        ));

        let mut bad_crc = encoded;
        bad_crc[3] ^= 0x40;
        assert!(
            Footer::decode(&bad_crc, 1000, "t")
                .unwrap_err()
                .is_corruption()
        );

        // The index block (100 + 50 + trailer) does not fit before offset 150.
        assert!(
            Footer::decode(&encoded, 150, "t")
                .unwrap_err()
                .is_corruption()
        );
        assert!(
            Footer::decode(&encoded[1..], 1000, "t")
                .unwrap_err()
                .is_corruption()
        );
    }
}
