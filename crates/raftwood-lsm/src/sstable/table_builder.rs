//! Writes an SSTable: data blocks as keys arrive, then the filter,
//! range-deletion, properties and index blocks, then the footer.
//! The format is specified in `docs/sstable-format.md`.

use std::cmp::Ordering;

use super::TableSummary;
use super::block::BlockBuilder;
use super::block_handle::BlockHandle;
use super::block_trailer::{BLOCK_TRAILER_LEN, append_block};
use super::bloom::BloomFilterBuilder;
use super::footer::{FOOTER_LEN, Footer};
use super::properties::TableProperties;
use super::range_tombstones;
use crate::error::{Error, Result};
use crate::fs::WritableFile;
use crate::key::{
    self, MAX_SEQUENCE_NUMBER, RangeTombstone, ValueKind, compare_internal_keys, parse_internal_key,
};
use crate::options::{Compression, TableOptions};

/// Encoded bytes are handed to the file in chunks at least this large:
/// `WritableFile::append` goes straight to the operating system.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Blocks are cut at most at this size whatever the options say, which with
/// the per-entry limit below keeps every in-block offset within a `u32`.
const MAX_BLOCK_SIZE_BYTES: usize = 1 << 30;

/// Keys and values must each be shorter than this.
const MAX_ENTRY_PART_BYTES: usize = 1 << 31;

/// Builds one SSTable file. Keys must be added in strictly increasing
/// `compare_internal_keys` order.
#[derive(Debug)]
pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    block_size_bytes: usize,
    compression: Compression,
    /// Encoded blocks not yet appended to `file`.
    /// Invariant: shorter than `WRITE_CHUNK_BYTES` between calls.
    pending_output: Vec<u8>,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    /// The handle of the last flushed data block, whose index entry waits
    /// for the next key so its separator can be shortened.
    pending_index_handle: Option<BlockHandle>,
    /// The last key added. Invariant: strictly increasing across `add`s.
    last_key: Vec<u8>,
    filter: Option<BloomFilterBuilder>,
    range_tombstones: Vec<RangeTombstone>,
    /// Counters and bounds of point entries (bounds are widened by range
    /// tombstones in `finish`).
    properties: TableProperties,
    compression_scratch: Vec<u8>,
    separator_scratch: Vec<u8>,
    handle_scratch: Vec<u8>,
    /// Set when a write fails or an argument is rejected in a method that
    /// cannot return it; every later call (and `finish`) fails.
    deferred_error: Option<String>,
}

impl TableBuilder {
    /// A builder that writes to `file` (normally newly created and empty).
    pub fn new(file: Box<dyn WritableFile>, options: &TableOptions) -> TableBuilder {
        TableBuilder {
            file,
            block_size_bytes: options.block_size_bytes.clamp(1, MAX_BLOCK_SIZE_BYTES),
            compression: options.compression,
            pending_output: Vec::with_capacity(WRITE_CHUNK_BYTES * 2),
            data_block: BlockBuilder::new(options.block_restart_interval),
            index_block: BlockBuilder::new(options.index_block_restart_interval),
            pending_index_handle: None,
            last_key: Vec::new(),
            filter: (options.bloom_bits_per_key > 0)
                .then(|| BloomFilterBuilder::new(options.bloom_bits_per_key)),
            range_tombstones: Vec::new(),
            properties: TableProperties::default(),
            compression_scratch: Vec::new(),
            separator_scratch: Vec::new(),
            handle_scratch: Vec::with_capacity(BlockHandle::ENCODED_LEN),
            deferred_error: None,
        }
    }

