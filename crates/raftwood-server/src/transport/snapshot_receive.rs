//! Receiving a snapshot's chunks into a fresh directory, through the
//! storage seam. Chunks of a file arrive in order (the sender streams one
//! file after another over one connection), so each chunk must start
//! where the file so far ends: a chunk that does not is refused, and so a
//! transfer can never write sparse files or outside what it sends.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use raftwood_lsm::fs::{FileSystem, WritableFile};
use raftwood_raft::{Message, NodeId};

use crate::durable::{remove_tree_synced, sync_tree};
use crate::transport::SnapshotChunk;

/// Why a transfer was abandoned.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// A chunk named a file outside the transfer's directory.
    #[error("snapshot chunk names an unsafe path {0:?}")]
    UnsafePath(String),
    /// A chunk does not continue its file where it ends.
    #[error("snapshot chunk for {file:?} at offset {offset}, but the file has {written} bytes")]
    OutOfOrder {
        /// The file.
        file: String,
        /// Where the chunk says it goes.
        offset: u64,
        /// What the file holds so far.
        written: u64,
    },
    /// The transfer is larger than this member takes.
    #[error("snapshot transfer of more than {limit} bytes")]
    TooLarge {
        /// The most a transfer may hold.
        limit: u64,
    },
    /// The data does not match the sender's checksum.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// Writing the files failed.
    #[error("writing the snapshot: {0}")]
    Io(#[from] raftwood_lsm::Error),
}

/// One transfer in progress.
#[derive(Debug)]
struct Transfer {
    from: NodeId,
    snapshot_index: u64,
    dir: PathBuf,
    crc: u32,
    /// Bytes written so far, all files together.
    bytes: u64,
    /// The files written so far, open for appending (ordered, so that the
    /// same transfer makes the same calls in the same order: the simulator
    /// replays it from a seed).
    files: BTreeMap<String, Box<dyn WritableFile>>,
}

/// Assembles incoming snapshots under `root/<index>-<n>.incoming`: `n`
/// counts this receiver's transfers, so that a transfer never reuses the
/// directory of an earlier one, which may be complete and waiting for the
/// apply thread to install it. (With one name per index, a second transfer
/// of the same snapshot, started by a leader that had not yet heard the
/// first was received, deleted and refilled the first one's directory
/// under the install: the member installed an empty state machine. Found
/// by the 3 -> 5 -> 3 membership test.)
#[derive(Debug)]
pub struct SnapshotReceiver {
    fs: Arc<dyn FileSystem>,
    root: PathBuf,
    /// The most one transfer may write.
    max_bytes: u64,
    current: Option<Transfer>,
    /// Transfers started so far (names their directories).
    transfers_started: u64,
}

impl SnapshotReceiver {
    /// A receiver writing under `root` on `fs`, refusing a transfer of
    /// more than `max_bytes`.
    pub fn new(fs: Arc<dyn FileSystem>, root: PathBuf, max_bytes: u64) -> SnapshotReceiver {
        SnapshotReceiver {
            fs,
            root,
            max_bytes,
            current: None,
            transfers_started: 0,
        }
    }

