//! HashKV: a CRC-32C of the key-value history up to a revision, computed
//! as etcd 3.4 computes it (`mvcc.store.HashByRev`), so that a raftwood
//! member and an etcd member holding the same history report the same
//! value, and members that disagree are found (the corruption check).
//!
//! etcd hashes its `key` bucket in key order: the bucket's name, then for
//! each stored revision up to `rev` its key (`main` as 8 bytes big-endian,
//! `_`, `sub` as 8 bytes big-endian, and `t` for a delete) and its value
//! (the `mvccpb.KeyValue` protobuf; for a delete, only the key). Revisions
//! at or below the compaction revision count only if compacting at `rev`
//! would keep them: each key's newest version at or below `rev`, unless
//! that is a delete (and, if no key lives at `rev`, everything a
//! compaction kept).
//!
//! raftwood holds the same facts in other shapes: every version in the
//! history space, every change above the compaction revision in the
//! revision log with its sub-revision, and below it the revision log
//! entries of the versions a compaction kept (`compaction.rs`). A store
//! compacted before those were kept lacks them; its kept versions hash
//! with sub-revision 0, which is right for every version a
//! single-operation request wrote.

use prost::Message as _;

use crate::encoding::{self, ChangeKind, Record};
use crate::error::KvError;
use crate::mvcc::Mvcc;
use crate::proto::mvccpb::KeyValue;

/// etcd's bucket name, the first bytes hashed.
const KEY_BUCKET: &[u8] = b"key";

/// A change's sub-revision and key, as the revision log holds them.
type SubRevision = (u32, Vec<u8>);

/// A version below the compaction revision that the hash includes.
struct Kept {
    revision: i64,
    key: Vec<u8>,
}

