//! Arbitrary bytes as the body of a peer's answer to the membership query
//! (what a joining member believes about the cluster it joins). An answer
//! the decoder accepts must re-encode to one that decodes to the same
//! membership.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_server::transport::join::{decode_answer, encode_answer};

fuzz_target!(|data: &[u8]| {
    let Ok(membership) = decode_answer(data) else {
        return;
    };
    let encoded = encode_answer(&membership);
    let again = decode_answer(&encoded[12..]).expect("a re-encoded answer decodes");
    assert_eq!(again, membership, "round trip");
});
