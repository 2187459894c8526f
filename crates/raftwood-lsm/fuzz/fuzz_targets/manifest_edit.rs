//! Arbitrary bytes decoded as a manifest record (`VersionEdit`). An edit the
//! decoder accepts must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_lsm::version::VersionEdit;

fuzz_target!(|data: &[u8]| {
    let Ok(edit) = VersionEdit::decode(data) else {
        return;
    };
    let mut encoded = Vec::new();
    edit.encode(&mut encoded);
    let again = VersionEdit::decode(&encoded).expect("a re-encoded edit decodes");
    assert_eq!(again, edit, "round trip");
});
