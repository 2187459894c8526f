//! Receiving a snapshot's chunks into a fresh directory.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use raftwood_raft::{Message, NodeId};

use crate::durable::sync_dir;
use crate::transport::SnapshotChunk;

/// Why a transfer was abandoned.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// A chunk named a file outside the transfer's directory.
    #[error("snapshot chunk names an unsafe path {0:?}")]
    UnsafePath(String),
    /// The data does not match the sender's checksum.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// Writing the files failed.
    #[error("writing the snapshot: {0}")]
    Io(#[from] std::io::Error),
}

/// One transfer in progress.
#[derive(Debug)]
struct Transfer {
    from: NodeId,
    snapshot_index: u64,
    dir: PathBuf,
    crc: u32,
}

/// Assembles incoming snapshots under `root/<index>.incoming`.
#[derive(Debug)]
pub struct SnapshotReceiver {
    root: PathBuf,
    current: Option<Transfer>,
}

impl SnapshotReceiver {
    /// A receiver writing under `root`.
    pub fn new(root: PathBuf) -> SnapshotReceiver {
        SnapshotReceiver {
            root,
            current: None,
        }
    }

    /// Takes one chunk. When the transfer completes and checks out, returns
    /// the directory holding the snapshot and the message to hand to raft.
    pub fn receive(
        &mut self,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<Option<(PathBuf, Message)>, ReceiveError> {
        let same = self
            .current
            .as_ref()
            .is_some_and(|t| t.from == from && t.snapshot_index == chunk.snapshot_index);
        if !same {
            // A new transfer replaces an abandoned one.
            let dir = self
                .root
                .join(format!("{:016x}.incoming", chunk.snapshot_index));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            self.current = Some(Transfer {
                from,
                snapshot_index: chunk.snapshot_index,
                dir,
                crc: 0,
            });
        }
        let Some(transfer) = self.current.as_mut() else {
            return Ok(None);
        };
        if !chunk.file.is_empty() {
            let relative = Path::new(&chunk.file);
            let depth = relative.components().count();
            let safe = (1..=2).contains(&depth)
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
            if !safe {
                self.current = None;
                return Err(ReceiveError::UnsafePath(chunk.file));
            }
            let path = transfer.dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            file.seek(SeekFrom::Start(chunk.offset))?;
            file.write_all(&chunk.data)?;
            transfer.crc = crc32c::crc32c_append(transfer.crc, &chunk.data);
        }
        let Some((crc, message)) = chunk.finish else {
            return Ok(None);
        };
        let Some(transfer) = self.current.take() else {
            return Ok(None);
        };
        if crc != transfer.crc {
            let _ = std::fs::remove_dir_all(&transfer.dir);
            return Err(ReceiveError::Checksum);
        }
        // Every file and directory durable before the snapshot is installed.
        sync_tree(&transfer.dir)?;
        Ok(Some((transfer.dir, message)))
    }
}

/// Fsyncs every file under `dir`, then the directories bottom-up.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
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

    #[test]
    fn a_complete_transfer_is_assembled_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let mut receiver = SnapshotReceiver::new(root.path().to_path_buf());
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
        assert_eq!(std::fs::read(dir.join("kv/a.sst")).unwrap(), b"hello world");
        assert!(matches!(message.body, MessageBody::InstallSnapshot { .. }));
    }

    #[test]
    fn a_wrong_checksum_is_refused_and_its_files_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut receiver = SnapshotReceiver::new(root.path().to_path_buf());
        receiver.receive(1, chunk("a", 0, b"data", None)).unwrap();
        let result = receiver.receive(1, chunk("b", 0, b"more", Some(12345)));
        assert!(matches!(result, Err(ReceiveError::Checksum)), "{result:?}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_chunk_naming_a_path_outside_the_transfer_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut receiver = SnapshotReceiver::new(root.path().join("incoming"));
        for bad in ["../escape", "/etc/passwd", "kv/../../x", "a/b/c"] {
            let result = receiver.receive(1, chunk(bad, 0, b"x", None));
            assert!(
                matches!(result, Err(ReceiveError::UnsafePath(_))),
                "{bad}: {result:?}"
            );
        }
        assert!(!root.path().join("escape").exists());
    }
}
