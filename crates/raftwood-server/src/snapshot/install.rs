//! Installing a snapshot received from the leader as this member's state
//! machine, and finding, at start-up, which snapshot the live state
//! machine came from.
//!
//! Durability order: the received files are synced as the transfer
//! completes (`transport/snapshot_receive.rs`); the checkpoint is renamed
//! to `kv-<index>` and the received directory synced (so the old name is
//! gone before the new one counts), its meta written beside it as
//! `kv-<index>.raft-snapshot` and `member/` synced; then `kv-current` is
//! replaced (temp file, sync, rename, sync). A crash before the last
//! rename leaves the old state machine live (the raft core has not heard
//! of the snapshot yet, so it asks again); after it, the new one, whose
//! durable applied index is the snapshot's — possibly ahead of the raft
//! log, if the crash came before the core persisted the snapshot point:
//! start-up then resets the log to the installed snapshot's meta
//! (`recovery.rs`).

use std::path::Path;

use raftwood_kv::KvStore;
use raftwood_raft::{Index, SnapshotMeta};

use super::meta_file::{self, META_FILE};
use crate::durable::{remove_tree_synced, write_file_synced};
use crate::state_dir::StateDir;

/// Makes the snapshot received into `received` (a checkpoint in `kv/`
/// and its meta file) the live state machine, and opens it. The meta is
/// kept beside the state machine, so a restart that finds the state
/// machine ahead of the raft log knows which log position and membership
/// it stands for. `received` is gone afterwards.
pub fn install(dirs: &StateDir, received: &Path, index: Index) -> Result<KvStore, String> {
    let fs = dirs.fs().as_ref();
    let io =
        |what: &str, e: raftwood_lsm::Error| format!("installing snapshot {index}: {what}: {e}");
    let meta_bytes = fs
        .read_file(&received.join(META_FILE))
        .map_err(|e| io("reading its meta", e))?;
    let meta = meta_file::decode(&meta_bytes)
        .ok_or_else(|| format!("installing snapshot {index}: its meta is damaged"))?;
    if meta.index != index {
        return Err(format!(
            "installing snapshot {index}: its meta says index {}",
            meta.index
        ));
    }
    let name = format!("kv-{index:016x}");
    let target = dirs.member().join(&name);
    if fs
        .exists(&target)
        .map_err(|e| io("looking for an older copy", e))?
    {
        // Left by an install that crashed before switching to it: never
        // the live one, which this index would not be asked for again.
        remove_tree_synced(fs, &target).map_err(|e| io("clearing an older copy", e))?;
    }
    fs.rename(&received.join("kv"), &target)
        .map_err(|e| io("moving it into place", e))?;
    // The old name must be durably gone before the new one counts: a
    // crash could otherwise leave the directory under both names, and the
    // start-up clean-up of `snap-incoming` would delete the live state
    // machine's files through the old one (found by the simulator).
    fs.sync_dir(received)
        .map_err(|e| io("syncing the received directory", e))?;
    write_file_synced(fs, &dirs.installed_meta_path(&target), &meta_bytes)
        .map_err(|e| io("writing its meta", e))?;
    fs.sync_dir(dirs.member())
        .map_err(|e| io("syncing member/", e))?;
    dirs.set_current_kv(&name)
        .map_err(|e| io("switching kv-current", e))?;
    if let Err(error) = remove_tree_synced(fs, received) {
        tracing::warn!(%error, "the received snapshot's directory was not deleted");
    }
    dirs.open_kv_at(&target).map_err(|e| e.to_string())
}

/// The snapshot the live state machine `live` was installed from, if it
/// came from a leader's snapshot and its meta reads back intact.
pub fn installed_snapshot(dirs: &StateDir, live: &Path) -> Option<SnapshotMeta> {
    let bytes = dirs.fs().read_file(&dirs.installed_meta_path(live)).ok()?;
    meta_file::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use raftwood_kv::CommittedEntry;
    use raftwood_lsm::fs::{CrashFs, CrashMode, FileSystem};
    use raftwood_raft::{ConfState, Message, MessageBody};

    use super::*;
    use crate::snapshot::{Checkpoint, SnapshotStore, take};
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
            let mut receiver = SnapshotReceiver::new(fs.clone(), dirs.incoming());
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
}
