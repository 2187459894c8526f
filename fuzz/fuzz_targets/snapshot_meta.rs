//! Arbitrary bytes as a snapshot's `raft-snapshot` meta file (read at
//! start-up). A file the decoder accepts must re-encode to exactly its
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_server::snapshot::meta_file;

fuzz_target!(|data: &[u8]| {
    let Some(meta) = meta_file::decode(data) else {
        return;
    };
    assert_eq!(meta_file::encode(&meta), data, "round trip");
});
