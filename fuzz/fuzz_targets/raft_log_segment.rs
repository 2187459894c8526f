//! Arbitrary bytes as the raft log's only segment file, opened by the log
//! store (recovery reads every record). Opening may refuse the file; it
//! must not panic, loop or allocate without bound.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};

fuzz_target!(|data: &[u8]| {
    let fs = Arc::new(CrashFs::new());
    let dir = Path::new("/raft");
    fs.create_dir_all(dir).expect("an in-memory directory");
    let mut segment = fs
        .create_file(&dir.join("0000000000000001.log"))
        .expect("an in-memory file");
    segment.append(data).expect("an in-memory write");
    drop(segment);
    let _ = RaftLogStore::open(fs, dir, LogOptions::default());
});