    /// Adds an entry. Keys must be strictly increasing under
    /// `compare_internal_keys` (asserted in debug builds; an
    /// `InvalidArgument` error otherwise).
    pub fn add(&mut self, internal_key: &[u8], value: &[u8]) -> Result<()> {
        self.check_not_failed()?;
        let parsed = parse_internal_key(internal_key)
            .map_err(|_| Error::InvalidArgument("table key is not an internal key".to_string()))?;
        if internal_key.len() >= MAX_ENTRY_PART_BYTES || value.len() >= MAX_ENTRY_PART_BYTES {
            return Err(Error::InvalidArgument(format!(
                "table entry of {} key bytes and {} value bytes exceeds the 2 GiB limit",
                internal_key.len(),
                value.len()
            )));
        }
        let is_first = self.properties.num_entries == 0;
        if !is_first {
            let ordered = compare_internal_keys(&self.last_key, internal_key) == Ordering::Less;
            debug_assert!(ordered, "table keys must be strictly increasing");
            if !ordered {
                return Err(Error::InvalidArgument(
                    "table keys must be added in strictly increasing order".to_string(),
                ));
            }
        }

        if let Some(handle) = self.pending_index_handle.take() {
            shortest_separator(&self.last_key, internal_key, &mut self.separator_scratch);
            self.add_index_entry(handle);
        }
        if let Some(filter) = &mut self.filter
            && (is_first || key::user_key(&self.last_key) != parsed.user_key)
        {
            filter.add_user_key(parsed.user_key);
        }
        self.data_block.add(internal_key, value);

        let properties = &mut self.properties;
        if is_first {
            properties.smallest_key = internal_key.to_vec();
            properties.smallest_sequence_number = parsed.sequence_number;
            properties.largest_sequence_number = parsed.sequence_number;
        }
        properties.num_entries += 1;
        if parsed.kind == ValueKind::Deletion {
            properties.num_deletions += 1;
        }
        properties.smallest_sequence_number = properties
            .smallest_sequence_number
            .min(parsed.sequence_number);
        properties.largest_sequence_number = properties
            .largest_sequence_number
            .max(parsed.sequence_number);
        properties.raw_key_bytes += internal_key.len() as u64;
        properties.raw_value_bytes += value.len() as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(internal_key);

        if self.data_block.estimated_size_bytes() >= self.block_size_bytes {
            self.flush_data_block()?;
        }
        debug_assert!(self.pending_output.len() < WRITE_CHUNK_BYTES);
        Ok(())
    }

    /// Records a range tombstone. A tombstone whose range is empty
    /// (`start >= end`) deletes nothing and is dropped. A sequence number
    /// above `MAX_SEQUENCE_NUMBER` makes `finish` fail.
    pub fn add_range_tombstone(&mut self, tombstone: &RangeTombstone) {
        if tombstone.sequence_number > MAX_SEQUENCE_NUMBER
            || tombstone.start.len() >= MAX_ENTRY_PART_BYTES
            || tombstone.end.len() >= MAX_ENTRY_PART_BYTES
        {
            self.deferred_error
                .get_or_insert_with(|| format!("invalid range tombstone {tombstone:?}"));
            return;
        }
        if tombstone.start < tombstone.end {
            self.range_tombstones.push(tombstone.clone());
        }
    }

    /// Bytes written so far plus the open data block: what the file would
    /// roughly measure if finished now (meta blocks excluded).
    pub fn estimated_file_size_bytes(&self) -> u64 {
        self.current_offset() + self.data_block.estimated_size_bytes() as u64
    }

    /// Point entries added so far.
    pub fn num_entries(&self) -> u64 {
        self.properties.num_entries
    }

    /// Writes the remaining data block and the filter, range-deletion,
    /// properties and index blocks and the footer, then syncs the file's data.
    /// The caller syncs the directory entry.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.check_not_failed()?;
        self.flush_data_block()?;
        if let Some(handle) = self.pending_index_handle.take() {
            short_successor(&self.last_key, &mut self.separator_scratch);
            self.add_index_entry(handle);
        }

        let filter_handle = match self.filter.take() {
            Some(filter) => {
                // One hash per distinct user key.
                debug_assert!(filter.num_keys() as u64 <= self.properties.num_entries);
                // Filter bits look random; compressing them would not pay.
                let contents = filter.finish();
                Some(self.write_block(&contents, Compression::None)?)
            }
            None => None,
        };

        range_tombstones::sort_for_block(&mut self.range_tombstones);
        let range_deletion_contents = range_tombstones::encode(&self.range_tombstones);
        let range_deletions_handle =
            self.write_block(&range_deletion_contents, self.compression)?;

        self.widen_bounds_for_range_tombstones();
        let properties_contents = self.properties.encode();
        // Nothing is written that a reader refuses or reads differently.
        debug_assert_eq!(
            TableProperties::decode(&properties_contents, "properties being written").ok(),
            Some(self.properties.clone())
        );
        let properties_handle = self.write_block(&properties_contents, Compression::None)?;

        let index_handle = {
            let start = self.current_offset();
            let raw = self.index_block.finish();
            let stored = append_block(
                &mut self.pending_output,
                raw,
                self.compression,
                &mut self.compression_scratch,
            );
            BlockHandle {
                offset: start,
                size_bytes: stored,
            }
        };

