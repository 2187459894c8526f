//! How a torn write damages a file: a prefix of what was unsynced
//! survives, or independent 512-byte blocks of it do, from a seeded
//! generator.

use super::*;

/// Applies [`CrashMode::TornTail`] to one file.
pub(super) fn tear_file(file: &mut FileNode, rng: &mut SplitMix64) {
    let durable_prefix_len = match file.truncated_durable.take() {
        // A truncation not yet synced either reached the disk (then a torn
        // prefix of the new content survives) or did not (the old bytes do).
        Some(old) => {
            if rng.next_below(2) == 0 {
                file.content = old;
                return;
            }
            0
        }
        None => file.durable_len,
    };
    let unsynced_len = file.content.len() - durable_prefix_len;
    let surviving_unsynced_len = rng.next_below(unsynced_len as u64 + 1) as usize;
    file.content
        .truncate(durable_prefix_len + surviving_unsynced_len);
    if surviving_unsynced_len > 0 && rng.next_below(2) == 0 {
        // Only unsynced bytes may be garbled: synced ones are on disk.
        let garbled_len =
            1 + rng.next_below(surviving_unsynced_len.min(MAX_GARBLED_TAIL_BYTES) as u64) as usize;
        let start = file.content.len() - garbled_len;
        assert!(start >= durable_prefix_len);
        let zero_fill = rng.next_below(2) == 0;
        for byte in &mut file.content[start..] {
            *byte = if zero_fill { 0 } else { rng.next_u64() as u8 };
        }
    }
}

/// Applies [`CrashMode::TornBlocks`] to a file that was not truncated
/// since its last sync.
pub(super) fn tear_blocks(file: &mut FileNode, rng: &mut SplitMix64) {
    debug_assert!(file.truncated_durable.is_none());
    let durable_len = file.durable_len;
    let written = file.content.len();
    // Bytes past the durable zero tail grew the file: only a prefix of
    // them can survive. Bytes over the tail survive block by block.
    let overwrite_end = written.min(file.durable_zeroed_to.max(durable_len));
    let grown = written - overwrite_end;
    let surviving_grown = rng.next_below(grown as u64 + 1) as usize;
    let mut start = durable_len;
    while start < overwrite_end {
        let end = ((start / TORN_BLOCK_BYTES + 1) * TORN_BLOCK_BYTES).min(overwrite_end);
        if rng.next_below(2) == 0 {
            file.content[start..end].fill(0);
        }
        start = end;
    }
    file.content.truncate(overwrite_end + surviving_grown);
}

/// A tiny deterministic generator (SplitMix64): the library must not depend
/// on `rand`, and crash choices only need to be reproducible, not strong.
#[derive(Debug)]
pub(super) struct SplitMix64 {
    pub(super) state: u64,
}

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; `bound` must be positive. The modulo bias is
    /// irrelevant for crash modelling.
    pub(super) fn next_below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        self.next_u64() % bound.max(1)
    }
}
