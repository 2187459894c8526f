//! Arbitrary bytes decoded as an SSTable block (already past its checksum)
//! and walked forwards, backwards and by seeks: errors are fine, panics and
//! endless loops are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raftwood_lsm::sstable::fuzz_decode_block(data);
});
