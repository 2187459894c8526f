//! [`WriteBatch`]: a group of updates applied atomically, and its encoding,
//! which is also the payload of a WAL record (docs/wal-format.md, "Batch").
//!
//! ```text
//! first_sequence_number u64 | count u32 | flags u8 | [applied_index u64]
//! then `count` operations:
//!   tag u8 (0 delete, 1 put, 2 delete_range)
//!   key_len u32 | key                       (delete)
//!   key_len u32 | key | value_len u32 | value   (put)
//!   start_len u32 | start | end_len u32 | end   (delete_range)
//! ```
//! All integers little-endian. Each operation consumes one sequence number,
//! in order, starting at `first_sequence_number`.

use crate::error::{Error, Result};

const HEADER_LEN: usize = 8 + 4 + 1;
const FLAG_HAS_APPLIED_INDEX: u8 = 1;
const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE_RANGE: u8 = 2;

/// One update inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        /// First deleted key.
        start: &'a [u8],
        /// End of the range, exclusive.
        end: &'a [u8],
    },
}

/// Updates applied atomically by [`Db::write`](crate::Db::write).
#[derive(Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: u32,
    applied_index: Option<u64>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("count", &self.count)
            .field("bytes", &self.rep.len())
            .field("applied_index", &self.applied_index)
            .finish()
    }
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are u32 on disk; `Db::write` rejects anything larger before
    // encoding, via the configured key and value limits (<= 4 GiB).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: Vec::new(),
            count: 0,
            applied_index: None,
        }
    }

    /// An empty batch whose buffer holds `capacity_bytes` of operations
    /// before it grows (see [`WriteBatch::put_size_bytes`]).
    pub fn with_capacity(capacity_bytes: usize) -> Self {
        WriteBatch {
            rep: Vec::with_capacity(capacity_bytes),
            count: 0,
            applied_index: None,
        }
    }

    /// Bytes a put of a `key_len`-byte key and a `value_len`-byte value adds
    /// to a batch: tag, two lengths, key and value.
    pub fn put_size_bytes(key_len: usize, value_len: usize) -> usize {
        1 + 4 + key_len + 4 + value_len
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.rep.push(TAG_PUT);
        put_bytes(&mut self.rep, key.as_ref());
        put_bytes(&mut self.rep, value.as_ref());
        self.count += 1;
        self
    }

    /// Adds a point delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.rep.push(TAG_DELETE);
        put_bytes(&mut self.rep, key.as_ref());
        self.count += 1;
        self
    }

    /// Adds a range delete of `[start, end)`. An empty range (`start >= end`)
    /// is rejected by `Db::write`.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> &mut Self {
        self.rep.push(TAG_DELETE_RANGE);
        put_bytes(&mut self.rep, start.as_ref());
        put_bytes(&mut self.rep, end.as_ref());
        self.count += 1;
        self
    }

    /// Records that this batch applies the caller's log up to `index`
    /// (a Raft applied index). The marker is made durable atomically with
    /// the batch; `Db::applied_index` reports it after reopening.
    pub fn set_applied_index(&mut self, index: u64) -> &mut Self {
        self.applied_index = Some(index);
        self
    }

    /// The applied-index marker, if set.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied_index
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Approximate encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        HEADER_LEN + 8 + self.rep.len()
    }

    /// Removes every operation and the marker.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.applied_index = None;
    }

    /// The operations, in order.
    pub fn ops(&self) -> BatchOps<'_> {
        BatchOps {
            rest: &self.rep,
            remaining: self.count,
        }
    }

    /// Encodes the batch with its first sequence number (a WAL payload).
    pub fn encode(&self, first_sequence_number: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&first_sequence_number.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        match self.applied_index {
            Some(index) => {
                out.push(FLAG_HAS_APPLIED_INDEX);
                out.extend_from_slice(&index.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.rep);
        // `size_bytes` is what the batch and group limits are checked
        // against: it must bound the record actually written.
        assert!(
            out.len() - start <= self.size_bytes(),
            "a batch encodes to more than its size_bytes"
        );
        debug_assert!(
            WriteBatch::decode(&out[start..])
                .is_ok_and(|(batch, seq)| batch == *self && seq == first_sequence_number),
            "a batch's record decodes to the batch"
        );
    }

    /// Decodes a WAL payload, validating every length. Returns the batch and
    /// its first sequence number.
    pub fn decode(encoded: &[u8]) -> Result<(WriteBatch, u64)> {
        let corrupt = |detail: &str| Error::corruption("write batch", detail.to_string());
        let header = encoded
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("shorter than its header"))?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&header[..8]);
        let mut count = [0u8; 4];
        count.copy_from_slice(&header[8..12]);
        let flags = header[12];
        if flags & !FLAG_HAS_APPLIED_INDEX != 0 {
            return Err(corrupt("unknown flag bits"));
        }
        let mut rest = &encoded[HEADER_LEN..];
        let applied_index = if flags & FLAG_HAS_APPLIED_INDEX != 0 {
            let bytes = rest
                .get(..8)
                .ok_or_else(|| corrupt("truncated applied index"))?;
            let mut index = [0u8; 8];
            index.copy_from_slice(bytes);
            rest = &rest[8..];
            Some(u64::from_le_bytes(index))
        } else {
            None
        };
        let batch = WriteBatch {
            rep: rest.to_vec(),
            count: u32::from_le_bytes(count),
            applied_index,
        };
        // Validate every operation now, so that replay never meets a bad one
        // half-way through applying a batch; then nothing may follow them.
        let mut ops = batch.ops();
        for _ in 0..batch.count {
            ops.decode_one()?;
        }
        if !ops.rest.is_empty() {
            return Err(corrupt("trailing bytes after the last operation"));
        }
        Ok((batch, u64::from_le_bytes(seq)))
    }
}

