//! The write side: one request applied into the [`Overlay`] of the apply
//! call in progress, with etcd's semantics for Put, DeleteRange, Txn and
//! Compaction.
//!
//! Every refusal ([`EtcdError`]) is decided before the request writes
//! anything where etcd decides it so; the overlay's undo log still rolls a
//! request back if one comes later, so a refused request never leaves a
//! trace.

use std::borrow::Cow;

use raftwood_lsm::{Db, WriteBatch, WriteOptions};

use crate::compaction::{self, ChunkLimit, HistoryWalk};
use crate::cursor::Source;
use crate::encoding::{self, CompactionProgress, DeleteProgress, Record};
use crate::error::{EtcdError, KvError, RequestError};
use crate::live_cache::LiveCache;
use crate::mvcc::{Mvcc, RangeEnd, ScanOptions};
use crate::overlay::{Overlay, Undo};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, RangeRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    compare, request_op, response_op,
};

use crate::proto::mvccpb::KeyValue;
use crate::range;

/// etcd's ceiling on a lease TTL, in seconds.
const MAX_LEASE_TTL_SECONDS: i64 = 9_000_000_000;

/// Live keys a ranged delete reads at a time.
const DELETE_CHUNK_KEYS: usize = 1024;

/// A large DeleteRange or Compaction of its own writes its engine batch
/// ahead, in parts, each time the batch reaches this size (see
/// `Applier::delete_range_in`, `Applier::compact`). A constant, not an
/// option: every member then splits a request at the same keys.
const PART_BYTES: usize = 16 << 20;

/// What a compaction reads at a time: history entries visited, revision
/// log entries deleted, bytes of history keys deleted.
const COMPACT_CHUNK: ChunkLimit = ChunkLimit {
    entries: 1024,
    bytes: 1 << 20,
};

/// Where a ranged delete writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Into the overlay (inside a txn, whose later operations read it).
    Overlay,
    /// Into the overlay, or straight into an engine batch once the range
    /// holds more than one chunk of keys (a DeleteRange of its own).
    DirectWhenLarge,
}

/// The store's revisions as the apply call sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// The revision of the last request that changed something (1 for an
    /// empty store, as etcd).
    pub current: i64,
    /// Reads below this fail; -1 before the first compaction (etcd's value).
    pub compacted: i64,
}

/// Applies requests into an overlay over the LSM.
pub struct Applier<'a> {
    db: &'a Db,
    overlay: &'a mut Overlay,
    revisions: Revisions,
    /// Live entries of the engine known from earlier applies (read after
    /// the overlay, before the engine).
    live_cache: &'a LiveCache,
    /// Set once a request writes straight into an engine batch instead of
    /// the overlay (see [`Applier::delete_range`]): a copy of the overlay's
    /// writes, then every write since. The overlay is then only read.
    direct: Option<WriteBatch>,
    /// Set by [`Applier::allow_delete_parts`] for an entry that is a
    /// DeleteRange of its own: its batch may go to the engine in parts.
    delete_parts: Option<DeleteParts>,
    /// Set by [`Applier::allow_compaction_parts`] likewise.
    compaction_parts: Option<CompactionParts>,
}

/// What a Compaction that writes parts ahead needs.
#[derive(Debug)]
struct CompactionParts {
    /// The raft index of its entry.
    index: u64,
    /// Whether the engine holds its progress (a part was written, or the
    /// compaction resumed): the write that completes it removes it.
    progress_recorded: bool,
}

/// What a DeleteRange that writes parts ahead needs.
#[derive(Debug)]
struct DeleteParts {
    /// The raft index of its entry.
    index: u64,
    /// Where a replay resumes: the progress the engine recorded.
    resume: Option<DeleteProgress>,
    /// Whether a part was written, or the delete resumed: then the write
    /// that completes it removes the progress key.
    progress_recorded: bool,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("revisions", &self.revisions)
            .finish()
    }
}

/// The write transaction of one request: every change gets revision
/// `begin + 1`; reads inside it see `begin`, or `begin + 1` once it changed
/// something.
#[derive(Debug, Clone, Copy)]
struct WriteTxn {
    begin: i64,
    changed: bool,
    /// Changes made so far: the sub-revision of the next one (etcd's
    /// ordering of the events of one revision).
    changes: u32,
}

