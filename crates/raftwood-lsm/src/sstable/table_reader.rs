//! Reads an SSTable: opens and verifies its meta blocks, answers point
//! lookups, and loads data, index and filter blocks through the block cache.

use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use super::block::{Block, WeakBlock};
use super::block_handle::BlockHandle;
use super::block_trailer::{BLOCK_TRAILER_LEN, decode_stored_block};
use super::bloom::BloomFilter;
use super::footer::{FOOTER_LEN, Footer};
use super::properties::TableProperties;
use super::range_tombstones;
use super::table_iterator::TableIterator;
use crate::cache::{BlockCache, CachedBlock};
use crate::error::{Error, Result};
use crate::fs::RandomAccessFile;
use crate::iterator::InternalIterator;
use crate::key::{self, MAX_SEQUENCE_NUMBER, RangeTombstone, parse_internal_key};

/// An open, verified SSTable. Shared between readers as `Arc<Table>`.
///
/// The footer, properties and range tombstones are read and verified by
/// [`Table::open`] and kept in memory; index, filter and data blocks are
/// loaded on demand through the shared [`BlockCache`].
#[derive(Debug)]
pub struct Table {
    file: Arc<dyn RandomAccessFile>,
    file_number: u64,
    file_size_bytes: u64,
    cache: Arc<BlockCache>,
    footer: Footer,
    properties: TableProperties,
    /// Sorted by start ascending, then sequence number descending.
    range_tombstones: Vec<RangeTombstone>,
    /// Names the file in error messages.
    label: String,
    /// The index block and the filter as last fetched from the block cache,
    /// held weakly: the cache still owns them (they stay charged to its
    /// budget and can be evicted), but while it keeps them a read finds them
    /// with one atomic increment instead of a cache lookup.
    index_slot: RwLock<Option<WeakBlock>>,
    filter_slot: RwLock<Weak<BloomFilter>>,
}

impl Table {
    /// Opens a table, verifying its footer, properties and range-deletion
    /// block. Any damage is `Error::Corruption`; a table written by a newer
    /// format is `Error::UnsupportedFormatVersion`.
    pub fn open(
        file: Arc<dyn RandomAccessFile>,
        file_number: u64,
        cache: Arc<BlockCache>,
    ) -> Result<Table> {
        let label = format!("sstable #{file_number}");
        let file_size_bytes = file.size();
        let footer_offset = file_size_bytes
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| {
                Error::corruption(
                    label.clone(),
                    format!("file of {file_size_bytes} bytes is shorter than the {FOOTER_LEN}-byte footer"),
                )
            })?;
        let footer_bytes = file.read_exact_at(footer_offset, FOOTER_LEN)?;
        let footer = Footer::decode(&footer_bytes, footer_offset, &label)?;

