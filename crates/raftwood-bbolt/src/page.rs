//! A bbolt page: the 16-byte header every page starts with, the element
//! arrays of branch and leaf pages, and bounds-checked access to a page read
//! from a file. Integers are little-endian, as bbolt writes them on every
//! platform etcd ships for (it writes native-endian structs).
//!
//! ```text
//! page header (16 bytes)       leaf element (16 bytes)     branch element (16 bytes)
//!   0  id        u64             0  flags  u32               0  pos   u32
//!   8  flags     u16             4  pos    u32               4  ksize u32
//!  10  count     u16             8  ksize  u32               8  pgid  u64
//!  12  overflow  u32            12  vsize  u32
//! ```
//!
//! `pos` is the distance from the element's own first byte to its key; the
//! value follows the key.

use crate::error::{Error, Result};

/// Bytes in a page header.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Bytes in a branch or a leaf element (both are 16).
pub const ELEMENT_SIZE: usize = 16;

/// Page flag: a branch page of a bucket's tree.
pub const BRANCH_PAGE: u16 = 0x01;
/// Page flag: a leaf page of a bucket's tree.
pub const LEAF_PAGE: u16 = 0x02;
/// Page flag: one of the two meta pages.
pub const META_PAGE: u16 = 0x04;
/// Page flag: the freelist page.
pub const FREELIST_PAGE: u16 = 0x10;

/// Leaf element flag: the value is a bucket header (a nested bucket).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// The longest key bbolt accepts.
pub const MAX_KEY_SIZE: usize = 32_768;
/// The longest value bbolt accepts.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;

/// A page's `count` is a u16 and bbolt reserves 0xFFFF (the freelist uses it
/// as an escape), so a branch or leaf page holds fewer elements than this.
pub const MAX_ELEMENTS_PER_PAGE: usize = 0xFFFF;

/// The fixed header at the start of every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's own id (0 in an inline bucket's page).
    pub id: u64,
    /// One of the `*_PAGE` flags.
    pub flags: u16,
    /// Elements in a branch or leaf page; ids in a freelist page.
    pub count: u16,
    /// Pages following this one that belong to it.
    pub overflow: u32,
}

impl PageHeader {
    /// Writes the header into the first 16 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.flags.to_le_bytes());
        out[10..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }

    /// Reads a header.
    pub fn decode(bytes: &[u8; PAGE_HEADER_SIZE]) -> PageHeader {
        let [id @ .., f0, f1, c0, c1, o0, o1, o2, o3] = *bytes;
        let id: [u8; 8] = id;
        PageHeader {
            id: u64::from_le_bytes(id),
            flags: u16::from_le_bytes([f0, f1]),
            count: u16::from_le_bytes([c0, c1]),
            overflow: u32::from_le_bytes([o0, o1, o2, o3]),
        }
    }
}

/// A leaf element, resolved to its key and value.
#[derive(Debug, Clone, Copy)]
pub struct LeafElement<'p> {
    /// `BUCKET_LEAF_FLAG` or 0.
    pub flags: u32,
    /// The key.
    pub key: &'p [u8],
    /// The value (a bucket header when `flags` says so).
    pub value: &'p [u8],
}

/// A branch element: the first key of a child page, and the child.
#[derive(Debug, Clone, Copy)]
pub struct BranchElement<'p> {
    /// The smallest key under the child (when bbolt wrote it).
    pub key: &'p [u8],
    /// The child page id.
    pub child: u64,
}

/// A branch or leaf page held in memory, overflow pages included; or an
/// inline bucket's page, whose bytes end where the bucket value ends.
#[derive(Debug, Clone)]
pub struct Page {
    /// Where it was read (0 for an inline page, as bbolt reports it).
    pub id: u64,
    header: PageHeader,
    bytes: Vec<u8>,
}

impl Page {
    /// Wraps the bytes of a page whose header `from_bytes` checks: it must
    /// be a branch or a leaf page. The id in the header is not checked here
    /// (inline pages carry 0).
    pub fn from_bytes(id: u64, bytes: Vec<u8>) -> Result<Page> {
        let header = bytes
            .first_chunk::<PAGE_HEADER_SIZE>()
            .map(PageHeader::decode)
            .ok_or(Error::ShortPage {
                page: id,
                len: bytes.len(),
            })?;
        if header.flags != BRANCH_PAGE && header.flags != LEAF_PAGE {
            return Err(Error::WrongPageType {
                page: id,
                flags: header.flags,
                expected: "branch or leaf",
            });
        }
        Ok(Page { id, header, bytes })
    }

    /// The page's header.
    pub fn header(&self) -> PageHeader {
        self.header
    }

    /// Whether this is a leaf page (otherwise a branch page).
    pub fn is_leaf(&self) -> bool {
        self.header.flags == LEAF_PAGE
    }

    /// Elements in the page.
    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    /// The leaf element at `index`, checked to lie inside the page.
    pub fn leaf_element(&self, index: usize) -> Result<LeafElement<'_>> {
        let out_of_bounds = Error::ElementOutOfBounds {
            page: self.id,
            index,
        };
        let at = element_offset(index);
        let (Some(flags), Some(pos), Some(ksize), Some(vsize)) = (
            read_u32(&self.bytes, at),
            read_u32(&self.bytes, at + 4),
            read_u32(&self.bytes, at + 8),
            read_u32(&self.bytes, at + 12),
        ) else {
            return Err(out_of_bounds);
        };
        let key_start = at as u64 + u64::from(pos);
        let key_end = key_start + u64::from(ksize);
        let value_end = key_end + u64::from(vsize);
        if value_end > self.bytes.len() as u64 {
            return Err(out_of_bounds);
        }
        // In bounds of a Vec, so every offset fits in usize.
        let (key_start, key_end, value_end) =
            (key_start as usize, key_end as usize, value_end as usize);
        Ok(LeafElement {
            flags,
            key: &self.bytes[key_start..key_end],
            value: &self.bytes[key_end..value_end],
        })
    }

    /// The branch element at `index`, checked to lie inside the page.
    pub fn branch_element(&self, index: usize) -> Result<BranchElement<'_>> {
        let out_of_bounds = Error::ElementOutOfBounds {
            page: self.id,
            index,
        };
        let at = element_offset(index);
        let (Some(pos), Some(ksize), Some(child)) = (
            read_u32(&self.bytes, at),
            read_u32(&self.bytes, at + 4),
            read_u64(&self.bytes, at + 8),
        ) else {
            return Err(out_of_bounds);
        };
        let key_start = at as u64 + u64::from(pos);
        let key_end = key_start + u64::from(ksize);
        if key_end > self.bytes.len() as u64 {
            return Err(out_of_bounds);
        }
        Ok(BranchElement {
            key: &self.bytes[key_start as usize..key_end as usize],
            child,
        })
    }
}

/// Where element `index` starts in its page.
pub fn element_offset(index: usize) -> usize {
    PAGE_HEADER_SIZE + index * ELEMENT_SIZE
}

/// Reads a little-endian u32 at `at`; `None` past the end.
pub fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian u64 at `at`; `None` past the end.
pub fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}
