//! [`KvStore`]: the replicated state machine's storage and its read views.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use prost::Message;
use raftwood_lsm::{Db, Options, ReadOptions, Snapshot, WriteBatch, WriteOptions};

use crate::apply::{Applier, Revisions};
use crate::cursor::Source;
use crate::encoding::member_key;
use crate::encoding::{self, CompactionProgress, DeleteProgress};
use crate::error::{EtcdError, KvError, RequestError};
use crate::live_cache::LiveCache;
use crate::members::{MemberRegistry, read_registry};
use crate::mvcc::Mvcc;
use crate::overlay::Overlay;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantResponse, LeaseRevokeResponse, Member, PutResponse, RangeRequest, RangeResponse,
    TxnResponse,
};
use crate::proto::mvccpb::Event;
use crate::proto::raftwoodpb::{InternalRequest, internal_request};
use crate::range;
use crate::validate::{self, RequestLimits};

/// Options of [`KvStore::open`].
#[derive(Debug, Clone)]
pub struct KvOptions {
    /// The engine's options. `wal_enabled` is forced off: the raft log is
    /// the write-ahead log (see docs/kv-format.md, "Durability").
    pub lsm: Options,
    /// Limits checked by [`KvStore::validate`] before proposing.
    pub limits: RequestLimits,
    /// Budget of the apply path's cache of live entries ([`LiveCache`]),
    /// in bytes of keys and records; 0 turns it off.
    pub live_cache_bytes: u64,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions {
            lsm: Options::default(),
            limits: RequestLimits::default(),
            live_cache_bytes: 32 << 20,
        }
    }
}

/// A write of a live entry: its raw key and record (`None`: deleted).
type LiveWrite = (Vec<u8>, Option<Vec<u8>>);

/// One committed raft log entry handed to [`KvStore::apply`].
#[derive(Debug, Clone, Copy)]
pub struct CommittedEntry<'a> {
    /// The entry's raft log index.
    pub index: u64,
    /// The encoded [`InternalRequest`]; `None` for an entry that only
    /// advances the applied index (an empty entry, a membership change).
    pub request: Option<&'a [u8]>,
}

/// What applying one entry produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyResponse {
    /// A Put was applied.
    Put(PutResponse),
    /// A DeleteRange was applied.
    DeleteRange(DeleteRangeResponse),
    /// A Txn was applied.
    Txn(TxnResponse),
    /// A Compaction was applied.
    Compaction(CompactionResponse),
    /// A lease was granted.
    LeaseGrant(LeaseGrantResponse),
    /// A lease was revoked (its keys deleted).
    LeaseRevoke(LeaseRevokeResponse),
    /// The member registry changed (or a change was a no-op): the
    /// caller reads it with [`KvStore::members`].
    Membership,
    /// An entry without a request: only the applied index moved.
    Noop,
    /// The entry was at or below the applied index (a replay); nothing
    /// happened.
    AlreadyApplied,
}

/// The outcome of one entry: a response, or etcd's refusal. The header's
/// `revision` is filled; the server fills cluster, member and term.
pub type ApplyOutcome = Result<ApplyResponse, EtcdError>;

/// A granted lease, as [`KvStore::lease`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// The TTL it was granted with, in seconds.
    pub granted_ttl_seconds: i64,
    /// The keys attached to it, in key order.
    pub keys: Vec<Vec<u8>>,
}

/// Events returned by [`KvStore::events`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// The events, in order.
    pub events: Vec<Event>,
    /// Every change up to and including this revision has been returned
    /// (by this call or earlier ones); continue from the next.
    pub through_revision: i64,
}

/// A consistent read view: an engine snapshot and the revisions it holds.
#[derive(Debug)]
struct View {
    snapshot: Snapshot,
    revisions: Revisions,
    applied_index: u64,
}