        let mut table = Table {
            file,
            file_number,
            file_size_bytes,
            cache,
            footer,
            properties: TableProperties::default(),
            range_tombstones: Vec::new(),
            label,
            index_slot: RwLock::new(None),
            filter_slot: RwLock::new(Weak::new()),
        };
        let properties_bytes = table.read_block_contents(footer.properties)?;
        table.properties = TableProperties::decode(&properties_bytes, &table.label)?;
        let range_deletion_bytes = table.read_block_contents(footer.range_deletions)?;
        table.range_tombstones = range_tombstones::decode(&range_deletion_bytes, &table.label)?;
        if table.range_tombstones.len() as u64 != table.properties.num_range_tombstones {
            return Err(Error::corruption(
                table.label.clone(),
                format!(
                    "properties count {} range tombstones but the block holds {}",
                    table.properties.num_range_tombstones,
                    table.range_tombstones.len()
                ),
            ));
        }
        Ok(table)
    }

    /// The newest entry of `user_key` with sequence number <=
    /// `snapshot_sequence_number`, as `(internal_key, value)`; it may be a
    /// point deletion. `None` if the table has no such entry. Range
    /// tombstones are not applied here (see [`Table::range_tombstones`]).
    pub fn get(
        &self,
        user_key: &[u8],
        snapshot_sequence_number: u64,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let properties = &self.properties;
        if properties.num_entries == 0
            || user_key < key::user_key(&properties.smallest_key)
            || user_key > key::user_key(&properties.largest_key)
            || !self.may_contain_user_key(user_key)?
        {
            return Ok(None);
        }
        let target = key::seek_key(user_key, snapshot_sequence_number.min(MAX_SEQUENCE_NUMBER));
        let index_block = self.index_block()?;
        let mut index = index_block.iter();
        index
            .seek(&target)
            .map_err(|e| self.relabel(e, self.footer.index.offset))?;
        // The first block whose separator is >= target holds the answer,
        // unless a shortened separator lies past its last key, in which case
        // the answer is the next block's first entry.
        while index.valid() {
            let handle = self.decode_index_value(index.value())?;
            let block = self.data_block(handle)?;
            let mut entries = block.iter();
            entries
                .seek(&target)
                .map_err(|e| self.relabel(e, handle.offset))?;
            if entries.valid() {
                let found = parse_internal_key(entries.key())
                    .map_err(|e| self.relabel(e, handle.offset))?;
                if found.user_key != user_key {
                    return Ok(None);
                }
                return Ok(Some((entries.key().to_vec(), entries.value().to_vec())));
            }
            index
                .next()
                .map_err(|e| self.relabel(e, self.footer.index.offset))?;
        }
        Ok(None)
    }

    /// A bidirectional iterator over every point entry of the table.
    pub fn iter(self: &Arc<Self>) -> TableIterator {
        TableIterator::new(Arc::clone(self), true)
    }

    /// An iterator that uses data blocks the cache already holds but does
    /// not add the ones it reads: for compaction, which reads every block
    /// once, and would otherwise evict the blocks readers use.
    pub fn iter_without_filling_cache(self: &Arc<Self>) -> TableIterator {
        TableIterator::new(Arc::clone(self), false)
    }

    /// The table's range tombstones, sorted by start ascending then sequence
    /// number descending.
    pub fn range_tombstones(&self) -> &[RangeTombstone] {
        &self.range_tombstones
    }

    /// False only if the table certainly holds no entry for `user_key`
    /// (consults the Bloom filter; true if the table has none).
    pub fn may_contain_user_key(&self, user_key: &[u8]) -> Result<bool> {
        let Some(handle) = self.footer.filter else {
            return Ok(true);
        };
        if let Some(filter) = self.filter_slot.read().upgrade() {
            return Ok(filter.may_contain(user_key));
        }
        let cached =
            self.cache
                .get_or_insert_metadata_with(self.file_number, handle.offset, || {
                    let contents = self.read_block_contents(handle)?;
                    let filter = BloomFilter::decode(contents)
                        .map_err(|e| self.relabel(e, handle.offset))?;
                    Ok(CachedBlock::Filter(Arc::new(filter)))
                })?;
        match cached {
            CachedBlock::Filter(filter) => {
                *self.filter_slot.write() = Arc::downgrade(&filter);
                Ok(filter.may_contain(user_key))
            }
            CachedBlock::Block(_) => Err(self.wrong_kind(handle.offset, "filter")),
        }
    }

    /// What the table recorded about itself when it was written.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The number naming the table's file.
    pub fn file_number(&self) -> u64 {
        self.file_number
    }

    /// The file's size in bytes.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// The index block (through the cache).
    pub(crate) fn index_block(&self) -> Result<Block> {
        if let Some(block) = self.index_slot.read().as_ref().and_then(WeakBlock::upgrade) {
            return Ok(block);
        }
        let block = self.cached_block(self.footer.index, "index", true)?;
        *self.index_slot.write() = Some(block.downgrade());
        Ok(block)
    }

    /// A data block (through the cache).
    pub(crate) fn data_block(&self, handle: BlockHandle) -> Result<Block> {
        self.cached_block(handle, "data", false)
    }

    /// A data block from the cache if it is there, else read from the file
    /// without caching it.
    pub(crate) fn data_block_without_filling_cache(&self, handle: BlockHandle) -> Result<Block> {
        match self.cache.get(self.file_number, handle.offset) {
            Some(CachedBlock::Block(block)) => Ok(block),
            Some(CachedBlock::Filter(_)) => Err(self.wrong_kind(handle.offset, "data")),
            None => {
                let contents = self.read_block_contents(handle)?;
                Block::new(contents).map_err(|e| self.relabel(e, handle.offset))
            }
        }
    }

    /// Offset of the index block, for error labels.
    pub(crate) fn index_offset(&self) -> u64 {
        self.footer.index.offset
    }

    /// Decodes an index entry's value into a data block handle.
    pub(crate) fn decode_index_value(&self, value: &[u8]) -> Result<BlockHandle> {
        BlockHandle::decode(value).ok_or_else(|| {
            Error::corruption(
                self.label.clone(),
                format!(
                    "index block at offset {}: entry value of {} bytes is not a block handle",
                    self.footer.index.offset,
                    value.len()
                ),
            )
        })
    }

    /// Names this file and the block's offset in a corruption error raised
    /// by block-level code, which knows neither.
    pub(crate) fn relabel(&self, error: Error, block_offset: u64) -> Error {
        match error {
            Error::Corruption { file, detail } => Error::corruption(
                self.label.clone(),
                format!("block at offset {block_offset}: {file}: {detail}"),
            ),
            other => other,
        }
    }

    /// `is_index`: an index block, which gets a [`Block::with_search_hint`]
    /// and is cached as metadata.
    fn cached_block(&self, handle: BlockHandle, kind: &str, is_index: bool) -> Result<Block> {
        let load = || {
            let contents = self.read_block_contents(handle)?;
            let mut block = Block::new(contents).map_err(|e| self.relabel(e, handle.offset))?;
            if is_index {
                block = block.with_search_hint();
            }
            Ok(CachedBlock::Block(block))
        };
        let cached = if is_index {
            self.cache
                .get_or_insert_metadata_with(self.file_number, handle.offset, load)?
        } else {
            self.cache
                .get_or_insert_with(self.file_number, handle.offset, load)?
        };
        match cached {
            CachedBlock::Block(block) => Ok(block),
            CachedBlock::Filter(_) => Err(self.wrong_kind(handle.offset, kind)),
        }
    }

    fn wrong_kind(&self, offset: u64, expected: &str) -> Error {
        Error::corruption(
            self.label.clone(),
            format!("block at offset {offset} is cached as another kind than {expected}"),
        )
    }

    /// Reads, verifies and decompresses the block at `handle`, checking first
    /// that it lies in the data region (handles from the index are untrusted
    /// until their block's checksum passes).
    fn read_block_contents(&self, handle: BlockHandle) -> Result<Vec<u8>> {
        let data_end = self.file_size_bytes.saturating_sub(FOOTER_LEN as u64);
        let length = handle
            .size_bytes
            .checked_add(BLOCK_TRAILER_LEN as u64)
            .and_then(|length| usize::try_from(length).ok());
        let (Some(length), Some(end)) = (length, handle.end_with_trailer()) else {
            return Err(self.bad_handle(handle, data_end));
        };
        if end > data_end {
            return Err(self.bad_handle(handle, data_end));
        }
        let stored = self.file.read_exact_at(handle.offset, length)?;
        decode_stored_block(stored, &self.label, handle.offset)
    }

    fn bad_handle(&self, handle: BlockHandle, data_end: u64) -> Error {
        Error::corruption(
            self.label.clone(),
            format!(
                "block handle (offset {}, size {}) lies outside the {data_end}-byte data region",
                handle.offset, handle.size_bytes
            ),
        )
    }
}
