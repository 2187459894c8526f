//! A snapshot's whole way into a follower, on the crash-modelling
//! filesystem: received by `SnapshotReceiver`, installed by
//! `snapshot::install`, with a power cut after every possible number of
//! filesystem operations. (Here, not beside `install`, so that `snapshot/`
//! does not import `transport/` even in tests.)

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use raftwood_kv::CommittedEntry;
use raftwood_lsm::fs::{CrashFs, CrashMode, FileSystem};
use raftwood_raft::{ConfState, Message, MessageBody, SnapshotMeta};

use crate::snapshot::{Checkpoint, SnapshotStore, install, take};
use crate::state_dir::StateDir;
use crate::transport::{SnapshotChunk, SnapshotReceiver};

fn put(i: u64) -> Vec<u8> {
    use prost::Message as _;
    let request = crate::proto::raftwoodpb::InternalRequest {
        id: i + 1,
        request: Some(crate::proto::raftwoodpb::internal_request::Request::Put(
            crate::proto::etcdserverpb::PutRequest {
                key: format!("key{i}").into_bytes(),
                value: vec![b'v'; 100],
                ..Default::default()
            },
        )),
    };
    request.encode_to_vec()
}

/// A leader's state machine with `puts` keys, snapshotted and finished
/// at its applied index; returns the files of the finished snapshot.
fn leader_snapshot(puts: u64) -> (Vec<(String, Vec<u8>)>, SnapshotMeta) {
    let fs = Arc::new(CrashFs::new());
    let dirs = StateDir::new(fs.clone(), Path::new("/leader"));
    fs.create_dir_all(dirs.member()).unwrap();
    let kv = dirs.open_kv_at(&dirs.member().join("kv")).unwrap();
    let requests: Vec<Vec<u8>> = (0..puts).map(put).collect();
    let entries: Vec<CommittedEntry<'_>> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| CommittedEntry {
            index: i as u64 + 2,
            request: Some(r),
        })
        .collect();
    kv.apply(&entries).unwrap();
    let store = SnapshotStore::open(fs.clone(), dirs.snapshot_root()).unwrap();
    let taken = take(&store, &kv, puts + 1, Checkpoint::FlushFirst).unwrap();
    let meta = SnapshotMeta {
        index: taken.index,
        term: 2,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let path = store.finish(&taken.temp_dir, &meta).unwrap();
    let mut files = Vec::new();
    for name in fs.list_dir(&path).unwrap() {
        let child = path.join(&name);
        if fs.is_dir(&child).unwrap() {
            for inner in fs.list_dir(&child).unwrap() {
                files.push((
                    format!("{name}/{inner}"),
                    fs.read_file(&child.join(&inner)).unwrap(),
                ));
            }
        } else {
            files.push((name, fs.read_file(&child).unwrap()));
        }
    }
    files.sort();
    (files, meta)
}

#[test]
fn a_received_and_installed_snapshot_survives_a_power_cut_at_any_step() {
    let (files, meta) = leader_snapshot(50);
    let crc = files
        .iter()
        .fold(0, |c, (_, d)| crc32c::crc32c_append(c, d));
    for cut_after in 0..200u64 {
        let fs = Arc::new(CrashFs::new());
        let dirs = StateDir::new(fs.clone(), Path::new("/data"));
        fs.create_dir_all(&dirs.incoming()).unwrap();
        fs.create_dir_all(&dirs.member().join("kv")).unwrap();
        fs.sync_dir(dirs.member()).unwrap();
        fs.sync_dir(Path::new("/data")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.crash_after_operations(cut_after);
        let mut receiver = SnapshotReceiver::new(fs.clone(), dirs.incoming(), u64::MAX);
        let message = Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::InstallSnapshot {
                snapshot: meta.clone(),
            },
        };
        let mut received = None;
        let mut failed = false;
        for (i, (file, data)) in files.iter().enumerate() {
            let chunk = SnapshotChunk {
                snapshot_index: meta.index,
                file: file.clone(),
                offset: 0,
                data: Bytes::from(data.clone()),
                finish: (i + 1 == files.len()).then(|| (crc, message.clone())),
            };
            match receiver.receive(1, chunk) {
                Ok(Some((dir, _))) => received = Some(dir),
                Ok(None) => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let installed = match (failed, received) {
            (false, Some(dir)) => install(&dirs, &dir, meta.index).is_ok(),
            _ => false,
        };
        fs.crash(CrashMode::DropUnsynced);
        // What start-up does before opening the live store.
        crate::durable::remove_tree_synced(fs.as_ref(), &dirs.incoming()).unwrap();
        let live = dirs.current_kv().unwrap();
        let kv = dirs.open_kv_at(&live).unwrap();
        let applied = kv.applied_index();
        if live.ends_with("kv") {
            assert_eq!(applied, 0, "cut after {cut_after}: the old, empty store");
        } else {
            assert_eq!(
                applied, meta.index,
                "cut after {cut_after}: the installed store"
            );
        }
        if installed {
            assert!(
                !live.ends_with("kv"),
                "cut after {cut_after}: an install that returned is durable"
            );
        }
    }
}

/// An install that stopped before keeping the snapshot as the member's own
/// leaves a log that will start at a snapshot the member cannot send; the
/// start-up keeps the live store as that snapshot (found by the
/// simulator's membership churn: a member added later never caught up).
#[test]
fn a_store_installed_but_not_kept_is_kept_as_the_members_snapshot_once() {
    let (files, meta) = leader_snapshot(20);
    let fs = Arc::new(CrashFs::new());
    let dirs = StateDir::new(fs.clone(), Path::new("/data"));
    fs.create_dir_all(&dirs.incoming()).unwrap();
    fs.create_dir_all(&dirs.member().join("kv")).unwrap();
    let received = dirs.incoming().join("from-leader");
    for (file, data) in &files {
        let path = received.join(file);
        fs.create_dir_all(path.parent().unwrap()).unwrap();
        crate::durable::write_file_synced(fs.as_ref(), &path, data).unwrap();
    }
    let kv = install(&dirs, &received, meta.index).unwrap();
    let store = SnapshotStore::open(fs.clone(), dirs.snapshot_root()).unwrap();
    let kept = store.path_of(meta.index);
    assert!(!fs.exists(&kept).unwrap(), "not kept by install itself");

    crate::snapshot::keep_live_store_if_missing(&store, &kv, &meta).unwrap();
    let meta_path = kept.join(crate::snapshot::META_FILE);
    let written = fs.read_file(&meta_path).unwrap();
    assert_eq!(crate::snapshot::decode_meta(&written), Some(meta.clone()));
    let copy = dirs.open_kv_at(&kept.join("kv")).unwrap();
    assert_eq!(copy.applied_index(), meta.index, "the kept copy is whole");
    drop(copy);

    // Kept already: a second start-up leaves it alone.
    fs.remove_file(&meta_path).unwrap();
    crate::snapshot::keep_live_store_if_missing(&store, &kv, &meta).unwrap();
    assert!(
        !fs.exists(&meta_path).unwrap(),
        "an existing snapshot is not redone"
    );
}