impl WriteTxn {
    fn write_revision(&self) -> i64 {
        self.begin + 1
    }

    fn view_revision(&self) -> i64 {
        self.begin + i64::from(self.changed)
    }
}

impl<'a> Applier<'a> {
    /// An applier writing into `overlay`, starting from `revisions`.
    /// `live_cache`: the engine's live entries known from earlier applies.
    pub fn new(
        db: &'a Db,
        overlay: &'a mut Overlay,
        revisions: Revisions,
        live_cache: &'a LiveCache,
    ) -> Self {
        debug_assert!(
            revisions.current >= 1 && (-1..=revisions.current).contains(&revisions.compacted),
            "{revisions:?}"
        );
        Applier {
            db,
            overlay,
            revisions,
            live_cache,
            direct: None,
            delete_parts: None,
            compaction_parts: None,
        }
    }

    /// Lets the next request, the DeleteRange of entry `index`, write its
    /// engine batch ahead in parts of `PART_BYTES` when its range is
    /// large, each part with a [`DeleteProgress`] and without the entry's
    /// applied index; `resume` is the progress a previous apply of the same
    /// entry left in the engine. Only allowed while the overlay holds
    /// nothing: a part must not carry an earlier entry's writes, which
    /// would then be in the engine without that entry's applied index. The
    /// caller writes those first.
    pub fn allow_delete_parts(&mut self, index: u64, resume: Option<DeleteProgress>) {
        assert!(
            self.overlay.writes().is_empty(),
            "a DeleteRange that writes parts starts with an empty overlay"
        );
        debug_assert!(resume.as_ref().is_none_or(|p| p.index == index));
        self.delete_parts = Some(DeleteParts {
            index,
            resume,
            progress_recorded: false,
        });
    }

    /// Lets the next request, the Compaction of entry `index`, write its
    /// engine batch ahead in parts of `PART_BYTES` when the history is
    /// large, each part with a [`CompactionProgress`]; `resumed`: the
    /// engine holds the progress of an earlier apply of this entry. The
    /// same rule as [`Applier::allow_delete_parts`]: the overlay is empty.
    pub fn allow_compaction_parts(&mut self, index: u64, resumed: bool) {
        assert!(
            self.overlay.writes().is_empty(),
            "a Compaction that writes parts starts with an empty overlay"
        );
        self.compaction_parts = Some(CompactionParts {
            index,
            progress_recorded: resumed,
        });
    }

    /// Writes the direct batch to the engine now if it has reached
    /// `PART_BYTES` and this compaction may write parts: a part of a large
    /// compaction at `revision`, with its progress.
    fn write_compaction_part(&mut self, revision: i64) -> Result<(), KvError> {
        let Some(parts) = &self.compaction_parts else {
            return Ok(());
        };
        let progress = CompactionProgress {
            index: parts.index,
            revision,
        };
        if self.write_part(encoding::META_COMPACTION_PROGRESS, || {
            progress.encode().to_vec()
        })? && let Some(parts) = &mut self.compaction_parts
        {
            parts.progress_recorded = true;
        }
        Ok(())
    }

    /// Writes the direct batch to the engine now if it has reached
    /// `PART_BYTES` and this delete may write parts: a part of a
    /// large delete, with its progress (`changes` made, `last_key`
    /// deleted).
    fn write_delete_part(
        &mut self,
        request: &DeleteRangeRequest,
        changes: u32,
        last_key: &[u8],
    ) -> Result<(), KvError> {
        let Some(parts) = &self.delete_parts else {
            return Ok(());
        };
        let index = parts.index;
        let progress = || {
            DeleteProgress {
                index,
                changes,
                key: request.key.clone(),
                range_end: request.range_end.clone(),
                last_key: last_key.to_vec(),
            }
            .encode()
        };
        if self.write_part(encoding::META_DELETE_PROGRESS, progress)?
            && let Some(parts) = &mut self.delete_parts
        {
            parts.progress_recorded = true;
        }
        Ok(())
    }

