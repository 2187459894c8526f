//! Arbitrary bytes as a committed entry's payload, applied to a store that
//! holds a few keys: every member applies what the log holds, so a payload
//! must be applied or refused (etcd's error), never panic or fail the
//! store.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use raftwood_kv::proto::etcdserverpb::PutRequest;
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_kv::{CommittedEntry, KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};

fuzz_target!(|data: &[u8]| {
    let fs: Arc<dyn FileSystem> = Arc::new(CrashFs::new());
    let mut options = KvOptions::default();
    options.lsm.fs = fs;
    options.lsm.background_threads = false;
    let store = KvStore::open(Path::new("/kv"), options).expect("an in-memory store");
    let puts: Vec<Vec<u8>> = [&b"a"[..], b"b", b"c"]
        .iter()
        .enumerate()
        .map(|(i, key)| {
            InternalRequest {
                id: i as u64 + 1,
                request: Some(internal_request::Request::Put(PutRequest {
                    key: key.to_vec(),
                    value: b"v".to_vec(),
                    ..PutRequest::default()
                })),
            }
            .encode_to_vec()
        })
        .collect();
    let mut entries: Vec<CommittedEntry<'_>> = puts
        .iter()
        .enumerate()
        .map(|(i, put)| CommittedEntry {
            index: i as u64 + 1,
            request: Some(put),
        })
        .collect();
    entries.push(CommittedEntry {
        index: 4,
        request: Some(data),
    });
    store
        .apply(&entries)
        .expect("an entry is applied or refused, never fails the store");
    assert_eq!(store.applied_index(), 4);
});
