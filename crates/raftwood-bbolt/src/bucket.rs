//! The value of a leaf element flagged as a bucket: a 16-byte bucket header
//! (root page id, sequence), followed, when the root is 0, by the bucket's
//! whole tree as one inline leaf page.
//!
//! ```text
//!  0  root      u64   page id of the bucket's root page; 0 = inline
//!  8  sequence  u64   the bucket's NextSequence counter
//! 16  [inline page: page header + leaf elements + keys/values]
//! ```

use crate::error::{Error, Result};
use crate::page::read_u64;

/// Bytes in a bucket header.
pub const BUCKET_HEADER_SIZE: usize = 16;

/// Where a bucket's tree lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRoot {
    /// The root page of a tree of pages.
    Page(u64),
    /// The bytes of an inline leaf page (header included), stored in the
    /// parent's leaf after the bucket header.
    Inline(Vec<u8>),
}

/// A bucket found in a file: where its tree is, and its sequence counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its tree.
    pub root: BucketRoot,
    /// bbolt's `Bucket.Sequence()`.
    pub sequence: u64,
    /// How many buckets enclose it (0 for the root bucket).
    pub depth: usize,
}

impl Bucket {
    /// Parses the value of a bucket element named `name` at nesting `depth`.
    pub fn decode(name: &[u8], value: &[u8], depth: usize) -> Result<Bucket> {
        let bad = |detail| Error::BadBucketValue {
            name: String::from_utf8_lossy(name).into_owned(),
            detail,
        };
        let (Some(root), Some(sequence)) = (read_u64(value, 0), read_u64(value, 8)) else {
            return Err(bad("shorter than a bucket header"));
        };
        let root = if root == 0 {
            BucketRoot::Inline(value[BUCKET_HEADER_SIZE..].to_vec())
        } else {
            BucketRoot::Page(root)
        };
        Ok(Bucket {
            root,
            sequence,
            depth,
        })
    }
}

/// Encodes a bucket header.
pub fn encode_header(root: u64, sequence: u64) -> [u8; BUCKET_HEADER_SIZE] {
    let mut out = [0; BUCKET_HEADER_SIZE];
    out[0..8].copy_from_slice(&root.to_le_bytes());
    out[8..16].copy_from_slice(&sequence.to_le_bytes());
    out
}
