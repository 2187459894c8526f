//! Arbitrary bytes through every decoder of the state machine's key layout
//! (records, history and revision keys, changes, leases, meta, progress of
//! large requests); what they accept must re-encode as it was read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raftwood_kv::fuzz_decode_records(data);
});
