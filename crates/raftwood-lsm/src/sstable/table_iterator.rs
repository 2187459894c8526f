//! A bidirectional iterator over a whole table: a cursor over the index block
//! picks the data block; a cursor over that block yields entries.
//!
//! Index invariant relied on here: for data blocks `i` and `i + 1`, with
//! separator `s_i` in the index, `last_key(i) <= s_i < first_key(i + 1)`.
//! So the first block whose separator is at or above a target holds the
//! first entry at or above the target; if all its keys are below the target,
//! that entry is the first of the next non-empty block.

use std::sync::Arc;

use super::block::BlockIterator;
use super::table_reader::Table;
use crate::error::Result;
use crate::iterator::InternalIterator;

/// Iterator over one table's point entries in internal-key order.
/// Blocks are loaded through the block cache; a failed checksum surfaces as
/// an `Error::Corruption` from the positioning call and leaves the iterator
/// invalid.
#[derive(Debug)]
pub struct TableIterator {
    table: Arc<Table>,
    /// Cursor over the index block; loaded on first positioning so that
    /// creating an iterator costs no I/O.
    index: Option<BlockIterator>,
    /// Cursor over the current data block; kept across blocks to reuse its
    /// key buffer.
    data: Option<BlockIterator>,
    /// Offset of the block `data` is on, to skip a cache lookup when a seek
    /// lands in the same block again.
    data_block_offset: Option<u64>,
    /// Whether data blocks read from the file are added to the block cache
    /// (false for compaction; see [`Table::iter_without_filling_cache`]).
    fill_cache: bool,
}

impl TableIterator {
    /// An unpositioned iterator over `table`; `fill_cache`: see the field.
    pub fn new(table: Arc<Table>, fill_cache: bool) -> TableIterator {
        TableIterator {
            table,
            index: None,
            data: None,
            data_block_offset: None,
            fill_cache,
        }
    }

    fn index(&mut self) -> Result<&mut BlockIterator> {
        let index = match &mut self.index {
            Some(index) => index,
            slot => slot.insert(self.table.index_block()?.iter()),
        };
        Ok(index)
    }

    fn index_step<F>(&mut self, step: F) -> Result<()>
    where
        F: FnOnce(&mut BlockIterator) -> Result<()>,
    {
        let offset = self.table.index_offset();
        let result = step(self.index()?);
        result.map_err(|e| self.table.relabel(e, offset))
    }

    fn data_step<F>(&mut self, step: F) -> Result<()>
    where
        F: FnOnce(&mut BlockIterator) -> Result<()>,
    {
        let Some(data) = &mut self.data else {
            return Ok(());
        };
        let offset = self.data_block_offset.unwrap_or_default();
        step(data).map_err(|e| self.table.relabel(e, offset))
    }

    fn index_valid(&self) -> bool {
        self.index.as_ref().is_some_and(BlockIterator::valid)
    }

    fn data_valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIterator::valid)
    }

    /// Points `data` at the block the index cursor names; returns false (and
    /// leaves `data` invalid) if the index cursor is exhausted.
    fn load_data_block(&mut self) -> Result<bool> {
        let handle = match &self.index {
            Some(index) if index.valid() => self.table.decode_index_value(index.value())?,
            _ => {
                self.invalidate_data();
                return Ok(false);
            }
        };
        if self.data_block_offset == Some(handle.offset)
            && let Some(data) = &mut self.data
        {
            // Same block as before: reuse it; the caller repositions.
            data.invalidate();
            return Ok(true);
        }
        let block = if self.fill_cache {
            self.table.data_block(handle)?
        } else {
            self.table.data_block_without_filling_cache(handle)?
        };
        match &mut self.data {
            Some(data) => data.set_block(block),
            None => self.data = Some(block.iter()),
        }
        self.data_block_offset = Some(handle.offset);
        Ok(true)
    }

    fn invalidate_data(&mut self) {
        if let Some(data) = &mut self.data {
            data.invalidate();
        }
    }

    /// Moves forward past empty blocks (and past a block whose keys all lie
    /// below a seek target) until `data` is valid or the table ends.
    fn skip_forward_to_entry(&mut self) -> Result<()> {
        while !self.data_valid() && self.index_valid() {
            self.index_step(BlockIterator::next)?;
            if !self.load_data_block()? {
                return Ok(());
            }
            self.data_step(BlockIterator::seek_to_first)?;
        }
        Ok(())
    }

    /// Moves backward past empty blocks until `data` is valid or the table's
    /// start is passed.
    fn skip_backward_to_entry(&mut self) -> Result<()> {
        while !self.data_valid() && self.index_valid() {
            self.index_step(BlockIterator::prev)?;
            if !self.load_data_block()? {
                return Ok(());
            }
            self.data_step(BlockIterator::seek_to_last)?;
        }
        Ok(())
    }

    fn seek_to_first_inner(&mut self) -> Result<()> {
        self.index_step(BlockIterator::seek_to_first)?;
        if self.load_data_block()? {
            self.data_step(BlockIterator::seek_to_first)?;
        }
        self.skip_forward_to_entry()
    }

    fn seek_to_last_inner(&mut self) -> Result<()> {
        self.index_step(BlockIterator::seek_to_last)?;
        if self.load_data_block()? {
            self.data_step(BlockIterator::seek_to_last)?;
        }
        self.skip_backward_to_entry()
    }

    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        self.index_step(|index| index.seek(target))?;
        if self.load_data_block()? {
            self.data_step(|data| data.seek(target))?;
        }
        self.skip_forward_to_entry()
    }

    fn seek_for_prev_inner(&mut self, target: &[u8]) -> Result<()> {
        self.index_step(|index| index.seek(target))?;
        if !self.index_valid() {
            // Every separator, hence every key, is below the target.
            return self.seek_to_last_inner();
        }
        // Keys in later blocks exceed this block's separator, which is >=
        // target; keys in earlier blocks are all below target. So the answer
        // is in this block or is the last entry of an earlier one.
        if self.load_data_block()? {
            self.data_step(|data| data.seek_for_prev(target))?;
        }
        self.skip_backward_to_entry()
    }

    /// Runs a positioning operation; on error the iterator becomes invalid.
    fn guard(&mut self, result: Result<()>) -> Result<()> {
        if result.is_err() {
            self.invalidate_data();
            if let Some(index) = &mut self.index {
                index.invalidate();
            }
        }
        result
    }
}

impl InternalIterator for TableIterator {
    fn valid(&self) -> bool {
        self.data_valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let result = self.seek_to_first_inner();
        self.guard(result)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let result = self.seek_to_last_inner();
        self.guard(result)
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let result = self.seek_inner(target);
        self.guard(result)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let result = self.seek_for_prev_inner(target);
        self.guard(result)
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        let result = self
            .data_step(BlockIterator::next)
            .and_then(|()| self.skip_forward_to_entry());
        self.guard(result)
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        let result = self
            .data_step(BlockIterator::prev)
            .and_then(|()| self.skip_backward_to_entry());
        self.guard(result)
    }

    fn key(&self) -> &[u8] {
        debug_assert!(self.valid());
        self.data.as_ref().map_or(&[], BlockIterator::key)
    }

    fn value(&self) -> &[u8] {
        debug_assert!(self.valid());
        self.data.as_ref().map_or(&[], BlockIterator::value)
    }
}
