//! Streaming a snapshot directory to a follower in chunks, read from disk
//! as the connection takes them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raftwood_lsm::fs::{FileSystem, RandomAccessFile};
use raftwood_raft::{Message, NodeId};
use tokio::sync::oneshot;

use super::sender::QueuedChunk;
use super::{PeerQueues, PeerTransport, SNAPSHOT_QUEUE, SnapshotChunk};

/// Largest chunk of file data in one frame.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Streams every file of the snapshot directory `dir` to `peer`, read
/// from disk a chunk at a time as the connection takes them; the last
/// chunk carries the crc32c of all the data and `message` (the
/// `InstallSnapshot` the follower's raft core will receive once the data is
/// installed). Returns once every chunk was written to the connection, or
/// the first failure.
pub async fn stream_snapshot(
    transport: &PeerTransport,
    fs: Arc<dyn FileSystem>,
    peer: NodeId,
    dir: PathBuf,
    snapshot_index: u64,
    message: Message,
) -> Result<(), String> {
    debug_assert!(matches!(
        &message.body,
        raftwood_raft::MessageBody::InstallSnapshot { snapshot } if snapshot.index == snapshot_index
    ));
    let queues = transport
        .queues(peer)
        .ok_or_else(|| format!("{peer:x} is not a peer"))?;
    let mut files = Vec::new();
    list_files(fs.as_ref(), &dir, "", &mut files)
        .map_err(|e| format!("listing {}: {e}", dir.display()))?;
    files.sort();
    // Names the receiver takes: at most one directory deep.
    debug_assert!(files.iter().all(|file| file.split('/').count() <= 2));
    let mut stream = ChunkStream {
        queues,
        in_flight: VecDeque::new(),
    };
    let mut crc = 0u32;
    // The last chunk waits for the checksum of everything before it.
    let mut held: Option<SnapshotChunk> = None;
    for file in &files {
        let (reader, size) = open(&fs, &dir.join(file)).await?;
        let mut offset = 0u64;
        loop {
            let len = usize::try_from((size - offset).min(CHUNK_BYTES as u64))
                .map_err(|e| format!("chunk of {file}: {e}"))?;
            let data = read_at(&reader, offset, len).await?;
            crc = crc32c::crc32c_append(crc, &data);
            if let Some(previous) = held.take() {
                // Each file's chunks follow each other without a gap, as
                // the receiver requires.
                debug_assert!(
                    previous.file != *file
                        || previous.offset + previous.data.len() as u64 == offset,
                    "chunk of {file} at {offset} does not follow the previous"
                );
                stream.send(previous).await?;
            }
            held = Some(SnapshotChunk {
                snapshot_index,
                file: file.clone(),
                offset,
                data: Bytes::from(data),
                finish: None,
            });
            offset += len as u64;
            if offset >= size {
                break;
            }
        }
        assert_eq!(offset, size, "{file} is sent whole");
    }
    let mut last = held.unwrap_or(SnapshotChunk {
        snapshot_index,
        file: String::new(),
        offset: 0,
        data: Bytes::new(),
        finish: None,
    });
    last.finish = Some((crc, message));
    stream.send(last).await?;
    stream.all_written().await
}

/// Chunks on their way to one peer.
struct ChunkStream {
    queues: PeerQueues,
    /// Whether each chunk queued and not yet confirmed was written.
    in_flight: VecDeque<oneshot::Receiver<()>>,
}

impl ChunkStream {
    /// Queues `chunk`, first waiting until at most a queue's worth of
    /// chunks is unconfirmed: what a transfer holds in memory is bounded.
    async fn send(&mut self, chunk: SnapshotChunk) -> Result<(), String> {
        while self.in_flight.len() > SNAPSHOT_QUEUE {
            self.confirm_oldest().await?;
        }
        let (written, confirmation) = oneshot::channel();
        self.queues
            .chunks
            .send(QueuedChunk { chunk, written })
            .await
            .map_err(|_| "the member is stopping".to_string())?;
        self.in_flight.push_back(confirmation);
        Ok(())
    }

    async fn confirm_oldest(&mut self) -> Result<(), String> {
        if let Some(confirmation) = self.in_flight.pop_front() {
            confirmation
                .await
                .map_err(|_| "the connection was lost".to_string())?;
        }
        Ok(())
    }

    /// Waits until every chunk queued was written.
    async fn all_written(mut self) -> Result<(), String> {
        while !self.in_flight.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(())
    }
}

/// Opens a file of the snapshot for reading, off the runtime's workers
/// (the seam is blocking).
async fn open(
    fs: &Arc<dyn FileSystem>,
    path: &Path,
) -> Result<(Arc<dyn RandomAccessFile>, u64), String> {
    let (fs, owned) = (Arc::clone(fs), path.to_path_buf());
    let reader = tokio::task::spawn_blocking(move || fs.open_random_access(&owned))
        .await
        .map_err(|e| format!("opening {}: {e}", path.display()))?
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let size = reader.size();
    Ok((reader, size))
}

async fn read_at(
    reader: &Arc<dyn RandomAccessFile>,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, String> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || reader.read_exact_at(offset, len))
        .await
        .map_err(|e| format!("reading at {offset}: {e}"))?
        .map_err(|e| format!("reading at {offset}: {e}"))
}

/// Files under `dir`, one level of subdirectories deep, as relative names.
fn list_files(
    fs: &dyn FileSystem,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<String>,
) -> raftwood_lsm::Result<()> {
    for name in fs.list_dir(dir)? {
        let path = dir.join(&name);
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if fs.is_dir(&path)? {
            if prefix.is_empty() {
                list_files(fs, &path, &relative, out)?;
            }
        } else {
            out.push(relative);
        }
    }
    Ok(())
}
