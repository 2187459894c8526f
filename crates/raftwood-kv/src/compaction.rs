//! What a Compaction deletes, found a bounded chunk at a time, so that the
//! apply thread never holds a whole history's worth of keys (see
//! `Applier::compact`, which deletes each chunk and may write the deletes
//! to the engine in parts).
//!
//! For each key, every history entry at or below the compaction revision
//! goes except the newest, which stays unless it is a tombstone (etcd's
//! rule: it is the version reads at the revision and after see). A walk
//! deletes a key's older versions first and that tombstone last, when the
//! key is done, so that any prefix of its deletes leaves a history on which
//! the same compaction, run again after a crash, deletes exactly the rest:
//! until the tombstone goes, it is still the newest version at or below
//! the revision.

use crate::encoding::{self, ChangeKind, HISTORY_PREFIX, REVISION_PREFIX, Record};
use crate::error::KvError;
use crate::mvcc::Mvcc;

/// How much one chunk of a compaction holds at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkLimit {
    /// Entries visited.
    pub entries: usize,
    /// Bytes of keys to delete (keys are up to 64 KiB each).
    pub bytes: usize,
}

/// The key a walk is in, and that key's decision so far.
#[derive(Debug)]
struct CurrentKey {
    key: Vec<u8>,
    /// Its newest version at or below the revision was seen.
    seen_newest: bool,
    /// That version, if it is a tombstone: deleted when the key is done.
    tombstone: Option<Vec<u8>>,
}

/// A compaction's walk over the history key space, a chunk at a time.
#[derive(Debug)]
pub(crate) struct HistoryWalk {
    revision: i64,
    /// The raw history key to go on from; `None` once the walk is done.
    next: Option<Vec<u8>>,
    current: Option<CurrentKey>,
}

impl HistoryWalk {
    /// A walk for a compaction at `revision`, from the first history key.
    pub(crate) fn new(revision: i64) -> HistoryWalk {
        HistoryWalk {
            revision,
            next: Some(vec![HISTORY_PREFIX]),
            current: None,
        }
    }

    /// True once every history entry was visited.
    pub(crate) fn is_done(&self) -> bool {
        self.next.is_none()
    }

    /// Visits up to `limit` more history entries, stopping early once the
    /// keys to delete reach `limit_bytes`, and returns those keys in the
    /// order to delete them.
    pub(crate) fn next_chunk(
        &mut self,
        mvcc: &Mvcc<'_>,
        limit: ChunkLimit,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        let mut doomed = Vec::new();
        let Some(from) = self.next.take() else {
            return Ok(doomed);
        };
        let mut cursor = mvcc
            .source
            .cursor(vec![HISTORY_PREFIX], vec![HISTORY_PREFIX + 1])?;
        cursor.seek(&from)?;
        let mut visited = 0;
        let mut doomed_bytes = 0;
        while cursor.valid() {
            if visited == limit.entries || doomed_bytes >= limit.bytes {
                // Each chunk ends past where it started, or the walk
                // would never end.
                debug_assert!(cursor.key() > from.as_slice());
                self.next = Some(cursor.key().to_vec());
                return Ok(doomed);
            }
            visited += 1;
            let (key, _) = encoding::decode_history_key(cursor.key())?;
            if self
                .current
                .as_ref()
                .is_none_or(|current| current.key != key)
            {
                self.finish_key(&mut doomed);
                // Versions above the revision sort first; skip to the rest.
                let newest_kept = encoding::history_key(&key, self.revision);
                self.current = Some(CurrentKey {
                    key,
                    seen_newest: false,
                    tombstone: None,
                });
                if cursor.key() < newest_kept.as_slice() {
                    cursor.seek(&newest_kept)?;
                    continue;
                }
            }
            // A version of the current key at or below the revision.
            let Some(current) = &mut self.current else {
                unreachable!("the current key was set above");
            };
            // Nothing above the compaction revision is ever deleted.
            debug_assert!(
                cursor.key() >= encoding::history_key(&current.key, self.revision).as_slice(),
                "a version of {:?} above revision {} visited",
                current.key,
                self.revision
            );
            if current.seen_newest {
                doomed_bytes += cursor.key().len();
                doomed.push(cursor.key().to_vec());
            } else {
                current.seen_newest = true;
                if Record::decode(cursor.value(), false)?.tombstone {
                    current.tombstone = Some(cursor.key().to_vec());
                }
            }
            cursor.next()?;
        }
        self.finish_key(&mut doomed);
        Ok(doomed)
    }