/// Iterator over a batch's operations.
#[derive(Debug)]
pub struct BatchOps<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> BatchOps<'a> {
    fn take_bytes(&mut self) -> Result<&'a [u8]> {
        let corrupt = || Error::corruption("write batch", "truncated operation");
        let len_bytes = self.rest.get(..4).ok_or_else(corrupt)?;
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len) as usize;
        let bytes = self.rest.get(4..4 + len).ok_or_else(corrupt)?;
        self.rest = &self.rest[4 + len..];
        Ok(bytes)
    }

    fn decode_one(&mut self) -> Result<BatchOp<'a>> {
        let (&tag, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| Error::corruption("write batch", "missing operation"))?;
        self.rest = rest;
        match tag {
            TAG_PUT => {
                let key = self.take_bytes()?;
                let value = self.take_bytes()?;
                Ok(BatchOp::Put { key, value })
            }
            TAG_DELETE => Ok(BatchOp::Delete {
                key: self.take_bytes()?,
            }),
            TAG_DELETE_RANGE => {
                let start = self.take_bytes()?;
                let end = self.take_bytes()?;
                Ok(BatchOp::DeleteRange { start, end })
            }
            other => Err(Error::corruption(
                "write batch",
                format!("unknown operation tag {other}"),
            )),
        }
    }
}

impl<'a> Iterator for BatchOps<'a> {
    type Item = Result<BatchOp<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let op = self.decode_one();
        if op.is_err() {
            self.remaining = 0;
        }
        // The count and the operations' bytes agree: `put`, `delete` and
        // `delete_range` add one of each, and `decode` checks a record's.
        debug_assert!(
            op.is_err() || self.remaining > 0 || self.rest.is_empty(),
            "bytes remain after a batch's last operation"
        );
        Some(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_with_marker() {
        let mut batch = WriteBatch::new();
        batch.put(b"a", b"1").delete(b"b").delete_range(b"c", b"f");
        batch.set_applied_index(77);
        let mut encoded = Vec::new();
        batch.encode(100, &mut encoded);
        let (decoded, seq) = WriteBatch::decode(&encoded).unwrap();
        assert_eq!(seq, 100);
        assert_eq!(decoded, batch);
        let ops: Vec<_> = decoded.ops().map(|o| o.unwrap()).collect();
        assert_eq!(
            ops,
            vec![
                BatchOp::Put {
                    key: b"a",
                    value: b"1"
                },
                BatchOp::Delete { key: b"b" },
                BatchOp::DeleteRange {
                    start: b"c",
                    end: b"f"
                },
            ]
        );
    }

    #[test]
    fn truncations_are_corruption() {
        let mut batch = WriteBatch::new();
        batch.put(b"key", b"value").delete(b"x");
        let mut encoded = Vec::new();
        batch.encode(1, &mut encoded);
        for cut in 0..encoded.len() {
            assert!(
                WriteBatch::decode(&encoded[..cut])
                    .unwrap_err()
                    .is_corruption(),
                "cut {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = WriteBatch::decode(&bytes);
        }
    }
}
