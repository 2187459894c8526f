//! [`SearchHint`]: an in-memory accelerator for the restart-point binary
//! search of a block with many restarts (an index block has one per data
//! block, thousands per table).
//!
//! Without it, each of the ~13 probes of a seek in a large index block reads
//! a restart offset at the block's end, then decodes the entry it points to
//! somewhere else in the block: two cache misses per probe, and a byte
//! comparison. The hint keeps, for every restart key, the 8 bytes that follow
//! a prefix the block's user keys share, as one big-endian `u64` in a dense
//! array: the search then runs over integers in a few cache lines and
//! decodes entries only among restarts whose words tie with the target's.
//!
//! The shared prefix is taken from the second and the second-to-last restart
//! keys: an index block's last key is often a short successor (`"1"` after
//! `"0000000000999999"`), which shares nothing with the rest. Keys without
//! the prefix sort wholly before or after the ones with it (keys are sorted)
//! and get the word 0 or `u64::MAX`, which keeps the words ordered and still
//! lets "word smaller" imply "key smaller" for a target with the prefix.
//!
//! Nothing is stored on disk; the hint is rebuilt when a block is loaded.

use crate::key::TRAILER_LEN;

/// Blocks with fewer restarts than this are searched without a hint (data
/// blocks have a handful; the hint would cost more than it saves).
pub(super) const MIN_RESTARTS_FOR_HINT: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub struct SearchHint {
    /// The prefix shared by the user keys of restarts 1 to n - 2 (keys are
    /// sorted, so every key in between has it).
    common_prefix: Box<[u8]>,
    /// `words[i]` is [`word_after`] the prefix of restart key `i`'s user key
    /// if it has the prefix, else 0 if it sorts before the prefix and
    /// `u64::MAX` if after. Invariant: non-decreasing (the keys are sorted).
    words: Box<[u64]>,
    /// `words[SAMPLE_STRIDE * i]` for each `i`: small enough to stay in the
    /// CPU cache, so a search misses the cache only in one stride of `words`.
    samples: Box<[u64]>,
}

/// One sample per this many words (8 cache lines of words).
const SAMPLE_STRIDE: usize = 64;

/// The 8 bytes of `user_key` starting at `start`, zero-padded, big-endian.
///
/// Comparing two such words orders the keys like comparing those bytes, with
/// one caveat the padding introduces: equal words do not mean equal bytes
/// (a key that ends early and one with zero bytes there tie). So "word
/// smaller" implies "key smaller", "word larger" implies "key larger", and
/// ties must be settled by comparing the keys (see `MemKey` for the same
/// argument).
fn word_after(user_key: &[u8], start: usize) -> u64 {
    let tail = user_key.get(start..).unwrap_or_default();
    let take = tail.len().min(8);
    let mut bytes = [0u8; 8];
    bytes[..take].copy_from_slice(&tail[..take]);
    u64::from_be_bytes(bytes)
}

impl SearchHint {
    /// Builds the hint from the block's restart keys (encoded internal keys,
    /// in order). `None` if there are too few, or one is malformed (the
    /// seek then reports the damage when it decodes that entry).
    pub(super) fn build<'a>(
        num_restarts: usize,
        restart_key: impl Fn(usize) -> Option<&'a [u8]>,
    ) -> Option<SearchHint> {
        if num_restarts < MIN_RESTARTS_FOR_HINT {
            return None;
        }
        let user_key = |index| restart_key(index).map(|key| &key[..key.len() - TRAILER_LEN]);
        let second = user_key(1)?;
        let second_to_last = user_key(num_restarts - 2)?;
        let common_len = second
            .iter()
            .zip(second_to_last)
            .take_while(|(a, b)| a == b)
            .count();
        let common_prefix = &second[..common_len];
        let word = |key: &[u8]| {
            if key.starts_with(common_prefix) {
                word_after(key, common_len)
            } else if key < common_prefix {
                0
            } else {
                u64::MAX
            }
        };
        let words = (0..num_restarts)
            .map(|index| user_key(index).map(word))
            .collect::<Option<Box<[u64]>>>()?;
        if !words.is_sorted() {
            // Only a block whose entries are out of order (which its checksum
            // should have ruled out) gets here; search it the slow way.
            return None;
        }
        let samples = words.iter().step_by(SAMPLE_STRIDE).copied().collect();
        Some(SearchHint {
            common_prefix: common_prefix.into(),
            words,
            samples,
        })
    }

    /// Bytes the hint occupies (charged to the block cache with its block).
    pub(super) fn size_bytes(&self) -> usize {
        self.common_prefix.len() + 8 * (self.words.len() + self.samples.len())
    }

    /// The range `[left, right]` of restart indexes that holds the last
    /// restart whose key is below `target` (an encoded internal key), or 0
    /// if none is. `None` when the hint cannot tell (a target outside the
    /// shared prefix): search the whole block.
    ///
    /// Why: restarts before `below` have a smaller word, hence a smaller user
    /// key, hence a smaller internal key than the target whatever the
    /// trailers; restarts from `not_above` on have a larger word, hence a
    /// larger key. (A restart key without the prefix that sorts before it is
    /// either a proper prefix of it or smaller at a byte inside it, so it is
    /// smaller than any key with the prefix; symmetrically for after.) So
    /// the answer is in `[below - 1, not_above - 1]`, and the caller's binary
    /// search keeps its invariant ("restart `left` is below the target, or
    /// `left` is 0") from the start.
    pub(super) fn narrow(&self, target: &[u8]) -> Option<(usize, usize)> {
        let user_key = target.get(..target.len().checked_sub(TRAILER_LEN)?)?;
        if !user_key.starts_with(&self.common_prefix) {
            return None;
        }
        let word = word_after(user_key, self.common_prefix.len());
        // Every restart before `SAMPLE_STRIDE * (sample - 1)` is below the
        // word and every one from `SAMPLE_STRIDE * sample` on is not: the
        // search of `words` is confined to one stride.
        let sample = self.samples.partition_point(|&w| w < word);
        let window_start = SAMPLE_STRIDE * sample.saturating_sub(1);
        let window_end = (SAMPLE_STRIDE * sample).min(self.words.len());
        let window = self.words.get(window_start..window_end).unwrap_or_default();
        let below = window_start + window.partition_point(|&w| w < word);
        // Ties are few (usually none or one): scanning them touches the
        // cache line the search just loaded. Keys that share more than the
        // prefix plus 8 bytes tie in long runs; past a few, fall back to a
        // binary search of the run.
        let after_below = &self.words[below..];
        let ties = match after_below.iter().take(8).position(|&w| w != word) {
            Some(ties) => ties,
            None => after_below.partition_point(|&w| w <= word),
        };
        let not_above = below + ties;
        Some((below.saturating_sub(1), not_above.saturating_sub(1)))
    }
}
