//! Builds one block in memory: prefix-compressed entries, then the restart
//! array. The format is described in the parent module and in
//! `docs/sstable-format.md`.

use crate::key::compare_internal_keys;
use crate::sstable::coding::put_varint32;

/// Accumulates sorted entries into a block's bytes.
///
/// The caller (the table builder) guarantees that keys arrive in strictly
/// increasing `compare_internal_keys` order and that every key and value is
/// shorter than 2^31 bytes, so every length and offset fits a `u32`.
#[derive(Debug)]
pub struct BlockBuilder {
    /// Encoded entries so far (and, after `finish`, the restart array).
    buffer: Vec<u8>,
    /// Offsets of restart points. Invariant: non-empty, starts with 0.
    restarts: Vec<u32>,
    /// A full key is stored every this many entries. Invariant: >= 1.
    restart_interval: usize,
    /// Entries added since the last restart point.
    entries_since_restart: usize,
    /// The previous key, against which the next key is prefix-compressed.
    last_key: Vec<u8>,
    num_entries: usize,
    /// Set by `finish`; `add` is not allowed until `reset`.
    finished: bool,
}

impl BlockBuilder {
    /// A builder that stores a full key every `restart_interval` entries
    /// (a value of 0 is treated as 1).
    pub fn new(restart_interval: usize) -> BlockBuilder {
        BlockBuilder {
            buffer: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            entries_since_restart: 0,
            last_key: Vec::new(),
            num_entries: 0,
            finished: false,
        }
    }

    /// Appends an entry. `key` must sort strictly after every key added so far.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(!self.finished, "add after finish without reset");
        debug_assert!(
            self.num_entries == 0 || compare_internal_keys(&self.last_key, key).is_lt(),
            "block keys must be strictly increasing"
        );
        debug_assert!(u32::try_from(key.len()).is_ok() && u32::try_from(value.len()).is_ok());

        let shared = if self.entries_since_restart < self.restart_interval {
            common_prefix_len(&self.last_key, key)
        } else {
            debug_assert!(u32::try_from(self.buffer.len()).is_ok());
            // Restart offsets strictly increase: the interval before this
            // one holds at least one entry.
            debug_assert!(
                self.restarts
                    .last()
                    .is_some_and(|&last| (last as usize) < self.buffer.len())
            );
            self.restarts.push(self.buffer.len() as u32);
            self.entries_since_restart = 0;
            0
        };
        let suffix = key.get(shared..).unwrap_or_default();
        put_varint32(&mut self.buffer, shared as u32);
        put_varint32(&mut self.buffer, suffix.len() as u32);
        put_varint32(&mut self.buffer, value.len() as u32);
        self.buffer.extend_from_slice(suffix);
        self.buffer.extend_from_slice(value);

        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(suffix);
        debug_assert_eq!(self.last_key, key);
        self.entries_since_restart += 1;
        self.num_entries += 1;
        // One restart point per started interval, none empty.
        debug_assert_eq!(
            self.restarts.len(),
            self.num_entries.div_ceil(self.restart_interval)
        );
    }

    /// Size the block would have if finished now (before compression).
    pub fn estimated_size_bytes(&self) -> usize {
        self.buffer.len() + self.restarts.len() * 4 + 4
    }

    /// True if no entry has been added since creation or the last reset.
    pub fn is_empty(&self) -> bool {
        self.num_entries == 0
    }

    /// Entries added since creation or the last reset.
    pub fn num_entries(&self) -> usize {
        self.num_entries
    }

    /// The most recently added key (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished block's bytes.
    /// The builder must be `reset` before it is used again.
    pub fn finish(&mut self) -> &[u8] {
        debug_assert!(!self.finished);
        let estimated = self.estimated_size_bytes();
        for restart in &self.restarts {
            self.buffer.extend_from_slice(&restart.to_le_bytes());
        }
        debug_assert!(u32::try_from(self.restarts.len()).is_ok());
        self.buffer
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        // The table builder cuts blocks on the estimate: it is exact (the
        // entries, then a restart array and count as `Block::new` parses).
        debug_assert_eq!(self.buffer.len(), estimated);
        self.finished = true;
        &self.buffer
    }

    /// Empties the builder, keeping its allocations.
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.entries_since_restart = 0;
        self.last_key.clear();
        self.num_entries = 0;
        self.finished = false;
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};

    #[test]
    fn prefix_compression_shrinks_blocks_with_shared_prefixes() {
        let keys: Vec<Vec<u8>> = (0..64)
            .map(|i| {
                internal_key(
                    format!("a-long-common-prefix-{i:04}").as_bytes(),
                    1,
                    ValueKind::Value,
                )
            })
            .collect();
        let mut compressed = BlockBuilder::new(16);
        let mut whole = BlockBuilder::new(1);
        for key in &keys {
            compressed.add(key, b"");
            whole.add(key, b"");
        }
        assert!(compressed.finish().len() * 2 < whole.finish().len());
    }

    #[test]
    fn reset_allows_reuse_and_restarts_at_interval() {
        let mut builder = BlockBuilder::new(2);
        for i in 0..5u8 {
            builder.add(&internal_key(&[b'k', i], 1, ValueKind::Value), b"v");
        }
        assert_eq!(builder.num_entries(), 5);
        let block = builder.finish().to_vec();
        // 5 entries at interval 2: restarts at entries 0, 2, 4.
        let count = u32::from_le_bytes(block[block.len() - 4..].try_into().unwrap());
        assert_eq!(count, 3);
        builder.reset();
        assert!(builder.is_empty());
        assert_eq!(builder.estimated_size_bytes(), 8);
    }
}
