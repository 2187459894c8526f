//! The pages one walk has reached, one bit per page below the high-water
//! mark (a 1 GiB file of 4 KiB pages costs 32 KiB): reaching a page twice is
//! a cycle or a shared page, so every walk ends after at most one visit per
//! page.

use crate::error::{Error, Result};

/// A bitmap of reached pages, allocated on first use.
#[derive(Debug, Default)]
pub struct Visited {
    bits: Vec<u64>,
    reached: u64,
}

impl Visited {
    /// Marks pages `first .. first + count`, all below `high_water` (the
    /// reader checked); an error if one was marked before.
    pub fn mark(&mut self, first: u64, count: u64, high_water: u64) -> Result<()> {
        assert!(
            first + count <= high_water,
            "marking beyond the high-water mark"
        );
        if self.bits.is_empty() {
            self.bits = vec![0; high_water.div_ceil(64) as usize];
        }
        for page in first..first + count {
            let (word, bit) = ((page / 64) as usize, 1u64 << (page % 64));
            if self.bits[word] & bit != 0 {
                return Err(Error::PageReachedTwice { page });
            }
            self.bits[word] |= bit;
        }
        self.reached += count;
        Ok(())
    }

    /// Pages marked so far.
    pub fn reached(&self) -> u64 {
        self.reached
    }
}
