//! Arbitrary bytes as the body of a peer frame (what a peer connection
//! reads after a frame's length). A frame the decoder accepts must survive
//! an encode/decode round trip unchanged.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use raftwood_server::transport::Frame;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let mut encoded = BytesMut::new();
    frame.encode(&mut encoded);
    let again = Frame::decode(&encoded[4..]).expect("a re-encoded frame decodes");
    assert_eq!(again, frame, "round trip");
});
