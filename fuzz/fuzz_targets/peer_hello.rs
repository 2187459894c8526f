//! Arbitrary bytes as the hello a peer connection starts with: the 12-byte
//! header, then the body. A hello the decoder accepts must re-encode to
//! exactly the bytes it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_server::transport::Hello;

fuzz_target!(|data: &[u8]| {
    let Some((header, body)) = data.split_first_chunk::<12>() else {
        return;
    };
    let Ok(len) = Hello::decode_header(header) else {
        return;
    };
    let Some(body) = body.get(..len as usize) else {
        return;
    };
    let Ok(hello) = Hello::decode_body(body) else {
        return;
    };
    let encoded = hello.encode();
    let again = Hello::decode_body(&encoded[12..]).expect("a re-encoded hello decodes");
    assert_eq!(again, hello, "round trip");
});
