//! A bidirectional cursor over one block.
//!
//! The cursor keeps the current key in a reusable `Vec` (prefix compression
//! means a key must be rebuilt from its predecessor anyway) and the value as a
//! range into the block's bytes, so stepping allocates nothing once the key
//! buffer has grown to the longest key.
//!
//! Stepping backwards re-decodes from the restart point before the current
//! entry: at most `block_restart_interval` entries per `prev`.

use std::cmp::Ordering;

use super::Block;
use crate::error::{Error, Result};
use crate::iterator::InternalIterator;
use crate::key::{TRAILER_LEN, compare_internal_keys};
use crate::sstable::coding::decode_varint32;

/// Cursor over a [`Block`]. Errors are `Error::Corruption` with file
/// "sstable block"; the table layer re-labels them with the file and offset.
#[derive(Debug)]
pub struct BlockIterator {
    block: Block,
    /// Offset of the current entry. Meaningful only while `valid`.
    current_offset: usize,
    /// Offset just past the current entry (where `next` decodes).
    next_offset: usize,
    /// Index of the restart interval that holds the current entry.
    /// Invariant: `restart_point(restart_index) <= current_offset` while valid.
    restart_index: usize,
    /// The current key, rebuilt from the shared prefix of the previous key.
    key: Vec<u8>,
    /// The current value is `block.data[value_start..value_end]`.
    value_start: usize,
    value_end: usize,
    valid: bool,
}

/// A decoded entry header: lengths and where the key suffix starts.
pub(super) struct EntryHeader {
    pub(super) shared: usize,
    pub(super) suffix_start: usize,
    pub(super) suffix_end: usize,
    value_end: usize,
}

impl BlockIterator {
    /// An unpositioned cursor over `block`.
    pub fn new(block: Block) -> BlockIterator {
        BlockIterator {
            block,
            current_offset: 0,
            next_offset: 0,
            restart_index: 0,
            key: Vec::new(),
            value_start: 0,
            value_end: 0,
            valid: false,
        }
    }

    /// Switches to another block, keeping the key buffer's allocation.
    pub fn set_block(&mut self, block: Block) {
        self.block = block;
        self.valid = false;
        self.key.clear();
    }

    /// Makes the cursor invalid (keeping the block and the key buffer).
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    fn seek_to_restart(&mut self, index: usize) {
        self.key.clear();
        self.restart_index = index;
        self.next_offset = self.block.restart_point(index);
        self.valid = false;
    }

    fn corrupt(&mut self, detail: String) -> Error {
        self.valid = false;
        Error::corruption("sstable block", detail)
    }

    /// Decodes the header of the entry at `offset` within the entry region.
    pub(super) fn decode_header(entries: &[u8], offset: usize) -> Option<EntryHeader> {
        let (shared, position) = decode_varint32(entries, offset)?;
        let (suffix_len, position) = decode_varint32(entries, position)?;
        let (value_len, suffix_start) = decode_varint32(entries, position)?;
        let suffix_end = suffix_start.checked_add(usize::try_from(suffix_len).ok()?)?;
        let value_end = suffix_end.checked_add(usize::try_from(value_len).ok()?)?;
        if value_end > entries.len() {
            return None;
        }
        Some(EntryHeader {
            shared: usize::try_from(shared).ok()?,
            suffix_start,
            suffix_end,
            value_end,
        })
    }

    /// The whole key stored at restart point `index` (where `shared == 0`),
    /// or `None` if that entry is malformed.
    fn restart_key(&self, index: usize) -> Option<&[u8]> {
        self.block.restart_key(index)
    }

