//! The changes watchers last read, shared by every watch stream of a
//! member. After an apply every watcher that is caught up asks for the
//! same changes (from the same revision on); the first to ask reads them
//! from the store, off the runtime's workers, and the others take the
//! same batch: one read per apply, however many watchers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raftwood_kv::{EventBatch, RequestError};
use tokio::sync::Mutex;

use crate::grpc::member::MemberHandle;

/// Batches kept: a few revisions' worth, for streams a little behind.
const CACHED_BATCHES: usize = 16;
/// Events read per batch, so that one read is bounded.
pub const EVENTS_PER_BATCH: usize = 1000;

/// One batch read, and what it was read for.
#[derive(Debug)]
struct Cached {
    start_revision: i64,
    prev_kv: bool,
    batch: Arc<EventBatch>,
}

/// See the module comment.
#[derive(Debug, Default)]
pub struct EventCache {
    /// Newest last. An async lock: a stream that finds no batch reads it
    /// while the others wait, then they find it.
    recent: Mutex<VecDeque<Cached>>,
    /// Reads from the store (for tests and diagnostics).
    reads: AtomicU64,
}

impl EventCache {
    /// The changes from `start_revision` on (at most a batch), with
    /// previous values if `prev_kv`. Changes at a revision never change, so
    /// a batch read earlier is as good as a new one; a watcher continues
    /// after its `through_revision`.
    pub async fn events(
        &self,
        member: &MemberHandle,
        start_revision: i64,
        prev_kv: bool,
    ) -> Result<Arc<EventBatch>, ReadError> {
        let mut recent = self.recent.lock().await;
        let found = recent
            .iter()
            .find(|cached| cached.start_revision == start_revision && cached.prev_kv == prev_kv);
        if let Some(cached) = found {
            return Ok(Arc::clone(&cached.batch));
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let batch = member
            .read_store(move |kv| kv.events(start_revision, EVENTS_PER_BATCH, prev_kv))
            .await
            .map_err(|_| ReadError::Stopped)?
            .map_err(ReadError::Store)?;
        let batch = Arc::new(batch);
        // A batch that got nowhere (asked past the store's revision) is
        // not kept: the store moves on, the batch would not.
        if batch.through_revision < start_revision {
            return Ok(batch);
        }
        if recent.len() == CACHED_BATCHES {
            recent.pop_front();
        }
        recent.push_back(Cached {
            start_revision,
            prev_kv,
            batch: Arc::clone(&batch),
        });
        debug_assert!(recent.len() <= CACHED_BATCHES);
        Ok(batch)
    }

    /// Reads from the store so far.
    #[cfg(test)]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// Why changes could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The store refused (history compacted away) or failed.
    Store(RequestError),
    /// The read did not finish (the member is stopping).
    Stopped,
}
