//! Arbitrary bytes decoded as a WAL payload (`WriteBatch`). A batch the
//! decoder accepts must re-encode to exactly the input (the encoding is
//! canonical, so no two inputs decode to the same batch), and every one of
//! its operations must decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_lsm::WriteBatch;

fuzz_target!(|data: &[u8]| {
    let Ok((batch, first_sequence_number)) = WriteBatch::decode(data) else {
        return;
    };
    let mut operations = 0;
    for op in batch.ops() {
        op.expect("decode validated every operation");
        operations += 1;
    }
    assert_eq!(operations, batch.len());
    let mut encoded = Vec::new();
    batch.encode(first_sequence_number, &mut encoded);
    assert_eq!(encoded, data, "an accepted batch is canonical");
});