    /// The current key is done: its newest version goes too if a tombstone.
    fn finish_key(&mut self, doomed: &mut Vec<Vec<u8>>) {
        if let Some(tombstone) = self.current.take().and_then(|current| current.tombstone) {
            doomed.push(tombstone);
        }
    }
}

/// Revision log entries to delete, and where the next chunk starts.
#[derive(Debug)]
pub(crate) struct RevisionLogChunk {
    pub doomed: Vec<Vec<u8>>,
    /// The raw key to go on from; `None` when these were the last.
    pub next: Option<Vec<u8>>,
}

/// Up to `limit.entries` revision log entries below `revision`, from the
/// raw key `from` on, and the key to go on from if there are more: watchers
/// can no longer start at those revisions. The entry of a version the
/// compaction keeps (a key's newest put at or below `revision`) stays:
/// it holds the version's sub-revision, which etcd's HashKV hashes
/// (`hash.rs`). (Revision keys are 13 bytes.)
pub(crate) fn revision_log_chunk(
    mvcc: &Mvcc<'_>,
    revision: i64,
    from: &[u8],
    limit: ChunkLimit,
) -> Result<RevisionLogChunk, KvError> {
    let upper = encoding::revision_key(revision, 0);
    let mut cursor = mvcc.source.cursor(vec![REVISION_PREFIX], upper)?;
    cursor.seek(from)?;
    let mut doomed = Vec::new();
    let mut visited = 0;
    while cursor.valid() {
        if visited == limit.entries {
            debug_assert!(
                cursor.key() > from,
                "a chunk of the revision log ended where it started"
            );
            let next = Some(cursor.key().to_vec());
            return Ok(RevisionLogChunk { doomed, next });
        }
        visited += 1;
        let changed_at = encoding::decode_revision_key(cursor.key())?;
        if !is_kept_put(mvcc, cursor.value(), changed_at, revision)? {
            doomed.push(cursor.key().to_vec());
        }
        cursor.next()?;
    }
    Ok(RevisionLogChunk { doomed, next: None })
}

