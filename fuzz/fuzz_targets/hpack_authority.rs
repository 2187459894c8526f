//! Arbitrary bytes as an HPACK header block from a client, through the
//! `:authority` rewriter that parses every client connection's headers. A
//! block it rewrites must be left as it is by a second rewrite (every
//! authority already has the new value, and nothing else changed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_server::grpc::authority::rewrite_header_block;

fuzz_target!(|data: &[u8]| {
    let authority = b"127.0.0.1:2379";
    let Some(rewritten) = rewrite_header_block(data, authority) else {
        return;
    };
    let again = rewrite_header_block(&rewritten, authority).expect("a rewritten block parses");
    assert_eq!(again, rewritten, "a second rewrite changes nothing");
});