/// Serialized apply state. Invariant: equals the view last published.
#[derive(Debug)]
struct ApplyState {
    revisions: Revisions,
    applied_index: u64,
    live_cache: LiveCache,
    /// The progress of a large DeleteRange that wrote parts of itself and
    /// was stopped before the write that completes it (a crash): the entry
    /// after `applied_index` is that delete, and resumes from here.
    /// Invariant: `None`, or its index is `applied_index + 1`.
    delete_progress: Option<DeleteProgress>,
    /// Likewise for a large Compaction; at most one of the two is set.
    compaction_progress: Option<CompactionProgress>,
}

/// A request that may write parts of itself ahead of its applied index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LargeRequest {
    /// A ranged DeleteRange (a single key's delete never writes parts).
    DeleteRange,
    Compaction,
}

impl LargeRequest {
    fn of(request: &Option<Result<InternalRequest, EtcdError>>) -> Option<LargeRequest> {
        let Some(Ok(InternalRequest {
            request: Some(request),
            ..
        })) = request
        else {
            return None;
        };
        match request {
            internal_request::Request::DeleteRange(delete) if !delete.range_end.is_empty() => {
                Some(LargeRequest::DeleteRange)
            }
            internal_request::Request::Compaction(_) => Some(LargeRequest::Compaction),
            _ => None,
        }
    }
}

/// The progress the engine holds of the entry being applied.
#[derive(Debug, Default)]
struct Resume {
    delete: Option<DeleteProgress>,
    compaction: Option<CompactionProgress>,
}

impl ApplyState {
    /// The invariants documented on the fields, and the revisions'
    /// (`KvStore::open` refuses a store whose meta breaks them, so a broken
    /// one here is a bug of the apply path). Fail-stop: the next write would
    /// record the broken state.
    fn check_invariants(&self) {
        let Revisions { current, compacted } = self.revisions;
        assert!(current >= 1, "current revision {current}");
        assert!(
            (-1..=current).contains(&compacted),
            "compacted revision {compacted} outside [-1, {current}]"
        );
        // A large request's progress belongs to the entry after the last
        // applied one: the parts it wrote are ahead of the applied index by
        // that entry exactly.
        let next = self.applied_index.checked_add(1);
        assert!(
            self.delete_progress
                .as_ref()
                .is_none_or(|progress| Some(progress.index) == next),
            "DeleteRange progress {:?} with applied index {}",
            self.delete_progress.as_ref().map(|p| p.index),
            self.applied_index
        );
        assert!(
            self.compaction_progress.is_none_or(
                |progress| Some(progress.index) == next && self.delete_progress.is_none()
            ),
            "Compaction progress {:?} with applied index {} (DeleteRange progress too: {})",
            self.compaction_progress.map(|p| p.index),
            self.applied_index,
            self.delete_progress.is_some()
        );
    }

    /// Takes the progress recorded for entry `index`, which is `large`.
    /// Invariant: progress is only ever recorded for a request of its kind.
    fn take_progress(
        &mut self,
        index: u64,
        large: Option<LargeRequest>,
    ) -> Result<Resume, KvError> {
        let resume = Resume {
            delete: self
                .delete_progress
                .take_if(|progress| progress.index == index),
            compaction: self
                .compaction_progress
                .take_if(|progress| progress.index == index),
        };
        let misplaced = (resume.delete.is_some() && large != Some(LargeRequest::DeleteRange))
            || (resume.compaction.is_some() && large != Some(LargeRequest::Compaction));
        if misplaced {
            return Err(KvError::Corruption(format!(
                "the engine holds the progress of a large request at index {index}, but that entry is another request ({large:?})"
            )));
        }
        Ok(resume)
    }
}

/// etcd's MVCC key-value store on raftwood-lsm, applied from a raft log.
///
/// `Send + Sync`. Applies are serialized; reads use the last published
/// view and never wait for an apply.
#[derive(Debug)]
pub struct KvStore {
    db: Db,
    options: KvOptions,
    apply: Mutex<ApplyState>,
    /// The latest view. Held only to clone or replace the `Arc`.
    view: Mutex<Arc<View>>,
    /// Set by a failed write; applies then refuse with `Poisoned`.
    poisoned: AtomicBool,
}

