//! Arbitrary bytes as an encoded raft message (inside peer frames, and the
//! forwarded proposals). A message the decoder accepts must survive an
//! encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_raft::codec::{decode_message, encode_message};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = decode_message(data) else {
        return;
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let again = decode_message(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, message, "round trip");
});