    /// If the direct batch has reached `PART_BYTES`, writes it to the engine
    /// as a part: without an applied index, with `progress()` under the
    /// meta key `progress_key`. Returns whether it did.
    fn write_part(
        &mut self,
        progress_key: &[u8],
        progress: impl FnOnce() -> Vec<u8>,
    ) -> Result<bool, KvError> {
        let Some(direct) = &mut self.direct else {
            return Ok(false);
        };
        if direct.size_bytes() < PART_BYTES {
            return Ok(false);
        }
        let mut part = std::mem::take(direct);
        part.put(progress_key, progress());
        debug_assert!(part.applied_index().is_none());
        self.db.write(part, WriteOptions::default())?;
        Ok(true)
    }

    /// The engine batch of a request that wrote straight into one: every
    /// write of this apply so far, in order, except those a large delete
    /// already wrote as parts (`allow_delete_parts`). The caller must write
    /// it before applying anything else, with a fresh overlay.
    pub fn take_direct(&mut self) -> Option<WriteBatch> {
        self.direct.take()
    }

    /// From now on this request's writes go straight into an engine batch,
    /// which starts with what the overlay holds (a few earlier entries'
    /// writes, at most). Reads still see the overlay and the engine, not
    /// the batch: only a request that never reads what it wrote may do
    /// this.
    fn write_directly(&mut self) {
        if self.direct.is_some() {
            return;
        }
        let mut batch = WriteBatch::new();
        for (key, value) in self.overlay.writes() {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            };
        }
        debug_assert_eq!(
            batch.len(),
            self.overlay.writes().len(),
            "a write of the overlay lost"
        );
        self.direct = Some(batch);
    }

    pub(crate) fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match &mut self.direct {
            Some(batch) => {
                batch.put(key, value);
            }
            None => self.overlay.put(key, value),
        }
    }

    pub(crate) fn delete_raw(&mut self, key: Vec<u8>) {
        match &mut self.direct {
            Some(batch) => {
                batch.delete(key);
            }
            None => self.overlay.delete(key),
        }
    }

    /// The revisions after what was applied so far.
    pub fn revisions(&self) -> Revisions {
        self.revisions
    }

    /// The value of a raw key as this apply sees it.
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.mvcc().source.get(key)
    }

    pub(crate) fn mvcc(&self) -> Mvcc<'_> {
        Mvcc {
            source: Source {
                db: self.db,
                snapshot: None,
                overlay: Some(self.overlay),
                live_cache: Some(self.live_cache),
            },
        }
    }

    /// Starts a request. `undo`: whether it can be refused after its first
    /// write (only a txn can: a later operation may fail).
    fn begin(&mut self, undo: Undo) -> WriteTxn {
        self.overlay.begin(undo);
        WriteTxn {
            begin: self.revisions.current,
            changed: false,
            changes: 0,
        }
    }

    /// Ends a request: on success the revision moves if anything changed;
    /// on a refusal the request's writes are undone.
    fn finish<T>(
        &mut self,
        txn: WriteTxn,
        result: Result<T, RequestError>,
    ) -> Result<T, RequestError> {
        match &result {
            Ok(_) => {
                debug_assert!(self.revisions.compacted <= self.revisions.current);
                // A request changed the store exactly when it logged a
                // change: its events and its revision go together.
                debug_assert_eq!(txn.changed, txn.changes > 0);
                if txn.changed {
                    self.revisions.current = txn.write_revision();
                    self.put_raw(
                        encoding::META_CURRENT_REVISION.to_vec(),
                        encoding::encode_meta(self.revisions.current).to_vec(),
                    );
                }
            }
            Err(RequestError::Refused(error)) => {
                let undone = self.overlay.rollback() && self.direct.is_none();
                // Invariant: a request begun without undo is refused
                // before it writes. Should one break that, its half-done
                // writes cannot be taken back: stop (fail-stop) rather
                // than apply half a request.
                debug_assert!(undone, "refused after writing without undo: {error}");
                if !undone {
                    return Err(KvError::InvalidApply(format!(
                        "a request without undo was refused after writing: {error}"
                    ))
                    .into());
                }
            }
            // A storage failure poisons the store: nothing of this apply
            // reaches the engine, so there is nothing to undo.
            Err(RequestError::Storage(_)) => {}
        }
        result
    }

    /// A Put outside a txn.
    pub fn put(&mut self, request: &PutRequest) -> Result<PutResponse, RequestError> {
        let mut txn = self.begin(Undo::Skipped);
        let result = (|| {
            // Outside a txn etcd looks the lease up first, then the key.
            if request.lease != 0 && !self.lease_exists(request.lease)? {
                return Err(EtcdError::LeaseNotFound.into());
            }
            self.check_put(request)?;
            self.put_in(&mut txn, request)
        })();
        self.finish(txn, result)
    }

    /// A DeleteRange outside a txn.
    pub fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, RequestError> {
        let mut txn = self.begin(Undo::Skipped);
        // A replay of a delete that wrote parts before a crash goes on
        // where the engine's progress says, numbering the remaining
        // changes as the first apply did.
        let resume = self.delete_parts.as_mut().and_then(|parts| {
            let resume = parts.resume.take();
            parts.progress_recorded |= resume.is_some();
            resume
        });
        let mut after = None;
        if let Some(progress) = resume {
            if progress.key != request.key || progress.range_end != request.range_end {
                return Err(KvError::Corruption(format!(
                    "the progress recorded for entry {} names another range than its DeleteRange",
                    progress.index
                ))
                .into());
            }
            txn.changes = progress.changes;
            txn.changed = progress.changes > 0;
            after = Some(progress.last_key);
        }
        let result = self.delete_range_in(&mut txn, request, Writes::DirectWhenLarge, after);
        if result.is_ok()
            && self
                .delete_parts
                .as_ref()
                .is_some_and(|parts| parts.progress_recorded)
        {
            // The write that completes the entry ends its progress.
            self.delete_raw(encoding::META_DELETE_PROGRESS.to_vec());
        }
        // (`deleted` of a resumed delete counts only what the replay
        // deleted; nobody waits for a replay's response.)
        self.delete_parts = None;
        self.finish(txn, result)
    }

    /// A Txn.
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, RequestError> {
        let mut txn = self.begin(Undo::Kept);
        let result = (|| {
            // Every compare, nested ones included, sees the state before the
            // txn; then the chosen path is checked; then it runs.
            let path = self.plan(request, txn.view_revision())?;
            if !is_read_only(request) {
                self.check_path(request, &path, &mut |applier, op| applier.check_put_op(op))?;
            }
            let view = txn.view_revision();
            self.check_path(request, &path, &mut |applier, op| {
                applier.check_range_op(op, view)
            })?;
            let mut response = self.run_txn(&mut txn, request, &path)?;
            response.header = Some(header(txn.view_revision()));
            Ok(response)
        })();
        self.finish(txn, result)
    }

    /// A Compaction: forget history below `revision`.
    pub fn compaction(
        &mut self,
        request: &CompactionRequest,
    ) -> Result<CompactionResponse, RequestError> {
        let txn = self.begin(Undo::Skipped);
        let result = self.compact(request.revision);
        self.finish(txn, result)
    }

    fn check_put(&self, request: &PutRequest) -> Result<(), RequestError> {
        if (request.ignore_value || request.ignore_lease)
            && self.mvcc().live(&request.key)?.is_none()
        {
            return Err(EtcdError::KeyNotFound.into());
        }
        if request.lease != 0 && !self.lease_exists(request.lease)? {
            return Err(EtcdError::LeaseNotFound.into());
        }
        Ok(())
    }

    fn lease_exists(&self, id: i64) -> Result<bool, KvError> {
        Ok(self.mvcc().source.get(&encoding::lease_key(id))?.is_some())
    }

    /// A LeaseGrant: records the lease. Changes no key, so no revision.
    pub fn lease_grant(
        &mut self,
        request: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, RequestError> {
        let txn = self.begin(Undo::Skipped);
        let result = (|| {
            // etcd's lessor: id 0 is "no lease"; the TTL has a ceiling.
            if request.id == 0 {
                return Err(EtcdError::LeaseNotFound.into());
            }
            if request.ttl > MAX_LEASE_TTL_SECONDS {
                return Err(EtcdError::LeaseTtlTooLarge.into());
            }
            if self.lease_exists(request.id)? {
                return Err(EtcdError::LeaseExists.into());
            }
            self.put_raw(
                encoding::lease_key(request.id),
                encoding::encode_meta(request.ttl).to_vec(),
            );
            Ok(LeaseGrantResponse {
                header: Some(header(self.revisions.current)),
                id: request.id,
                ttl: request.ttl,
                error: String::new(),
            })
        })();
        self.finish(txn, result)
    }

    /// A LeaseRevoke: deletes every key attached to the lease, in key
    /// order, at one revision, then the lease.
    pub fn lease_revoke(
        &mut self,
        request: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, RequestError> {
        let mut txn = self.begin(Undo::Skipped);
        let result = (|| {
            if !self.lease_exists(request.id)? {
                return Err(EtcdError::LeaseNotFound.into());
            }
            let keys = self.mvcc().attached_keys(request.id)?;
            for key in keys {
                match self.mvcc().live(&key)? {
                    Some(record) if record.lease == request.id => {
                        self.delete_key(&mut txn, &key, record, false)?;
                    }
                    // An attachment outlived its key: a damaged store.
                    _ => {
                        return Err(KvError::Corruption(format!(
                            "lease {} holds {key:?}, which is not attached to it",
                            request.id
                        ))
                        .into());
                    }
                }
            }
            // Each deleted key let go of the lease: no attachment is left.
            debug_assert!(
                self.mvcc()
                    .attached_keys(request.id)
                    .map_or(true, |keys| keys.is_empty()),
                "lease {} still holds keys after its revoke",
                request.id
            );
            self.delete_raw(encoding::lease_key(request.id));
            Ok(LeaseRevokeResponse {
                header: Some(header(txn.view_revision())),
            })
        })();
        self.finish(txn, result)
    }

    fn put_in(
        &mut self,
        txn: &mut WriteTxn,
        request: &PutRequest,
    ) -> Result<PutResponse, RequestError> {
        let revision = txn.write_revision();
        let old = self.mvcc().live(&request.key)?;
        if (request.ignore_value || request.ignore_lease) && old.is_none() {
            return Err(EtcdError::KeyNotFound.into());
        }
        // The header; the value goes into the history entry alone.
        let mut record = Record {
            tombstone: false,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: request.lease,
            value: Vec::new(),
        };
        let mut value = Cow::Borrowed(request.value.as_slice());
        let mut prev_kv = None;
        let old_lease = old.as_ref().map(|old| old.lease);
        if let Some(mut old) = old {
            // Invariant: no version is newer than the revision being written.
            if old.mod_revision > revision {
                return Err(KvError::Corruption(format!(
                    "{:?} has mod revision {} above the store's {revision}",
                    request.key, old.mod_revision
                ))
                .into());
            }
            record.create_revision = old.create_revision;
            record.version = old.version + 1;
            if request.ignore_lease {
                record.lease = old.lease;
            }
            // The live entry holds no value; the old one is read from
            // history only when the request needs it. The superseded
            // version stays in history where it was written.
            if request.ignore_value || request.prev_kv {
                old.value = self.mvcc().value_of(&request.key, old.mod_revision)?;
                if request.ignore_value {
                    value = Cow::Owned(old.value.clone());
                }
                if request.prev_kv {
                    prev_kv = Some(old.into_key_value(request.key.clone()));
                }
            }
        }
        if let Some(old_lease) = old_lease
            && old_lease != 0
            && old_lease != record.lease
        {
            self.delete_raw(encoding::attachment_key(old_lease, &request.key));
        }
        if record.lease != 0 {
            // Attached only to a lease that exists: `check_put` looked it
            // up before the request wrote (an unreadable engine aside).
            debug_assert!(
                request.ignore_lease || self.lease_exists(record.lease).unwrap_or(true),
                "a put attached to lease {}, which is not granted",
                record.lease
            );
            self.put_raw(
                encoding::attachment_key(record.lease, &request.key),
                Vec::new(),
            );
        }
        // Every version is written once, to history, with its value; the
        // live entry names it by its header alone. (A second change of one
        // key in one revision cannot pass validation; should one come, both
        // entries are simply replaced.)
        self.put_raw(encoding::live_key(&request.key), record.encode_header());
        self.put_raw(
            encoding::history_key(&request.key, revision),
            record.encode_with_value(&value),
        );
        self.log_change(txn, encoding::ChangeKind::Put, &request.key);
        Ok(PutResponse {
            header: Some(header(revision)),
            prev_kv,
        })
    }

    /// Records a change in the revision log (the order of events, for
    /// watchers) and marks the request as changing the store.
    fn log_change(&mut self, txn: &mut WriteTxn, kind: encoding::ChangeKind, key: &[u8]) {
        // Every change of a request is at the revision after the store's:
        // revisions go up by one per request that changes something.
        debug_assert_eq!(txn.write_revision(), self.revisions.current + 1);
        self.put_raw(
            encoding::revision_key(txn.write_revision(), txn.changes),
            encoding::encode_change(kind, key),
        );
        txn.changes += 1;
        txn.changed = true;
    }

    /// Deletes one live key whose live entry holds the header `old`: a
    /// tombstone in history marks the delete (the deleted version stays in
    /// history where its put wrote it), the live entry goes, the lease lets
    /// go. Returns the deleted version when `want_prev` is set.
    fn delete_key(
        &mut self,
        txn: &mut WriteTxn,
        key: &[u8],
        mut old: Record,
        want_prev: bool,
    ) -> Result<Option<KeyValue>, KvError> {
        let revision = txn.write_revision();
        if want_prev {
            old.value = self.mvcc().value_of(key, old.mod_revision)?;
        }
        let lease = old.lease;
        self.put_raw(
            encoding::history_key(key, revision),
            Record::tombstone(revision).encode(),
        );
        self.delete_raw(encoding::live_key(key));
        if lease != 0 {
            self.delete_raw(encoding::attachment_key(lease, key));
        }
        self.log_change(txn, encoding::ChangeKind::Delete, key);
        Ok(want_prev.then(|| old.into_key_value(key.to_vec())))
    }

    fn delete_range_in(
        &mut self,
        txn: &mut WriteTxn,
        request: &DeleteRangeRequest,
        writes: Writes,
        after: Option<Vec<u8>>,
    ) -> Result<DeleteRangeResponse, RequestError> {
        let end = RangeEnd::from_request(&request.range_end);
        let mut deleted = 0;
        let mut prev_kvs = Vec::new();
        let mut last: Option<Vec<u8>> = after;
        // The range's live keys are read a chunk at a time, not all at
        // once: a delete of a huge range (etcdctl check perf ends with one
        // over hundreds of thousands of keys) then holds one chunk of
        // records besides its writes. Deleting adds no live key, so each
        // chunk resumes after the last key deleted and visits every key of
        // the range once. (A delete changes the store at the write
        // revision, and the view of a write is the live state.)
        loop {
            let chunk =
                self.mvcc()
                    .live_chunk(&request.key, &end, last.as_deref(), DELETE_CHUNK_KEYS)?;
            let complete = chunk.len() < DELETE_CHUNK_KEYS;
            for (key, old) in chunk {
                // Each chunk resumes after the last key deleted, so every
                // key of the range is deleted once, in key order.
                debug_assert!(last.as_ref().is_none_or(|last| *last < key));
                if let Some(prev) = self.delete_key(txn, &key, old, request.prev_kv)? {
                    prev_kvs.push(prev);
                }
                deleted += 1;
                last = Some(key);
            }
            if complete {
                break;
            }
            // More than a chunk: a large delete. Its writes (three per
            // key, each naming the key) would otherwise
            // sit in the overlay, then in the engine batch, then in the
            // memtable; writing them straight into the batch keeps one
            // copy fewer and skips the overlay's ordered inserts. Nothing
            // later in this request reads them (the next chunk starts
            // after the last key deleted).
            if writes == Writes::DirectWhenLarge {
                self.write_directly();
                // A delete of a huge range would still hold every key's
                // writes in one batch, then in one memtable, all at once:
                // hundreds of MB of fresh memory for check perf's clean-up,
                // and the time to touch it. It writes parts ahead instead
                // (see `allow_delete_parts`).
                if let Some(last) = &last {
                    self.write_delete_part(request, txn.changes, last)?;
                }
            }
        }
        Ok(DeleteRangeResponse {
            header: Some(header(txn.view_revision())),
            deleted,
            prev_kvs,
        })
    }

    fn range_in(
        &self,
        txn: &WriteTxn,
        request: &RangeRequest,
    ) -> Result<crate::proto::etcdserverpb::RangeResponse, RequestError> {
        range::serve(
            &self.mvcc(),
            request,
            txn.view_revision(),
            self.revisions.compacted,
        )
    }

    /// Evaluates the compares of `request` and of the nested txns on the
    /// branch they choose, depth first.
    fn plan(&self, request: &TxnRequest, view: i64) -> Result<Plan, RequestError> {
        let mut succeeded = true;
        for compare in &request.compare {
            if !self.holds(compare, view)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut nested = Vec::new();
        for op in branch {
            if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
                nested.push(self.plan(inner, view)?);
            }
        }
        Ok(Plan { succeeded, nested })
    }

    /// etcd's compare: every key of the range must satisfy it; a missing key
    /// compares as zeros, except that a value compare on it fails.
    fn holds(&self, compare: &Compare, view: i64) -> Result<bool, RequestError> {
        let scan = self.mvcc().scan(
            &compare.key,
            &RangeEnd::from_request(&compare.range_end),
            view,
            view,
            ScanOptions {
                fetch_limit: None,
                count_only: false,
                with_values: compare.target == compare::CompareTarget::Value as i32,
            },
        )?;
        if scan.kvs.is_empty() {
            if compare.target == compare::CompareTarget::Value as i32 {
                return Ok(false);
            }
            return Ok(compare_kv(compare, &KeyValue::default()));
        }
        Ok(scan.kvs.iter().all(|kv| compare_kv(compare, kv)))
    }

    /// Runs `check` on every non-txn operation of the chosen path.
    fn check_path(
        &self,
        request: &TxnRequest,
        plan: &Plan,
        check: &mut dyn FnMut(&Self, &RequestOp) -> Result<(), RequestError>,
    ) -> Result<(), RequestError> {
        let branch = if plan.succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut nested = plan.nested.iter();
        for op in branch {
            match &op.request {
                Some(request_op::Request::RequestTxn(inner)) => {
                    let inner_plan = nested.next().ok_or_else(plan_mismatch)?;
                    self.check_path(inner, inner_plan, check)?;
                }
                _ => check(self, op)?,
            }
        }
        Ok(())
    }

    fn check_put_op(&self, op: &RequestOp) -> Result<(), RequestError> {
        match &op.request {
            Some(request_op::Request::RequestPut(put)) => self.check_put(put),
            _ => Ok(()),
        }
    }

    fn check_range_op(&self, op: &RequestOp, view: i64) -> Result<(), RequestError> {
        if let Some(request_op::Request::RequestRange(range)) = &op.request {
            if range.revision > view {
                return Err(EtcdError::FutureRevision.into());
            }
            // etcd's check compares any non-zero revision, negative ones
            // included, with the compacted revision.
            if range.revision != 0 && range.revision < self.revisions.compacted {
                return Err(EtcdError::Compacted.into());
            }
        }
        Ok(())
    }

    fn run_txn(
        &mut self,
        txn: &mut WriteTxn,
        request: &TxnRequest,
        plan: &Plan,
    ) -> Result<TxnResponse, RequestError> {
        let branch = if plan.succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut nested = plan.nested.iter();
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(range)) => Some(
                    response_op::Response::ResponseRange(self.range_in(txn, range)?),
                ),
                Some(request_op::Request::RequestPut(put)) => {
                    Some(response_op::Response::ResponsePut(self.put_in(txn, put)?))
                }
                Some(request_op::Request::RequestDeleteRange(delete)) => {
                    Some(response_op::Response::ResponseDeleteRange(
                        self.delete_range_in(txn, delete, Writes::Overlay, None)?,
                    ))
                }
                Some(request_op::Request::RequestTxn(inner)) => {
                    let inner_plan = nested.next().ok_or_else(plan_mismatch)?;
                    let mut response = self.run_txn(txn, inner, inner_plan)?;
                    // etcd leaves nested txn headers empty.
                    response.header = Some(ResponseHeader::default());
                    Some(response_op::Response::ResponseTxn(response))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        Ok(TxnResponse {
            header: None,
            succeeded: plan.succeeded,
            responses,
        })
    }

    /// Forgets history below `revision` (see `compaction.rs` for what
    /// goes). The deletes are found a chunk at a time; past one chunk they
    /// go straight into an engine batch, written ahead in parts when this
    /// compaction may (`allow_compaction_parts`), so that neither the keys
    /// nor their deletes are ever all held at once.
    fn compact(&mut self, revision: i64) -> Result<CompactionResponse, RequestError> {
        // A resumed compaction (`KvStore::open` after a crash between its
        // parts) finds the revision not yet recorded: only the completing
        // write records it.
        if revision <= self.revisions.compacted {
            return Err(EtcdError::Compacted.into());
        }
        if revision > self.revisions.current {
            return Err(EtcdError::FutureRevision.into());
        }
        let mut history = HistoryWalk::new(revision);
        loop {
            let doomed = history.next_chunk(&self.mvcc(), COMPACT_CHUNK)?;
            doomed.into_iter().for_each(|key| self.delete_raw(key));
            if history.is_done() {
                break;
            }
            self.write_compaction_part_ahead(revision)?;
        }
        let mut from = vec![encoding::REVISION_PREFIX];
        loop {
            let chunk =
                compaction::revision_log_chunk(&self.mvcc(), revision, &from, COMPACT_CHUNK)?;
            chunk
                .doomed
                .into_iter()
                .for_each(|key| self.delete_raw(key));
            let Some(next) = chunk.next else {
                break;
            };
            from = next;
            self.write_compaction_part_ahead(revision)?;
        }
        if self
            .compaction_parts
            .take()
            .is_some_and(|parts| parts.progress_recorded)
        {
            self.delete_raw(encoding::META_COMPACTION_PROGRESS.to_vec());
        }
        self.revisions.compacted = revision;
        self.put_raw(
            encoding::META_COMPACTED_REVISION.to_vec(),
            encoding::encode_meta(revision).to_vec(),
        );
        Ok(CompactionResponse {
            header: Some(header(self.revisions.current)),
        })
    }

    /// More than a chunk: a large compaction. Its deletes go straight into
    /// an engine batch (nothing later in it reads them: each chunk starts
    /// after the last), written as a part once it is large enough.
    fn write_compaction_part_ahead(&mut self, revision: i64) -> Result<(), KvError> {
        self.write_directly();
        self.write_compaction_part(revision)
    }
}

/// The branch choices of a txn and its nested txns.
#[derive(Debug)]
struct Plan {
    succeeded: bool,
    /// Plans of the nested txns on the chosen branch, in order.
    nested: Vec<Plan>,
}

fn plan_mismatch() -> RequestError {
    KvError::Corruption("txn plan does not match the txn".to_owned()).into()
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// True if no operation, however nested, writes.
fn is_read_only(request: &TxnRequest) -> bool {
    request
        .success
        .iter()
        .chain(&request.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestPut(_))
            | Some(request_op::Request::RequestDeleteRange(_)) => false,
            Some(request_op::Request::RequestTxn(inner)) => is_read_only(inner),
            _ => true,
        })
}

/// One key against one compare (etcd's rules: a target value of the wrong
/// kind compares as zero or empty; an unknown result holds).
fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ordering = match CompareTarget::try_from(compare.target) {
        Ok(CompareTarget::Value) => {
            let wanted: &[u8] = match &compare.target_union {
                Some(TargetUnion::Value(value)) => value,
                _ => &[],
            };
            kv.value.as_slice().cmp(wanted)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&match compare.target_union {
            Some(TargetUnion::CreateRevision(r)) => r,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&match compare.target_union {
            Some(TargetUnion::ModRevision(r)) => r,
            _ => 0,
        }),
        Ok(CompareTarget::Version) => kv.version.cmp(&match compare.target_union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&match compare.target_union {
            Some(TargetUnion::Lease(l)) => l,
            _ => 0,
        }),
        // An unknown target compares as equal, as etcd's switch leaves it.
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        Err(_) => true,
    }
}