    /// Decodes the entry at `next_offset`. Returns false (and becomes
    /// invalid) at the end of the entries.
    fn parse_next(&mut self) -> Result<bool> {
        let offset = self.next_offset;
        let entries = self.block.entries();
        if offset >= entries.len() {
            self.valid = false;
            return Ok(false);
        }
        let header =
            Self::decode_header(entries, offset).filter(|header| header.shared <= self.key.len());
        let suffix = header
            .as_ref()
            .and_then(|header| entries.get(header.suffix_start..header.suffix_end));
        let (Some(header), Some(suffix)) = (header, suffix) else {
            return Err(self.corrupt(format!("malformed entry at offset {offset}")));
        };
        self.key.truncate(header.shared);
        self.key.extend_from_slice(suffix);
        if self.key.len() < TRAILER_LEN {
            return Err(self.corrupt(format!(
                "key of {} bytes at offset {offset} is shorter than an internal key",
                self.key.len()
            )));
        }
        self.current_offset = offset;
        self.next_offset = header.value_end;
        self.value_start = header.suffix_end;
        self.value_end = header.value_end;
        while self.restart_index + 1 < self.block.num_restarts()
            && self.block.restart_point(self.restart_index + 1) <= offset
        {
            self.restart_index += 1;
        }
        self.valid = true;
        Ok(true)
    }
}

impl InternalIterator for BlockIterator {
    /// True if the cursor is on an entry.
    fn valid(&self) -> bool {
        self.valid
    }

    /// The current key. Requires `valid()`.
    fn key(&self) -> &[u8] {
        debug_assert!(self.valid);
        &self.key
    }

    /// The current value. Requires `valid()`.
    fn value(&self) -> &[u8] {
        debug_assert!(self.valid);
        self.block
            .data
            .get(self.value_start..self.value_end)
            .unwrap_or_default()
    }

    /// Moves to the first entry (invalid if the block is empty).
    fn seek_to_first(&mut self) -> Result<()> {
        self.seek_to_restart(0);
        self.parse_next()?;
        Ok(())
    }

    /// Moves to the last entry (invalid if the block is empty).
    fn seek_to_last(&mut self) -> Result<()> {
        self.seek_to_restart(self.block.num_restarts() - 1);
        if !self.parse_next()? {
            return Ok(());
        }
        while self.next_offset < self.block.restarts_offset {
            self.parse_next()?;
        }
        Ok(())
    }

    /// Moves to the first entry whose key is >= `target`.
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        // Binary search for the last restart point whose key is < target; the
        // answer is in its interval or is the first key of the next one.
        // The search hint, when the block has one, narrows the range with
        // integer comparisons on a dense array before any entry is decoded.
        let (mut left, mut right) = self
            .block
            .search_hint()
            .and_then(|hint| hint.narrow(target))
            .unwrap_or((0, self.block.num_restarts() - 1));
        debug_assert!(left <= right && right < self.block.num_restarts());
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            let Some(mid_key) = self.restart_key(mid) else {
                let offset = self.block.restart_point(mid);
                return Err(
                    self.corrupt(format!("malformed restart entry {mid} at offset {offset}"))
                );
            };
            if compare_internal_keys(mid_key, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        self.seek_to_restart(left);
        while self.parse_next()? {
            if compare_internal_keys(&self.key, target) != Ordering::Less {
                break;
            }
        }
        Ok(())
    }

    /// Moves to the last entry whose key is <= `target`.
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.seek(target)?;
        if !self.valid {
            return self.seek_to_last();
        }
        if compare_internal_keys(&self.key, target) == Ordering::Greater {
            self.prev()?;
        }
        Ok(())
    }

    /// Advances. Requires `valid()`.
    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid);
        self.parse_next()?;
        Ok(())
    }

    /// Steps back. Requires `valid()`.
    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid);
        let original = self.current_offset;
        // The field's invariant, which the walk back below starts from: the
        // entry lies in the interval of `restart_index`.
        debug_assert!(self.block.restart_point(self.restart_index) <= original);
        while self.block.restart_point(self.restart_index) >= original {
            if self.restart_index == 0 {
                // Already on the first entry.
                self.valid = false;
                return Ok(());
            }
            self.restart_index -= 1;
        }
        self.seek_to_restart(self.restart_index);
        loop {
            if !self.parse_next()? {
                return Err(self.corrupt(format!(
                    "no entry ends at offset {original} while stepping back"
                )));
            }
            if self.next_offset >= original {
                break;
            }
        }
        if self.next_offset != original {
            return Err(self.corrupt(format!(
                "entry at {} overlaps entry at {original}",
                self.current_offset
            )));
        }
        Ok(())
    }
}