    /// Takes one chunk. When the transfer completes and checks out, returns
    /// the directory holding the snapshot (every file and directory in it
    /// durable) and the message to hand to raft. An error abandons the
    /// transfer and deletes what it wrote.
    pub fn receive(
        &mut self,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<Option<(PathBuf, Message)>, ReceiveError> {
        let result = self.receive_inner(from, chunk);
        if result.is_err()
            && let Some(transfer) = self.current.take()
        {
            drop(transfer.files);
            if let Err(error) = remove_tree_synced(self.fs.as_ref(), &transfer.dir) {
                tracing::warn!(%error, "an abandoned snapshot transfer was not deleted");
            }
        }
        // A completed transfer is handed over, from the receiver's root.
        if let Ok(Some((dir, _))) = &result {
            debug_assert!(self.current.is_none() && dir.parent() == Some(self.root.as_path()));
        }
        self.check_invariants();
        result
    }

    /// A transfer in progress writes within its limit, into its own
    /// directory, and has counted every byte its files hold.
    fn check_invariants(&self) {
        let Some(transfer) = &self.current else {
            return;
        };
        assert!(
            transfer.bytes <= self.max_bytes,
            "a transfer of {} bytes, the limit is {}",
            transfer.bytes,
            self.max_bytes
        );
        assert_eq!(
            transfer.dir,
            self.root.join(format!(
                "{:016x}-{}.incoming",
                transfer.snapshot_index, self.transfers_started
            )),
            "a transfer writes into a directory of its own, named after its index"
        );
        debug_assert_eq!(
            transfer.files.values().map(|file| file.len()).sum::<u64>(),
            transfer.bytes,
            "the bytes counted are the bytes written"
        );
    }

    fn receive_inner(
        &mut self,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<Option<(PathBuf, Message)>, ReceiveError> {
        // The same transfer goes on, unless this chunk starts a file it
        // already has: the sender started over (a lost connection).
        let same = self.current.as_ref().is_some_and(|t| {
            t.from == from
                && t.snapshot_index == chunk.snapshot_index
                && !(chunk.offset == 0 && t.files.contains_key(&chunk.file))
        });
        if !same {
            self.start(from, chunk.snapshot_index)?;
        }
        let fs = Arc::clone(&self.fs);
        let Some(transfer) = self.current.as_mut() else {
            return Ok(None);
        };
        if !chunk.file.is_empty() {
            let bytes = transfer.bytes.saturating_add(chunk.data.len() as u64);
            if bytes > self.max_bytes {
                return Err(ReceiveError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            write_chunk(fs.as_ref(), transfer, &chunk)?;
            transfer.bytes = bytes;
        }
        let Some((crc, message)) = chunk.finish else {
            return Ok(None);
        };
        if crc != transfer.crc {
            return Err(ReceiveError::Checksum);
        }
        // Every file and directory durable before the snapshot is
        // installed: one sync per file, through the tree walk (the open
        // handles are closed first; syncing them too would sync each file
        // twice).
        transfer.files.clear();
        sync_tree(fs.as_ref(), &transfer.dir)?;
        fs.sync_dir(&self.root)?;
        let Some(transfer) = self.current.take() else {
            return Ok(None);
        };
        Ok(Some((transfer.dir, message)))
    }

    /// Starts a transfer, replacing an abandoned one.
    fn start(&mut self, from: NodeId, snapshot_index: u64) -> Result<(), ReceiveError> {
        if let Some(abandoned) = self.current.take() {
            drop(abandoned.files);
            remove_tree_synced(self.fs.as_ref(), &abandoned.dir)?;
        }
        self.transfers_started += 1;
        let dir = self.root.join(format!(
            "{snapshot_index:016x}-{}.incoming",
            self.transfers_started
        ));
        remove_tree_synced(self.fs.as_ref(), &dir)?;
        self.fs.create_dir_all(&dir)?;
        self.current = Some(Transfer {
            from,
            snapshot_index,
            dir,
            crc: 0,
            bytes: 0,
            files: BTreeMap::new(),
        });
        Ok(())
    }
}

/// A relative path of at most two plain components (`kv/000012.sst`).
fn is_safe(relative: &Path) -> bool {
    let depth = relative.components().count();
    (1..=2).contains(&depth)
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn write_chunk(
    fs: &dyn FileSystem,
    transfer: &mut Transfer,
    chunk: &SnapshotChunk,
) -> Result<(), ReceiveError> {
    let relative = Path::new(&chunk.file);
    if !is_safe(relative) {
        return Err(ReceiveError::UnsafePath(chunk.file.clone()));
    }
    let file = match transfer.files.entry(chunk.file.clone()) {
        Entry::Occupied(open) => open.into_mut(),
        Entry::Vacant(new) => {
            let path = transfer.dir.join(relative);
            if let Some(parent) = path.parent() {
                fs.create_dir_all(parent)?;
            }
            new.insert(fs.create_file(&path)?)
        }
    };
    if chunk.offset != file.len() {
        return Err(ReceiveError::OutOfOrder {
            file: chunk.file.clone(),
            offset: chunk.offset,
            written: file.len(),
        });
    }
    file.append(&chunk.data)?;
    // Invariant: files only grow by whole chunks at their end.
    debug_assert_eq!(file.len(), chunk.offset + chunk.data.len() as u64);
    transfer.crc = crc32c::crc32c_append(transfer.crc, &chunk.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftwood_lsm::fs::{CrashFs, CrashMode};
    use raftwood_raft::{MessageBody, SnapshotMeta};

    use super::*;

    fn chunk(file: &str, offset: u64, data: &'static [u8], finish: Option<u32>) -> SnapshotChunk {
        SnapshotChunk {
            snapshot_index: 7,
            file: file.into(),
            offset,
            data: Bytes::from_static(data),
            finish: finish.map(|crc| {
                (
                    crc,
                    Message {
                        from: 1,
                        to: 2,
                        term: 3,
                        body: MessageBody::InstallSnapshot {
                            snapshot: SnapshotMeta::default(),
                        },
                    },
                )
            }),
        }
    }

    fn receiver() -> (Arc<CrashFs>, SnapshotReceiver) {
        let fs = Arc::new(CrashFs::new());
        fs.create_dir_all(Path::new("/member/snap-incoming"))
            .unwrap();
        let receiver = SnapshotReceiver::new(fs.clone(), "/member/snap-incoming".into(), 1 << 20);
        (fs, receiver)
    }

    #[test]
    fn a_complete_transfer_is_assembled_checked_and_durable() {
        let (fs, mut receiver) = receiver();
        fs.sync_dir(Path::new("/member")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let crc = crc32c::crc32c_append(crc32c::crc32c(b"hello "), b"world");
        assert!(
            receiver
                .receive(1, chunk("kv/a.sst", 0, b"hello ", None))
                .unwrap()
                .is_none()
        );
        let (dir, message) = receiver
            .receive(1, chunk("kv/a.sst", 6, b"world", Some(crc)))
            .unwrap()
            .unwrap();
        assert!(matches!(message.body, MessageBody::InstallSnapshot { .. }));
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(&dir.join("kv/a.sst")).unwrap(), b"hello world");
    }

    /// A complete transfer waits for the apply thread; the leader, not yet
    /// told, streams the same snapshot again. The second transfer must not
    /// touch the first's directory.
    #[test]
    fn a_second_transfer_of_the_same_snapshot_leaves_the_completed_one_alone() {
        let (fs, mut receiver) = receiver();
        let crc = crc32c::crc32c(b"whole");
        let (first, _) = receiver
            .receive(1, chunk("kv/a.sst", 0, b"whole", Some(crc)))
            .unwrap()
            .unwrap();
        receiver
            .receive(1, chunk("kv/a.sst", 0, b"wh", None))
            .unwrap();
        assert_eq!(fs.read_file(&first.join("kv/a.sst")).unwrap(), b"whole");
        let (second, _) = receiver
            .receive(1, chunk("kv/a.sst", 2, b"ole", Some(crc)))
            .unwrap()
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(fs.read_file(&first.join("kv/a.sst")).unwrap(), b"whole");
        assert_eq!(fs.read_file(&second.join("kv/a.sst")).unwrap(), b"whole");
    }

    #[test]
    fn a_chunk_that_does_not_continue_its_file_is_refused() {
        let (fs, mut receiver) = receiver();
        receiver
            .receive(1, chunk("kv/a.sst", 0, b"hello ", None))
            .unwrap();
        // A gap (a sparse write) and an overlap are both refused.
        let gap = receiver.receive(1, chunk("kv/a.sst", 1 << 40, b"x", None));
        assert!(
            matches!(gap, Err(ReceiveError::OutOfOrder { .. })),
            "{gap:?}"
        );
        assert!(
            fs.list_dir(Path::new("/member/snap-incoming"))
                .unwrap()
                .is_empty()
        );
        let first = receiver.receive(1, chunk("b", 3, b"x", None));
        assert!(
            matches!(first, Err(ReceiveError::OutOfOrder { .. })),
            "{first:?}"
        );
    }

    #[test]
    fn a_wrong_checksum_is_refused_and_its_files_removed() {
        let (fs, mut receiver) = receiver();
        receiver.receive(1, chunk("a", 0, b"data", None)).unwrap();
        let result = receiver.receive(1, chunk("b", 0, b"more", Some(12345)));
        assert!(matches!(result, Err(ReceiveError::Checksum)), "{result:?}");
        assert!(
            fs.list_dir(Path::new("/member/snap-incoming"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_chunk_naming_a_path_outside_the_transfer_is_refused() {
        let (fs, mut receiver) = receiver();
        for bad in ["../escape", "/etc/passwd", "kv/../../x", "a/b/c"] {
            let result = receiver.receive(1, chunk(bad, 0, b"x", None));
            assert!(
                matches!(result, Err(ReceiveError::UnsafePath(_))),
                "{bad}: {result:?}"
            );
        }
        assert!(!fs.exists(Path::new("/member/escape")).unwrap());
    }

    #[test]
    fn a_transfer_larger_than_the_limit_is_refused_and_removed() {
        let (fs, mut receiver) = receiver();
        let half = vec![0u8; 600 * 1024].leak();
        receiver.receive(1, chunk("a", 0, half, None)).unwrap();
        let over = receiver.receive(1, chunk("b", 0, half, None));
        assert!(
            matches!(over, Err(ReceiveError::TooLarge { limit }) if limit == 1 << 20),
            "{over:?}"
        );
        assert!(
            fs.list_dir(Path::new("/member/snap-incoming"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_transfer_started_over_replaces_the_one_cut_short() {
        let (fs, mut receiver) = receiver();
        receiver.receive(1, chunk("a", 0, b"hel", None)).unwrap();
        // The connection was lost; the sender starts again from the top.
        receiver.receive(1, chunk("a", 0, b"hello ", None)).unwrap();
        let crc = crc32c::crc32c_append(crc32c::crc32c(b"hello "), b"world");
        let (dir, _) = receiver
            .receive(1, chunk("a", 6, b"world", Some(crc)))
            .unwrap()
            .unwrap();
        assert_eq!(fs.read_file(&dir.join("a")).unwrap(), b"hello world");
    }
}
