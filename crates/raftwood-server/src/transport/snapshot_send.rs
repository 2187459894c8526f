//! Streaming a snapshot directory to a follower in chunks.

use std::path::Path;

use bytes::Bytes;
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
    peer: NodeId,
    dir: &Path,
    snapshot_index: u64,
    message: Message,
) -> Result<(), String> {
    let mut files = Vec::new();
    list_files(dir, "", &mut files).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    files.sort();
    let mut crc = 0u32;
    let mut chunks: Vec<SnapshotChunk> = Vec::new();
    for file in &files {
        let data = tokio::fs::read(dir.join(file))
            .await
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
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            if prefix.is_empty() {
                list_files(&entry.path(), &relative, out)?;
            }
        } else {
            out.push(relative);
        }
    }
    Ok(())
}
