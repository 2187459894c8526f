//! Sorted String Tables: immutable, checksummed files of sorted internal
//! entries, the on-disk unit of the LSM tree.
//!
//! The byte-level format is specified in `docs/sstable-format.md`; each
//! submodule's documentation repeats the part it implements.
//!
//! File layout:
//!
//! ```text
//! data block 0 | ... | data block n-1 | filter block | range-deletion block |
//! properties block | index block | footer (80 bytes)
//! ```
//!
//! Every block is followed by a 5-byte trailer (compression type + CRC-32C).
//!
//! Writing: [`TableBuilder`]. Reading: [`Table`] (point lookups and metadata)
//! and [`TableIterator`] (ordered scans). Decoded blocks are shared through
//! the [`BlockCache`](crate::cache::BlockCache).
//!
//! Architecture invariant: nothing read from a file is trusted before its
//! checksum passes, and even then decoding uses checked slicing only, so a
//! damaged file yields `Error::Corruption`, never a panic or wrong data.

mod block;
mod block_handle;
mod block_trailer;
mod bloom;
mod coding;
mod footer;
mod properties;
mod range_tombstones;
mod table_builder;
mod table_iterator;
mod table_reader;
mod table_writer;

#[cfg(test)]
mod tests;

pub use block::{Block, BlockBuilder, BlockIterator, WeakBlock};
pub use block_handle::BlockHandle;
pub use bloom::{BloomFilter, BloomFilterBuilder, bloom_hash};
pub use footer::{FOOTER_LEN, FORMAT_VERSION, Footer, TABLE_MAGIC};
pub use properties::TableProperties;
pub use table_builder::TableBuilder;
pub use table_iterator::TableIterator;
pub use table_reader::Table;
pub use table_writer::TableWriter;

/// What [`TableBuilder::finish`] reports about the table it wrote; the
/// manifest records this.
///
/// Key bounds cover range tombstones as well as point entries:
/// `smallest_key` is the smaller of the first point key and, for each
/// tombstone, `(start, sequence_number, Deletion)`; `largest_key` is the
/// larger of the last point key and, for each tombstone, the sentinel
/// `(end, MAX_SEQUENCE_NUMBER, Value)`. The sentinel sorts before every real
/// entry of user key `end`, matching the tombstone's exclusive end, but it is
/// not itself an entry of the table. A table with neither entries nor
/// tombstones has empty bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// Size of the finished file.
    pub file_size_bytes: u64,
    /// Point entries (values and point deletions).
    pub num_entries: u64,
    /// Range tombstones.
    pub num_range_tombstones: u64,
    /// Lower bound (internal key); see the type's documentation.
    pub smallest_key: Vec<u8>,
    /// Upper bound (internal key); see the type's documentation.
    pub largest_key: Vec<u8>,
    /// Smallest sequence number of any entry or tombstone.
    pub smallest_sequence_number: u64,
    /// Largest sequence number of any entry or tombstone.
    pub largest_sequence_number: u64,
}

/// Fuzzing entry point: decodes arbitrary bytes as a block and walks it in
/// every direction. Must return (possibly with errors) and never panic.
#[doc(hidden)]
pub fn fuzz_decode_block(data: &[u8]) {
    use crate::iterator::InternalIterator;

    let Ok(block) = Block::new(data.to_vec()) else {
        return;
    };
    let mut iter = block.iter();
    // A well-formed block has fewer entries than bytes; the bound keeps a
    // malformed one from looping long.
    let step_limit = data.len() + 1;
    if iter.seek_to_first().is_ok() {
        let mut steps = 0;
        while iter.valid() && steps < step_limit {
            let _ = (iter.key(), iter.value());
            if iter.next().is_err() {
                break;
            }
            steps += 1;
        }
    }
    if iter.seek_to_last().is_ok() {
        let mut steps = 0;
        while iter.valid() && steps < step_limit {
            if iter.prev().is_err() {
                break;
            }
            steps += 1;
        }
    }
    let target = crate::key::internal_key(
        data.get(..4).unwrap_or_default(),
        7,
        crate::key::ValueKind::Value,
    );
    let _ = iter.seek(&target);
    let _ = iter.seek_for_prev(&target);
}

/// Fuzzing entry point: decodes arbitrary bytes as a footer (of a file whose
/// data region is `data.len()` bytes long). Must never panic.
#[doc(hidden)]
pub fn fuzz_decode_footer(data: &[u8]) {
    let _ = Footer::decode(data, data.len() as u64, "fuzz");
}
