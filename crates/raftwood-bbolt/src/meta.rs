//! The meta page: pages 0 and 1 each hold one, and a reader trusts the valid
//! one with the higher transaction id (bbolt writes them alternately, so a
//! torn write leaves the other intact).
//!
//! ```text
//! page header (16 bytes, flags = META_PAGE), then at offset 16:
//!  0  magic      u32   0xED0CDAED
//!  4  version    u32   2
//!  8  page_size  u32
//! 12  flags      u32   0
//! 16  root       u64   root bucket: root page id
//! 24  sequence   u64   root bucket: sequence
//! 32  freelist   u64   freelist page id, or u64::MAX when not kept
//! 40  pgid       u64   high-water mark: pages in use are below it
//! 48  txid       u64
//! 56  checksum   u64   FNV-64a of bytes 0..56
//! ```

use crate::checksum::fnv64a;
use crate::error::{Error, Result};
use crate::page::{META_PAGE, PAGE_HEADER_SIZE, PageHeader, read_u32, read_u64};

/// bbolt's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file format version bbolt has.
pub const VERSION: u32 = 2;
/// `freelist` when the database does not keep its freelist on disk.
pub const NO_FREELIST: u64 = u64::MAX;
/// Bytes of the meta structure (after the page header).
pub const META_SIZE: usize = 64;
/// The checksum covers everything before it.
const CHECKSUMMED: usize = 56;
/// The smallest and largest page sizes the reader accepts.
pub const MIN_PAGE_SIZE: u32 = 512;
/// See [`MIN_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: u32 = 65_536;

/// The contents of a meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per page.
    pub page_size: u32,
    /// Unused by bbolt; kept as read.
    pub flags: u32,
    /// The root bucket's root page.
    pub root: u64,
    /// The root bucket's sequence.
    pub root_sequence: u64,
    /// The freelist page, or [`NO_FREELIST`].
    pub freelist: u64,
    /// The high-water mark: every page in use has a smaller id.
    pub high_water: u64,
    /// The transaction that wrote this meta.
    pub txid: u64,
}

impl Meta {
    /// The whole meta page (`page_size` bytes) for meta page `page_id`.
    pub fn encode_page(&self, page_id: u64) -> Vec<u8> {
        let mut page = vec![0; self.page_size as usize];
        PageHeader {
            id: page_id,
            flags: META_PAGE,
            count: 0,
            overflow: 0,
        }
        .encode(&mut page);
        let meta = &mut page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE];
        meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
        meta[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        meta[12..16].copy_from_slice(&self.flags.to_le_bytes());
        meta[16..24].copy_from_slice(&self.root.to_le_bytes());
        meta[24..32].copy_from_slice(&self.root_sequence.to_le_bytes());
        meta[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        meta[40..48].copy_from_slice(&self.high_water.to_le_bytes());
        meta[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let checksum = fnv64a(&meta[..CHECKSUMMED]);
        meta[56..64].copy_from_slice(&checksum.to_le_bytes());
        page
    }

    /// Parses and validates the meta of page `page_id` from `page` (at
    /// least the page header and the meta structure). Checks what bbolt's
    /// `meta.validate` checks (magic, version, checksum — where bbolt, for
    /// files from before checksums, accepts a zero checksum, so does this),
    /// plus a page size this crate can read.
    pub fn decode_page(page_id: u64, page: &[u8]) -> Result<Meta> {
        let meta = page
            .get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE)
            .ok_or(Error::Truncated {
                needed: (PAGE_HEADER_SIZE + META_SIZE) as u64,
                len: page.len() as u64,
            })?;
        let field32 = |at| read_u32(meta, at).unwrap_or_default();
        let field64 = |at| read_u64(meta, at).unwrap_or_default();
        let magic = field32(0);
        if magic != MAGIC {
            return Err(Error::BadMagic {
                page: page_id,
                found: magic,
            });
        }
        let version = field32(4);
        if version != VERSION {
            return Err(Error::BadVersion {
                page: page_id,
                found: version,
            });
        }
        let stored = field64(56);
        let computed = fnv64a(&meta[..CHECKSUMMED]);
        if stored != 0 && stored != computed {
            return Err(Error::BadChecksum {
                page: page_id,
                stored,
                computed,
            });
        }
        let page_size = field32(8);
        if !page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(Error::BadPageSize {
                page: page_id,
                size: page_size,
            });
        }
        Ok(Meta {
            page_size,
            flags: field32(12),
            root: field64(16),
            root_sequence: field64(24),
            freelist: field64(32),
            high_water: field64(40),
            txid: field64(48),
        })
    }

    /// Checks that the layout the meta describes is possible: data pages
    /// start at 2 and lie below the high-water mark.
    pub fn check_layout(&self, page_id: u64) -> Result<()> {
        let bad = |detail| {
            Err(Error::BadMeta {
                page: page_id,
                detail,
            })
        };
        if self.high_water < 3 {
            return bad("high-water mark below the first data page");
        }
        if self.root < 2 || self.root >= self.high_water {
            return bad("root page outside the data pages");
        }
        if self.freelist != NO_FREELIST && (self.freelist < 2 || self.freelist >= self.high_water) {
            return bad("freelist page outside the data pages");
        }
        Ok(())
    }

    /// Bytes of bbolt data the meta describes: every page below the
    /// high-water mark. `None` when that overflows.
    pub fn data_len(&self) -> Option<u64> {
        self.high_water.checked_mul(u64::from(self.page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            page_size: 4096,
            flags: 0,
            root: 3,
            root_sequence: 0,
            freelist: 2,
            high_water: 4,
            txid: 7,
        }
    }

    #[test]
    fn round_trips() {
        let page = sample().encode_page(1);
        assert_eq!(Meta::decode_page(1, &page).unwrap(), sample());
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut page = sample().encode_page(1);
        page[PAGE_HEADER_SIZE + 48] ^= 1;
        assert!(matches!(
            Meta::decode_page(1, &page),
            Err(Error::BadChecksum { page: 1, .. })
        ));
    }

    #[test]
    fn bad_magic_and_version_are_named() {
        let mut page = sample().encode_page(0);
        page[PAGE_HEADER_SIZE] ^= 1;
        assert!(matches!(
            Meta::decode_page(0, &page),
            Err(Error::BadMagic { .. })
        ));
        let mut page = sample().encode_page(0);
        page[PAGE_HEADER_SIZE + 4] = 3;
        assert!(matches!(
            Meta::decode_page(0, &page),
            Err(Error::BadVersion { found: 3, .. })
        ));
    }
}