impl Mvcc<'_> {
    /// etcd's HashKV of the history through `revision` (at most
    /// `current`), with history compacted at `compacted`.
    pub fn hash_kv(&self, revision: i64, compacted: i64, current: i64) -> Result<u32, KvError> {
        // Only the current revision (asked for as 0) may be the compacted
        // one; an older revision at or below it is refused before.
        assert!(
            revision > compacted || revision == current,
            "HashKV at {revision} with history compacted at {compacted}: refused before"
        );
        assert!(
            revision <= current,
            "HashKV at a future revision {revision}"
        );
        let mut crc = crc32c::crc32c(KEY_BUCKET);
        // etcd's bucket order: by revision, then sub-revision.
        let mut kept = Vec::new();
        let mut subs: Option<(i64, Vec<SubRevision>)> = None;
        let mut versions = self.kept_versions(revision, compacted)?;
        versions.sort_by_key(|version| version.revision);
        for version in versions {
            if subs.as_ref().is_none_or(|(at, _)| *at != version.revision) {
                subs = Some((version.revision, self.subs_at(version.revision)?));
            }
            let sub = subs
                .as_ref()
                .and_then(|(_, subs)| subs.iter().find(|(_, key)| *key == version.key))
                .map_or(0, |(sub, _)| *sub);
            kept.push((version.revision, sub, version.key));
        }
        kept.sort();
        for (kept_revision, sub, key) in kept {
            let record = self.record_at(&key, kept_revision)?;
            crc = hash_entry(crc, kept_revision, sub, false, &record.into_key_value(key));
        }
        self.hash_revision_log(crc, compacted + 1, revision)
    }

    /// The versions at or below `compacted` that etcd's compaction at
    /// `revision` would keep, unordered: each key's newest version at or
    /// below `revision`, if it is a put at or below `compacted`. If no key
    /// lives at `revision`, etcd keeps its filter off and hashes what its
    /// last compaction kept: each key's newest put at or below `compacted`.
    fn kept_versions(&self, revision: i64, compacted: i64) -> Result<Vec<Kept>, KvError> {
        let mut kept_at_revision = Vec::new();
        let mut kept_at_compaction = Vec::new();
        let mut any_live = false;
        if compacted <= 0 {
            return Ok(Vec::new());
        }
        let mut history = self.source.cursor(
            vec![encoding::HISTORY_PREFIX],
            vec![encoding::HISTORY_PREFIX + 1],
        )?;
        history.seek(&[encoding::HISTORY_PREFIX])?;
        while history.valid() {
            let key = encoding::decode_history_key(history.key())?.0;
            let at_revision = self.newest_at(&mut history, &key, revision)?;
            let at_compaction = self.newest_at(&mut history, &key, compacted)?;
            if let Some(version) = at_revision.filter(|v| !v.tombstone) {
                any_live = true;
                if version.mod_revision <= compacted {
                    kept_at_revision.push(Kept {
                        revision: version.mod_revision,
                        key: key.clone(),
                    });
                }
            }
            if let Some(version) = at_compaction.filter(|v| !v.tombstone) {
                kept_at_compaction.push(Kept {
                    revision: version.mod_revision,
                    key: key.clone(),
                });
            }
            history.seek(&encoding::history_after_key(&key))?;
        }
        Ok(if any_live {
            kept_at_revision
        } else {
            kept_at_compaction
        })
    }

    /// `key`'s newest history entry at or below `revision` (its header),
    /// read with `history`, which is left inside `key`'s entries.
    fn newest_at(
        &self,
        history: &mut crate::cursor::Cursor<'_>,
        key: &[u8],
        revision: i64,
    ) -> Result<Option<Record>, KvError> {
        history.seek(&encoding::history_key(key, revision))?;
        if !history.valid() || history.key() >= encoding::history_after_key(key).as_slice() {
            return Ok(None);
        }
        let record = Record::decode(history.value(), false)?;
        debug_assert!(record.mod_revision <= revision, "history is newest first");
        Ok(Some(record))
    }

    /// The version of `key` written at `revision`, with its value.
    fn record_at(&self, key: &[u8], revision: i64) -> Result<Record, KvError> {
        let raw = self
            .source
            .get(&encoding::history_key(key, revision))?
            .ok_or_else(|| {
                KvError::Corruption(format!("no history of {key:?} at revision {revision}"))
            })?;
        let record = Record::decode(&raw, true)?;
        if record.mod_revision != revision {
            return Err(KvError::Corruption(format!(
                "the history of {key:?} at revision {revision} says {}",
                record.mod_revision
            )));
        }
        Ok(record)
    }

    /// The changes the revision log still holds at `revision`:
    /// `(sub-revision, key)`.
    fn subs_at(&self, revision: i64) -> Result<Vec<SubRevision>, KvError> {
        let mut subs = Vec::new();
        let lower = encoding::revision_key(revision, 0);
        let mut cursor = self
            .source
            .cursor(lower.clone(), encoding::revision_key(revision + 1, 0))?;
        cursor.seek(&lower)?;
        while cursor.valid() {
            let (_, sub) = encoding::decode_revision_key_with_sub(cursor.key())?;
            let (_, key) = encoding::decode_change(cursor.value())?;
            subs.push((sub, key.to_vec()));
            cursor.next()?;
        }
        Ok(subs)
    }

    /// Adds every change of revisions `from..=through` to `crc`, in order.
    fn hash_revision_log(&self, mut crc: u32, from: i64, through: i64) -> Result<u32, KvError> {
        let lower = encoding::revision_key(from, 0);
        let mut cursor = self
            .source
            .cursor(lower.clone(), encoding::revision_key(through + 1, 0))?;
        cursor.seek(&lower)?;
        let mut last = (from - 1, u32::MAX);
        while cursor.valid() {
            let (revision, sub) = encoding::decode_revision_key_with_sub(cursor.key())?;
            debug_assert!(
                (revision, sub.wrapping_add(1)) > (last.0, last.1.wrapping_add(1)),
                "the revision log is in revision order"
            );
            last = (revision, sub);
            let (kind, key) = encoding::decode_change(cursor.value())?;
            crc = match kind {
                ChangeKind::Put => {
                    let record = self.record_at(key, revision)?;
                    hash_entry(
                        crc,
                        revision,
                        sub,
                        false,
                        &record.into_key_value(key.to_vec()),
                    )
                }
                ChangeKind::Delete => {
                    let tombstone = KeyValue {
                        key: key.to_vec(),
                        ..KeyValue::default()
                    };
                    hash_entry(crc, revision, sub, true, &tombstone)
                }
            };
            cursor.next()?;
        }
        Ok(crc)
    }
}

/// Adds one of etcd's `key` bucket entries to `crc`.
fn hash_entry(crc: u32, revision: i64, sub: u32, tombstone: bool, value: &KeyValue) -> u32 {
    let key = etcd_revision_key(revision, sub, tombstone);
    let crc = crc32c::crc32c_append(crc, &key);
    crc32c::crc32c_append(crc, &value.encode_to_vec())
}

/// etcd's key of a revision in its `key` bucket: `main` (8 bytes, big
/// endian), `_`, `sub` (8 bytes, big endian), and `t` for a delete.
pub fn etcd_revision_key(revision: i64, sub: u32, tombstone: bool) -> Vec<u8> {
    assert!(revision > 0, "etcd numbers revisions from 1");
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&(revision as u64).to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&u64::from(sub).to_be_bytes());
    if tombstone {
        key.push(b't');
    }
    assert_eq!(key.len(), if tombstone { 18 } else { 17 });
    key
}