/// Whether the revision log entry `change`, at `changed_at`, is the put
/// of the version a compaction at `revision` keeps: its key's newest
/// version at or below `revision`, not a tombstone.
fn is_kept_put(
    mvcc: &Mvcc<'_>,
    change: &[u8],
    changed_at: i64,
    revision: i64,
) -> Result<bool, KvError> {
    let (kind, key) = encoding::decode_change(change)?;
    if kind != ChangeKind::Put {
        return Ok(false);
    }
    let mut history = mvcc.source.cursor(
        encoding::history_bound(key),
        encoding::history_after_key(key),
    )?;
    history.seek(&encoding::history_key(key, revision))?;
    if !history.valid() {
        return Ok(false);
    }
    let newest = Record::decode(history.value(), false)?;
    Ok(!newest.tombstone && newest.mod_revision == changed_at)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use prost::Message;
    use raftwood_lsm::fs::{CrashFs, FileSystem};

    use crate::encoding::{self, HISTORY_PREFIX, REVISION_PREFIX};
    use crate::proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};
    use crate::proto::raftwoodpb::{InternalRequest, internal_request};
    use crate::{ApplyResponse, CommittedEntry, KvOptions, KvStore};

    /// Applies requests one entry at a time.
    struct Applied {
        store: KvStore,
        next_index: u64,
    }

    impl Applied {
        fn apply(&mut self, request: internal_request::Request) -> ApplyResponse {
            let payload = InternalRequest {
                id: 0,
                request: Some(request),
            }
            .encode_to_vec();
            let entry = CommittedEntry {
                index: self.next_index,
                request: Some(&payload),
            };
            self.next_index += 1;
            let mut outcomes = self.store.apply(&[entry]).expect("an apply");
            outcomes.remove(0).expect("an accepted request")
        }
    }

    #[test]
    fn a_compaction_keeps_each_keys_newest_version_unless_deleted_across_chunks() {
        let fs: Arc<dyn FileSystem> = Arc::new(CrashFs::new());
        let mut options = KvOptions::default();
        options.lsm.fs = fs;
        options.lsm.background_threads = false;
        options.lsm.memtable_size_bytes = 256 << 10;
        let store = KvStore::open(Path::new("/kv"), options).expect("a store");
        let mut applied = Applied {
            store,
            next_index: 1,
        };
        // The model: each key's versions, (revision, tombstone), oldest
        // first. Keys interleave, and one key has far more versions than a
        // chunk visits, so chunks end inside keys and between them.
        let mut versions: BTreeMap<Vec<u8>, Vec<(i64, bool)>> = BTreeMap::new();
        let mut write = |applied: &mut Applied, key: Vec<u8>, delete: bool| {
            let response = if delete {
                applied.apply(internal_request::Request::DeleteRange(DeleteRangeRequest {
                    key: key.clone(),
                    ..Default::default()
                }))
            } else {
                applied.apply(internal_request::Request::Put(PutRequest {
                    key: key.clone(),
                    value: b"v".to_vec(),
                    ..Default::default()
                }))
            };
            let revision = match response {
                ApplyResponse::Put(r) => r.header.map(|h| h.revision),
                ApplyResponse::DeleteRange(r) => r.header.map(|h| h.revision),
                other => panic!("{other:?}"),
            };
            versions
                .entry(key)
                .or_default()
                .push((revision.expect("a header"), delete));
        };
        for round in 0..12u32 {
            for key in 0..300u32 {
                // Every third key ends a round deleted, the others put.
                let delete = key % 3 == 0 && round % 2 == 1;
                write(&mut applied, format!("key{key:03}").into_bytes(), delete);
            }
            for _ in 0..200 {
                write(&mut applied, b"hot".to_vec(), false);
            }
        }
        write(&mut applied, b"hot".to_vec(), true);
        let compact_at = applied.store.current_revision();
        for key in [b"hot".to_vec(), b"key001".to_vec(), b"key003".to_vec()] {
            write(&mut applied, key, false);
        }

        let response = applied.apply(internal_request::Request::Compaction(CompactionRequest {
            revision: compact_at,
            physical: false,
        }));
        assert!(matches!(response, ApplyResponse::Compaction(_)));
        assert_eq!(applied.store.compacted_revision(), compact_at);

        let mut expected = Vec::new();
        for (key, key_versions) in &versions {
            let newest_at_or_below = key_versions
                .iter()
                .rfind(|(revision, _)| *revision <= compact_at);
            for &(revision, tombstone) in key_versions {
                let kept = revision > compact_at
                    || (Some(&(revision, tombstone)) == newest_at_or_below && !tombstone);
                if kept {
                    expected.push((key.clone(), revision));
                }
            }
        }
        let mut remaining = Vec::new();
        for raw in applied.store.raw_keys(HISTORY_PREFIX).expect("history") {
            remaining.push(encoding::decode_history_key(&raw).expect("a history key"));
        }
        remaining.sort();
        expected.sort();
        assert!(expected.len() > 200, "{} versions kept", expected.len());
        assert_eq!(remaining, expected);
        let revision_log = applied
            .store
            .raw_keys(REVISION_PREFIX)
            .expect("revision log");
        assert!(!revision_log.is_empty());
        // Below the compaction revision, only the puts of kept versions.
        for raw in revision_log {
            let revision = encoding::decode_revision_key(&raw).expect("a revision key");
            if revision < compact_at {
                let value = applied.store.raw_get(&raw).expect("read").expect("present");
                let (kind, key) = encoding::decode_change(&value).expect("a change");
                assert_eq!(kind, encoding::ChangeKind::Put);
                assert!(
                    expected.contains(&(key.to_vec(), revision)),
                    "the revision log keeps {key:?} at {revision}, a version compacted away"
                );
            }
        }
    }
}