impl KvStore {
    /// Opens (or creates) the store in `dir`. The engine runs without its
    /// WAL; [`KvStore::applied_index`] tells the caller where to resume
    /// replaying the raft log.
    pub fn open(dir: &Path, options: KvOptions) -> Result<KvStore, KvError> {
        let mut lsm = options.lsm.clone();
        lsm.wal_enabled = false;
        // Every key a valid request makes must fit (`validate_put`).
        lsm.max_key_size_bytes = lsm.max_key_size_bytes.max(encoding::MAX_STORED_KEY_BYTES);
        let db = Db::open(dir, lsm)?;
        let current_raw = db.get(encoding::META_CURRENT_REVISION)?;
        check_format(&db, current_raw.is_some())?;
        let current = match current_raw {
            Some(raw) => encoding::decode_meta(&raw)?,
            None => 1,
        };
        let compacted = match db.get(encoding::META_COMPACTED_REVISION)? {
            Some(raw) => encoding::decode_meta(&raw)?,
            None => -1,
        };
        // Invariant: -1 <= compacted <= current, current >= 1.
        if current < 1 || compacted < -1 || compacted > current {
            return Err(KvError::Corruption(format!(
                "store meta: current revision {current}, compacted revision {compacted}"
            )));
        }
        let revisions = Revisions { current, compacted };
        let applied_index = db.applied_index();
        let delete_progress = match db.get(encoding::META_DELETE_PROGRESS)? {
            Some(raw) => Some(DeleteProgress::decode(&raw)?),
            None => None,
        };
        if let Some(progress) = &delete_progress
            && Some(progress.index) != applied_index.checked_add(1)
        {
            return Err(KvError::Corruption(format!(
                "a DeleteRange at index {} was written in part, but the applied index is {applied_index}",
                progress.index
            )));
        }
        let compaction_progress = match db.get(encoding::META_COMPACTION_PROGRESS)? {
            Some(raw) => Some(CompactionProgress::decode(&raw)?),
            None => None,
        };
        if let Some(progress) = &compaction_progress
            && (Some(progress.index) != applied_index.checked_add(1) || delete_progress.is_some())
        {
            return Err(KvError::Corruption(format!(
                "a Compaction at index {} was written in part, but the applied index is {applied_index}{}",
                progress.index,
                if delete_progress.is_some() {
                    " and a DeleteRange was too"
                } else {
                    ""
                }
            )));
        }
        let live_cache_bytes = options.live_cache_bytes;
        let view = View {
            snapshot: db.snapshot(),
            revisions,
            applied_index,
        };
        let unfinished_delete = delete_progress.as_ref().map(|progress| {
            let request = InternalRequest {
                request: Some(internal_request::Request::DeleteRange(DeleteRangeRequest {
                    key: progress.key.clone(),
                    range_end: progress.range_end.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            };
            (progress.index, request.encode_to_vec())
        });
        let unfinished_compaction = compaction_progress.map(|progress| {
            let request = InternalRequest {
                request: Some(internal_request::Request::Compaction(CompactionRequest {
                    revision: progress.revision,
                    physical: false,
                })),
                ..Default::default()
            };
            (progress.index, request.encode_to_vec())
        });
        let store = KvStore {
            db,
            options,
            apply: Mutex::new(ApplyState {
                revisions,
                applied_index,
                live_cache: LiveCache::new(live_cache_bytes),
                delete_progress,
                compaction_progress,
            }),
            view: Mutex::new(Arc::new(view)),
            poisoned: AtomicBool::new(false),
        };
        store.apply.lock().check_invariants();
        // A large DeleteRange or Compaction wrote parts of itself, and a
        // crash came before the write that completes it: the engine holds
        // a state that is no prefix of the log. Finish it now, before
        // anyone reads. Its effects depend only on what the progress
        // records (a delete's key and range end, a compaction's revision);
        // the raft log's replay then finds the entry applied.
        if let Some((index, request)) = unfinished_delete.or(unfinished_compaction) {
            let outcomes = store.apply(&[CommittedEntry {
                index,
                request: Some(&request),
            }])?;
            let finished = matches!(
                outcomes.as_slice(),
                [Ok(
                    ApplyResponse::DeleteRange(_) | ApplyResponse::Compaction(_)
                )]
            );
            if !finished || store.applied_index() != index {
                return Err(KvError::Corruption(format!(
                    "finishing the request of entry {index} a crash interrupted gave {outcomes:?}"
                )));
            }
            // The write that completed it took its progress away.
            debug_assert!({
                let state = store.apply.lock();
                state.delete_progress.is_none() && state.compaction_progress.is_none()
            });
        }
        Ok(store)
    }

    /// Checks a request before it is proposed, as etcd does before raft:
    /// size, txn op limit, and the request's own consistency.
    pub fn validate(&self, request: &InternalRequest) -> Result<(), EtcdError> {
        validate::validate_request(request, &self.options.limits)
    }

    /// Applies committed entries in log order, as one engine write that
    /// also records the last index. Entries at or below the applied index
    /// are skipped ([`ApplyResponse::AlreadyApplied`]), so a replay after a
    /// restart is harmless. Returns one outcome per entry.
    ///
    /// Errors: a storage failure. The store is then poisoned: every later
    /// apply fails, and the caller must stop and reopen it.
    pub fn apply(&self, entries: &[CommittedEntry<'_>]) -> Result<Vec<ApplyOutcome>, KvError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(KvError::Poisoned);
        }
        let mut state = self.apply.lock();
        let mut overlay = Overlay::default();
        let mut revisions = state.revisions;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut last_index = state.applied_index;
        for entry in entries {
            if entry.index <= state.applied_index {
                outcomes.push(Ok(ApplyResponse::AlreadyApplied));
                continue;
            }
            if entry.index <= last_index {
                return Err(KvError::InvalidApply(format!(
                    "entry {} follows entry {last_index}",
                    entry.index
                )));
            }
            let request = entry
                .request
                .map(|payload| decode_entry(entry.index, payload));
            let large = LargeRequest::of(&request);
            if large.is_some() && last_index != state.applied_index {
                // A large request may write parts of itself ahead (see
                // `Applier::allow_delete_parts`), recording progress for
                // its own index: the entries before it in this call are
                // written first, with their own applied index, even if they
                // wrote nothing (an empty entry, a refused request), or a
                // reopen could find the progress more than one entry ahead
                // of the applied index.
                let written = std::mem::take(&mut overlay);
                self.write_overlay(&mut state, written, last_index, revisions)?;
            }
            last_index = entry.index;
            let resume = state.take_progress(entry.index, large).inspect_err(|_| {
                self.poisoned.store(true, Ordering::Release);
            })?;
            let mut applier = Applier::new(&self.db, &mut overlay, revisions, &state.live_cache);
            match large {
                Some(LargeRequest::DeleteRange) => {
                    applier.allow_delete_parts(entry.index, resume.delete);
                }
                Some(LargeRequest::Compaction) => {
                    applier.allow_compaction_parts(entry.index, resume.compaction.is_some());
                }
                None => {}
            }
            let outcome = match request {
                None => Ok(ApplyResponse::Noop),
                Some(request) => match request
                    .map_err(RequestError::from)
                    .and_then(|request| apply_one(&mut applier, entry.index, request))
                {
                    Ok(response) => Ok(response),
                    Err(RequestError::Refused(error)) => Err(error),
                    Err(RequestError::Storage(error)) => {
                        self.poisoned.store(true, Ordering::Release);
                        return Err(error);
                    }
                },
            };
            revisions = applier.revisions();
            let direct = applier.take_direct();
            outcomes.push(outcome);
            if let Some(direct) = direct {
                // The request wrote straight into an engine batch (a delete
                // of a large range, see `Applier::delete_range`), which
                // begins with a copy of the overlay (or, once it wrote
                // parts, holds what the last part left): later entries cannot
                // read it through the overlay, so everything up to this
                // entry is written now, as one engine write with this
                // entry's index, and the next entries start afresh.
                overlay = Overlay::default();
                // The batch's live keys were not noted one by one.
                self.write_applied(&mut state, direct, last_index, revisions, None)?;
            }
        }
        if last_index != state.applied_index {
            self.write_overlay(&mut state, overlay, last_index, revisions)?;
        }
        debug_assert_eq!(outcomes.len(), entries.len(), "one outcome per entry");
        Ok(outcomes)
    }

    /// Writes the overlay's writes as one engine write with the applied
    /// index `applied_index`, then publishes the new view.
    fn write_overlay(
        &self,
        state: &mut ApplyState,
        overlay: Overlay,
        applied_index: u64,
        revisions: Revisions,
    ) -> Result<(), KvError> {
        let mut batch = WriteBatch::new();
        let mut live_writes = Vec::new();
        let count = overlay.writes().len();
        for (key, value) in overlay.into_writes() {
            match &value {
                Some(value) => batch.put(&key, value),
                None => batch.delete(&key),
            };
            if encoding::is_live_key(&key) {
                live_writes.push((key, value));
            }
        }
        debug_assert_eq!(batch.len(), count, "a write of the overlay lost");
        self.write_applied(state, batch, applied_index, revisions, Some(live_writes))
    }

    /// Writes `batch` with the applied-index marker as one engine write,
    /// then publishes the new read view. `live_writes`: the batch's writes
    /// of live entries, for the [`LiveCache`]; `None` if they are unknown,
    /// which empties it.
    fn write_applied(
        &self,
        state: &mut ApplyState,
        mut batch: WriteBatch,
        applied_index: u64,
        revisions: Revisions,
        live_writes: Option<Vec<LiveWrite>>,
    ) -> Result<(), KvError> {
        // Invariant: the applied index and the revisions only move forward,
        // and nothing is compacted beyond the current revision.
        assert!(
            applied_index > state.applied_index,
            "applied index {applied_index} after {}",
            state.applied_index
        );
        assert!(revisions.current >= state.revisions.current);
        assert!(revisions.compacted >= state.revisions.compacted);
        assert!(revisions.compacted <= revisions.current);
        batch.set_applied_index(applied_index);
        if let Err(error) = self.db.write(batch, WriteOptions::default()) {
            self.poisoned.store(true, Ordering::Release);
            return Err(error.into());
        }
        // Only now, with the write in the engine (see live_cache.rs).
        match live_writes {
            Some(writes) => {
                for (key, value) in writes {
                    state.live_cache.set(key, value);
                }
            }
            None => state.live_cache.clear(),
        }
        state.revisions = revisions;
        state.applied_index = applied_index;
        state.check_invariants();
        let view = Arc::new(View {
            snapshot: self.db.snapshot(),
            revisions,
            applied_index,
        });
        *self.view.lock() = view;
        Ok(())
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.lock())
    }

    /// Serves a Range at the latest applied state.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, RequestError> {
        let view = self.view();
        let mvcc = Mvcc {
            source: Source {
                db: &self.db,
                snapshot: Some(&view.snapshot),
                overlay: None,
                live_cache: None,
            },
        };
        range::serve(
            &mvcc,
            request,
            view.revisions.current,
            view.revisions.compacted,
        )
    }

    /// The changes of revisions `start_revision..=current`, for watchers:
    /// in etcd's order (by revision, then by the order of the changes within
    /// it), each a Put event with the key as written or a Delete event with
    /// the key and the delete's revision. With `with_prev_kv`, each event
    /// carries the key as it was just before (when that is not compacted).
    ///
    /// At most about `max_events` events (0: no limit): a revision is never
    /// split, so the batch ends at the end of a revision;
    /// [`EventBatch::through_revision`] says where to continue from.
    ///
    /// A `start_revision` of 0 or less means "from now on": nothing yet,
    /// `through_revision` is the current revision.
    ///
    /// Errors: [`EtcdError::Compacted`] if `start_revision` is below the
    /// compacted revision (the watcher must be cancelled with
    /// [`KvStore::compacted_revision`]).
    pub fn events(
        &self,
        start_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<EventBatch, RequestError> {
        let view = self.view();
        if start_revision < view.revisions.compacted {
            return Err(EtcdError::Compacted.into());
        }
        let mvcc = Mvcc {
            source: Source {
                db: &self.db,
                snapshot: Some(&view.snapshot),
                overlay: None,
                live_cache: None,
            },
        };
        // As etcd's watch: no start revision means "from now on".
        let start = if start_revision <= 0 {
            view.revisions.current + 1
        } else {
            start_revision
        };
        let (events, through_revision) =
            mvcc.events(start, view.revisions.current, max_events, with_prev_kv)?;
        // A batch ends at a revision of the view, and not before its start
        // (unless the start is still to come).
        debug_assert!(
            through_revision <= view.revisions.current
                && (through_revision >= start - 1 || through_revision == view.revisions.current),
            "events from {start} through {through_revision}, current {}",
            view.revisions.current
        );
        Ok(EventBatch {
            events,
            through_revision,
        })
    }

    /// etcd's HashKV at `revision` (0: the current one), computed as etcd
    /// computes it (`hash.rs`), with the current and compacted revisions
    /// it was computed at. Errors as etcd's: [`EtcdError::Compacted`] at or
    /// below the compacted revision, [`EtcdError::FutureRevision`] above
    /// the current one.
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, RequestError> {
        let view = self.view();
        let (current, compacted) = (view.revisions.current, view.revisions.compacted);
        if revision > 0 && revision <= compacted {
            return Err(EtcdError::Compacted.into());
        }
        if revision > current {
            return Err(EtcdError::FutureRevision.into());
        }
        let revision = if revision == 0 { current } else { revision };
        let hash = self.mvcc_at(&view).hash_kv(revision, compacted, current)?;
        Ok(HashKv {
            hash,
            current_revision: current,
            compacted_revision: compacted,
        })
    }

    /// Lease `id` as applied: its granted TTL (seconds) and the keys
    /// attached to it, in key order; `None` if it is not granted. Time is
    /// the server's business: the store neither counts down nor expires
    /// leases; the server proposes a revoke when one runs out.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseInfo>, KvError> {
        let view = self.view();
        let mvcc = self.mvcc_at(&view);
        let Some(granted_ttl_seconds) = mvcc.lease_ttl(id)? else {
            return Ok(None);
        };
        Ok(Some(LeaseInfo {
            id,
            granted_ttl_seconds,
            keys: mvcc.attached_keys(id)?,
        }))
    }

    /// Every granted lease as `(id, granted TTL in seconds)`, by id (for a
    /// server that takes over lease expiry, and for LeaseLeases).
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, KvError> {
        let view = self.view();
        let mut leases = self.mvcc_at(&view).leases()?;
        leases.sort_unstable();
        Ok(leases)
    }

    fn mvcc_at<'a>(&'a self, view: &'a View) -> Mvcc<'a> {
        Mvcc {
            source: Source {
                db: &self.db,
                snapshot: Some(&view.snapshot),
                overlay: None,
                live_cache: None,
            },
        }
    }

    /// The member registry at the latest applied state.
    pub fn members(&self) -> Result<MemberRegistry, KvError> {
        let view = self.view();
        read_registry(&self.mvcc_at(&view).source)
    }

    /// Records `members` as the registry of a store that has none: the
    /// initial members of a new cluster, or those a joining member learned
    /// from its peers (until a snapshot brings the leader's). `applied_index`
    /// is where this state stands in the raft log: a new cluster's members
    /// all start from the same snapshot point (index 1), which this state
    /// is; a joining member's is 0 (it has applied nothing); the applied
    /// index never goes back. Written and flushed before it returns (the
    /// store has no WAL). Does nothing if the store has a registry.
    pub fn bootstrap_members(&self, members: &[Member], applied_index: u64) -> Result<(), KvError> {
        let mut state = self.apply.lock();
        if !self.members()?.members.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for member in members {
            batch.put(member_key(member.id), member.encode_to_vec());
        }
        let applied_index = applied_index.max(state.applied_index);
        batch.set_applied_index(applied_index);
        self.db.write(batch, WriteOptions::default())?;
        self.db.flush()?;
        state.applied_index = applied_index;
        state.check_invariants();
        let view = Arc::new(View {
            snapshot: self.db.snapshot(),
            revisions: state.revisions,
            applied_index,
        });
        *self.view.lock() = view;
        Ok(())
    }

    /// The revision of the last change (1 for an empty store, as etcd).
    pub fn current_revision(&self) -> i64 {
        self.view().revisions.current
    }

    /// The revision of the last compaction; -1 if there was none (etcd's
    /// convention).
    pub fn compacted_revision(&self) -> i64 {
        self.view().revisions.compacted
    }

    /// The last raft index applied (visible to reads; not necessarily
    /// durable, see [`KvStore::durable_applied_index`]).
    pub fn applied_index(&self) -> u64 {
        self.view().applied_index
    }

    /// The last raft index whose effects are durable. After a crash the
    /// store reopens here, and the raft log must be replayed after it.
    pub fn durable_applied_index(&self) -> u64 {
        self.db.applied_index()
    }

    /// Makes everything applied so far durable (before the raft log is
    /// compacted behind it).
    pub fn flush(&self) -> Result<(), KvError> {
        let _apply = self.apply.lock();
        self.db.flush()?;
        Ok(())
    }

    /// Writes a consistent copy of the store into `dir` (which must not
    /// exist), openable with [`KvStore::open`]; returns the applied index
    /// it holds. Used for raft snapshots.
    pub fn checkpoint(&self, dir: &Path) -> Result<u64, KvError> {
        let state = self.apply.lock();
        self.db.checkpoint(dir)?;
        Ok(state.applied_index)
    }

    /// Like [`KvStore::checkpoint`], but of what is already durable
    /// ([`KvStore::durable_applied_index`]): only hard links, no flush, so
    /// applies are not held up. Returns the applied index it holds.
    pub fn checkpoint_durable(&self, dir: &Path) -> Result<u64, KvError> {
        let _state = self.apply.lock();
        Ok(self.db.checkpoint_flushed(dir)?)
    }

    /// etcd's defragment, on an LSM: a full compaction of the engine,
    /// which rewrites every level into the deepest and drops what
    /// compactions of revisions, deletes and overwrites left behind.
    /// Reads and applies go on meanwhile (the engine merges without
    /// holding its lock; only its automatic compactions wait).
    pub fn defragment(&self) -> Result<(), KvError> {
        Ok(self.db.compact_range(None, None)?)
    }

    /// Bytes the store occupies: tables plus the active memtable.
    pub fn db_size_bytes(&self) -> u64 {
        let stats = self.db.stats();
        stats.table_size_bytes() + stats.memtable_size_bytes as u64
    }

    /// The raw value under `key` in the engine's latest state (tests of
    /// the key layout).
    #[cfg(test)]
    pub(crate) fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.db.get(key)?)
    }

    /// Every raw key of the engine's latest state that starts with
    /// `prefix` (tests of the key layout).
    #[cfg(test)]
    pub(crate) fn raw_keys(&self, prefix: u8) -> Result<Vec<Vec<u8>>, KvError> {
        let mut iter = self.db.iter(ReadOptions {
            lower_bound: Some(vec![prefix]),
            upper_bound: Some(vec![prefix + 1]),
            snapshot: None,
        })?;
        iter.seek_to_first()?;
        let mut keys = Vec::new();
        while iter.valid() {
            keys.push(iter.key().to_vec());
            iter.next()?;
        }
        Ok(keys)
    }

    /// A CRC-32C over every key and value the store holds (history, live
    /// keys and revision meta), in key order, each length-prefixed. Two
    /// members that applied the same log have the same digest.
    pub fn state_digest(&self) -> Result<u32, KvError> {
        let view = self.view();
        let mut iter = self.db.iter(ReadOptions {
            snapshot: Some(&view.snapshot),
            ..Default::default()
        })?;
        iter.seek_to_first()?;
        let mut crc = 0u32;
        while iter.valid() {
            for part in [iter.key(), iter.value()] {
                crc = crc32c::crc32c_append(crc, &(part.len() as u64).to_le_bytes());
                crc = crc32c::crc32c_append(crc, part);
            }
            iter.next()?;
        }
        Ok(crc)
    }
}

