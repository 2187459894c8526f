//! Streaming a snapshot directory to a follower in chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raftwood_lsm::fs::FileSystem;
use raftwood_raft::{Message, NodeId};

use crate::transport::{Frame, PeerTransport, SnapshotChunk};

/// Largest chunk of file data in one frame.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Queues every file of the snapshot directory `dir` for `peer`, the last
/// chunk carrying the crc32c of all the data and `message` (the
/// `InstallSnapshot` the follower's raft core will receive once the data
/// is installed). Returns whether everything was queued.
pub async fn stream_snapshot(
    transport: &PeerTransport,
    fs: Arc<dyn FileSystem>,
    peer: NodeId,
    dir: PathBuf,
    snapshot_index: u64,
    message: Message,
) -> Result<(), String> {
    let mut files = Vec::new();
    list_files(fs.as_ref(), &dir, "", &mut files)
        .map_err(|e| format!("listing {}: {e}", dir.display()))?;
    files.sort();
    let mut crc = 0u32;
    let mut chunks: Vec<SnapshotChunk> = Vec::new();
    for file in &files {
        // The seam is blocking: read off the runtime's workers.
        let (fs, path) = (Arc::clone(&fs), dir.join(file));
        let data = tokio::task::spawn_blocking(move || fs.read_file(&path))
            .await
            .map_err(|e| format!("reading {file}: {e}"))?
            .map_err(|e| format!("reading {file}: {e}"))?;
        let mut offset = 0usize;
        loop {
            let end = (offset + CHUNK_BYTES).min(data.len());
            let piece = Bytes::copy_from_slice(&data[offset..end]);
            crc = crc32c::crc32c_append(crc, &piece);
            chunks.push(SnapshotChunk {
                snapshot_index,
                file: file.clone(),
                offset: offset as u64,
                data: piece,
                finish: None,
            });
            offset = end;
            if offset >= data.len() {
                break;
            }
        }
        // Send as we go so memory stays bounded by one file.
        let last_file = Some(file) == files.last();
        let keep = usize::from(last_file);
        while chunks.len() > keep {
            let chunk = chunks.remove(0);
            if !transport.send_frame(peer, Frame::SnapshotChunk(chunk)) {
                return Err(format!("peer {peer:x} is not connected"));
            }
        }
    }
    let mut last = chunks.pop().unwrap_or(SnapshotChunk {
        snapshot_index,
        file: String::new(),
        offset: 0,
        data: Bytes::new(),
        finish: None,
    });
    last.finish = Some((crc, message));
    if transport.send_frame(peer, Frame::SnapshotChunk(last)) {
        Ok(())
    } else {
        Err(format!("peer {peer:x} is not connected"))
    }
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
