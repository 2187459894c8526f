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