/// What [`KvStore::hash_kv`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    /// The hash.
    pub hash: u32,
    /// The store's revision when it was computed.
    pub current_revision: i64,
    /// The compaction revision when it was computed.
    pub compacted_revision: i64,
}

/// Refuses a store written in another layout, and marks a fresh one with
/// this code's. `changed`: the store has applied a change (it has a current
/// revision), so it is not fresh.
fn check_format(db: &Db, changed: bool) -> Result<(), KvError> {
    let found = match db.get(encoding::META_FORMAT_VERSION)? {
        Some(raw) => encoding::decode_meta(&raw)?,
        // Version 1 wrote no format key.
        None if changed => 1,
        None => {
            // A fresh store. The mark needs no applied index and no sync of
            // its own: any later write that reaches the disk takes it along
            // (memtables flush in order), and a crash before then leaves a
            // store as fresh as this one, which is marked again.
            let mut batch = WriteBatch::new();
            batch.put(
                encoding::META_FORMAT_VERSION,
                encoding::encode_meta(encoding::FORMAT_VERSION),
            );
            db.write(batch, WriteOptions::default())?;
            return Ok(());
        }
    };
    if found != encoding::FORMAT_VERSION {
        return Err(KvError::UnsupportedFormat {
            found,
            supported: encoding::FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Decodes and checks the request of entry `index`.
fn decode_entry(index: u64, payload: &[u8]) -> Result<InternalRequest, EtcdError> {
    let request =
        InternalRequest::decode(payload).map_err(|_| EtcdError::MalformedEntry { index })?;
    validate::validate_structure(&request).map_err(|error| match error {
        // An entry without an operation comes from a newer version (a
        // request type added later) or from damage: either way this member
        // cannot apply it, and neither can any other of the same version.
        EtcdError::EmptyRequest => EtcdError::UnsupportedRequest { index },
        other => other,
    })?;
    Ok(request)
}

fn apply_one(
    applier: &mut Applier<'_>,
    index: u64,
    request: InternalRequest,
) -> Result<ApplyResponse, RequestError> {
    match &request.request {
        Some(internal_request::Request::Put(put)) => applier.put(put).map(ApplyResponse::Put),
        Some(internal_request::Request::DeleteRange(delete)) => {
            applier.delete_range(delete).map(ApplyResponse::DeleteRange)
        }
        Some(internal_request::Request::Txn(txn)) => applier.txn(txn).map(ApplyResponse::Txn),
        Some(internal_request::Request::Compaction(compaction)) => applier
            .compaction(compaction)
            .map(ApplyResponse::Compaction),
        Some(internal_request::Request::LeaseGrant(grant)) => {
            applier.lease_grant(grant).map(ApplyResponse::LeaseGrant)
        }
        Some(internal_request::Request::LeaseRevoke(revoke)) => {
            applier.lease_revoke(revoke).map(ApplyResponse::LeaseRevoke)
        }
        Some(internal_request::Request::MemberChange(change)) => applier
            .member_change(change)
            .map(|()| ApplyResponse::Membership),
        Some(internal_request::Request::MemberAttributes(attributes)) => applier
            .member_attributes(attributes)
            .map(|()| ApplyResponse::Membership),
        Some(internal_request::Request::MemberPeerUrls(update)) => applier
            .member_peer_urls(update)
            .map(|()| ApplyResponse::Membership),
        None => Err(EtcdError::UnsupportedRequest { index }.into()),
    }
}