        let footer = Footer {
            index: index_handle,
            filter: filter_handle,
            range_deletions: range_deletions_handle,
            properties: properties_handle,
        };
        let encoded_footer = footer.encode();
        // Every handle lies before the footer, and none is the all-zero
        // one that stands for "no filter".
        debug_assert_eq!(
            Footer::decode(
                &encoded_footer,
                self.current_offset(),
                "footer being written"
            )
            .ok(),
            Some(footer)
        );
        self.pending_output.extend_from_slice(&encoded_footer);
        self.write_pending_output()?;
        self.file.sync_data()?;
        // The footer's handles describe the file just written: the index
        // block and its trailer end where the footer starts.
        assert_eq!(
            self.file.len(),
            index_handle.offset + index_handle.size_bytes + (BLOCK_TRAILER_LEN + FOOTER_LEN) as u64,
            "the table's blocks and footer do not account for its bytes"
        );

        let properties = &self.properties;
        debug_assert_eq!(
            properties.num_data_blocks == 0,
            properties.num_entries == 0,
            "data blocks without entries, or entries without data blocks"
        );
        debug_assert!(properties.smallest_sequence_number <= properties.largest_sequence_number);
        debug_assert!(
            properties.is_empty()
                || compare_internal_keys(&properties.smallest_key, &properties.largest_key)
                    != Ordering::Greater
        );
        Ok(TableSummary {
            file_size_bytes: self.file.len(),
            num_entries: properties.num_entries,
            num_range_tombstones: properties.num_range_tombstones,
            smallest_key: properties.smallest_key.clone(),
            largest_key: properties.largest_key.clone(),
            smallest_sequence_number: properties.smallest_sequence_number,
            largest_sequence_number: properties.largest_sequence_number,
        })
    }

    fn check_not_failed(&self) -> Result<()> {
        match &self.deferred_error {
            Some(reason) => Err(Error::InvalidArgument(format!(
                "table builder is unusable after an earlier error: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Offset in the file at which the next byte will land.
    fn current_offset(&self) -> u64 {
        self.file.len() + self.pending_output.len() as u64
    }

    fn add_index_entry(&mut self, handle: BlockHandle) {
        self.handle_scratch.clear();
        handle.encode_to(&mut self.handle_scratch);
        self.index_block
            .add(&self.separator_scratch, &self.handle_scratch);
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        debug_assert!(self.pending_index_handle.is_none());
        let start = self.current_offset();
        let raw = self.data_block.finish();
        let stored = append_block(
            &mut self.pending_output,
            raw,
            self.compression,
            &mut self.compression_scratch,
        );
        self.data_block.reset();
        debug_assert_eq!(
            self.current_offset(),
            start + stored + BLOCK_TRAILER_LEN as u64
        );
        self.pending_index_handle = Some(BlockHandle {
            offset: start,
            size_bytes: stored,
        });
        self.properties.num_data_blocks += 1;
        if self.pending_output.len() >= WRITE_CHUNK_BYTES {
            self.write_pending_output()?;
        }
        Ok(())
    }

    fn write_block(&mut self, contents: &[u8], compression: Compression) -> Result<BlockHandle> {
        let start = self.current_offset();
        let stored = append_block(
            &mut self.pending_output,
            contents,
            compression,
            &mut self.compression_scratch,
        );
        debug_assert_eq!(
            self.current_offset(),
            start + stored + BLOCK_TRAILER_LEN as u64
        );
        if self.pending_output.len() >= WRITE_CHUNK_BYTES {
            self.write_pending_output()?;
        }
        Ok(BlockHandle {
            offset: start,
            size_bytes: stored,
        })
    }

    fn write_pending_output(&mut self) -> Result<()> {
        if self.pending_output.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.file.append(&self.pending_output) {
            // What reached the file is unknown: refuse to continue.
            self.deferred_error = Some(format!("append failed: {error}"));
            return Err(error);
        }
        self.pending_output.clear();
        Ok(())
    }

    /// Extends the key and sequence bounds over the range tombstones: the
    /// lower bound by `(start, sequence_number, Deletion)`, the upper bound
    /// by the sentinel `(end, MAX_SEQUENCE_NUMBER, Value)`, which sorts before
    /// every real entry of user key `end` (the tombstone's end is exclusive).
    fn widen_bounds_for_range_tombstones(&mut self) {
        let properties = &mut self.properties;
        properties.num_range_tombstones = self.range_tombstones.len() as u64;
        if properties.num_entries > 0 {
            properties.largest_key = self.last_key.clone();
        }
        let mut have_bounds = properties.num_entries > 0;
        for tombstone in &self.range_tombstones {
            let lower = key::internal_key(
                &tombstone.start,
                tombstone.sequence_number,
                ValueKind::Deletion,
            );
            let upper = key::internal_key(&tombstone.end, MAX_SEQUENCE_NUMBER, ValueKind::Value);
            if !have_bounds {
                properties.smallest_key = lower;
                properties.largest_key = upper;
                properties.smallest_sequence_number = tombstone.sequence_number;
                properties.largest_sequence_number = tombstone.sequence_number;
                have_bounds = true;
                continue;
            }
            if compare_internal_keys(&lower, &properties.smallest_key) == Ordering::Less {
                properties.smallest_key = lower;
            }
            if compare_internal_keys(&upper, &properties.largest_key) == Ordering::Greater {
                properties.largest_key = upper;
            }
            properties.smallest_sequence_number = properties
                .smallest_sequence_number
                .min(tombstone.sequence_number);
            properties.largest_sequence_number = properties
                .largest_sequence_number
                .max(tombstone.sequence_number);
        }
    }
}

/// Writes into `out` a short internal key `k` with `start <= k < limit`
/// (given `start < limit`): if the user keys differ at a byte that can be
/// incremented while staying below `limit`, the incremented prefix with the
/// largest trailer; otherwise `start` itself.
fn shortest_separator(start: &[u8], limit: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let start_user = key::user_key(start);
    let limit_user = key::user_key(limit);
    let prefix_len = start_user
        .iter()
        .zip(limit_user)
        .take_while(|(a, b)| a == b)
        .count();
    if let (Some(&start_byte), Some(&limit_byte)) =
        (start_user.get(prefix_len), limit_user.get(prefix_len))
        && start_byte < 0xff
        && start_byte + 1 < limit_byte
    {
        out.extend_from_slice(&start_user[..prefix_len]);
        out.push(start_byte + 1);
        out.extend_from_slice(
            &key::pack_trailer(MAX_SEQUENCE_NUMBER, ValueKind::FOR_SEEK).to_le_bytes(),
        );
        debug_assert_eq!(compare_internal_keys(start, out), Ordering::Less);
        debug_assert_eq!(compare_internal_keys(out, limit), Ordering::Less);
        return;
    }
    out.extend_from_slice(start);
}

/// Writes into `out` a short internal key `k >= key`: the user key cut after
/// its first byte that is not 0xff, that byte incremented, with the largest
/// trailer; or `key` itself if the user key is all 0xff.
fn short_successor(key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let user = key::user_key(key);
    if let Some(position) = user.iter().position(|&byte| byte != 0xff) {
        out.extend_from_slice(&user[..position]);
        out.push(user[position] + 1);
        out.extend_from_slice(
            &key::pack_trailer(MAX_SEQUENCE_NUMBER, ValueKind::FOR_SEEK).to_le_bytes(),
        );
        debug_assert_eq!(compare_internal_keys(key, out), Ordering::Less);
        return;
    }
    out.extend_from_slice(key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::internal_key;

    #[test]
    fn separators_are_short_and_between() {
        let mut out = Vec::new();
        let start = internal_key(b"apple-pie", 5, ValueKind::Value);
        let limit = internal_key(b"apricot", 9, ValueKind::Value);
        shortest_separator(&start, &limit, &mut out);
        assert_eq!(key::user_key(&out), b"apq");
        // Adjacent bytes cannot be split: fall back to `start`.
        let limit = internal_key(b"apple-qie", 9, ValueKind::Value);
        shortest_separator(&start, &limit, &mut out);
        assert_eq!(out, start);
        // Same user key: fall back too.
        let limit = internal_key(b"apple-pie", 4, ValueKind::Value);
        shortest_separator(&start, &limit, &mut out);
        assert_eq!(out, start);
        // `start` a prefix of `limit`.
        let start = internal_key(b"ab", 5, ValueKind::Value);
        let limit = internal_key(b"abc", 5, ValueKind::Value);
        shortest_separator(&start, &limit, &mut out);
        assert_eq!(out, start);

        short_successor(&internal_key(b"\xff\xffxyz", 1, ValueKind::Value), &mut out);
        assert_eq!(key::user_key(&out), b"\xff\xffy");
        let all_ff = internal_key(b"\xff\xff", 1, ValueKind::Value);
        short_successor(&all_ff, &mut out);
        assert_eq!(out, all_ff);
    }
}
