#![allow(clippy::unwrap_used, reason = "tests")]
//! Model-based test: random puts, deletes, delete ranges, txns (with nested
//! txns and ranges inside), compactions and restarts, applied both to a
//! `KvStore` and to a plain in-memory model of etcd's MVCC that keeps every
//! version of every key. After each step, every response must match, and
//! random ranges — at past revisions, with every option — must match too.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use raftwood_kv::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare, request_op,
    response_op,
};
use raftwood_kv::proto::mvccpb::{Event, KeyValue};
use raftwood_kv::proto::raftwoodpb::internal_request::Request;
use raftwood_kv::{ApplyResponse, CommittedEntry, EtcdError, KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, CrashMode};

// ---------------------------------------------------------------- model --

/// Every version of every key: `(revision, Some(kv))` for a put,
/// `(revision, None)` for a delete.
#[derive(Debug, Clone)]
struct Model {
    revision: i64,
    compacted: i64,
    keys: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    /// Every change in order: revision, key, the key as written (None for
    /// a delete).
    changes: Vec<(i64, Vec<u8>, Option<KeyValue>)>,
    /// Granted leases: id -> TTL.
    leases: BTreeMap<i64, i64>,
}

fn in_range(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => start <= key && key < end,
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Model {
    fn new() -> Model {
        Model {
            revision: 1,
            compacted: -1,
            keys: BTreeMap::new(),
            changes: Vec::new(),
            leases: BTreeMap::new(),
        }
    }

    fn at(&self, key: &[u8], revision: i64) -> Option<KeyValue> {
        self.keys
            .get(key)?
            .iter()
            .rev()
            .find(|(r, _)| *r <= revision)?
            .1
            .clone()
    }

    fn latest(&self, key: &[u8]) -> Option<KeyValue> {
        self.keys.get(key)?.last()?.1.clone()
    }

    fn keys_in(&self, start: &[u8], end: &[u8], revision: i64) -> Vec<KeyValue> {
        self.keys
            .keys()
            .filter(|k| in_range(start, end, k))
            .filter_map(|k| self.at(k, revision))
            .collect()
    }

    fn write_put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        revision: i64,
    ) -> Option<KeyValue> {
        let prev = self.latest(key);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        self.keys
            .entry(key.to_vec())
            .or_default()
            .push((revision, Some(kv.clone())));
        self.changes.push((revision, key.to_vec(), Some(kv)));
        prev
    }

    fn write_delete(&mut self, start: &[u8], end: &[u8], revision: i64) -> Vec<KeyValue> {
        let doomed: Vec<KeyValue> = self
            .keys
            .keys()
            .filter(|k| in_range(start, end, k))
            .filter_map(|k| self.latest(k))
            .collect();
        for kv in &doomed {
            self.keys.get_mut(&kv.key).unwrap().push((revision, None));
            self.changes.push((revision, kv.key.clone(), None));
        }
        doomed
    }

    fn range(&self, r: &RangeRequest, view: i64) -> Result<RangeResponse, EtcdError> {
        if r.key.is_empty() {
            return Err(EtcdError::EmptyKey);
        }
        if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
            return Err(EtcdError::InvalidSortOption);
        }
        if r.revision > view {
            return Err(EtcdError::FutureRevision);
        }
        let revision = if r.revision <= 0 { view } else { r.revision };
        if revision < self.compacted {
            return Err(EtcdError::Compacted);
        }
        let all = self.keys_in(&r.key, &r.range_end, revision);
        let count = all.len() as i64;
        let mut kvs = if r.count_only { Vec::new() } else { all };
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        if r.sort_order == 0 && !filtered && r.limit > 0 {
            kvs.truncate(r.limit as usize + 1);
        }
        kvs.retain(|kv| {
            (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
        });
        let order = if r.sort_target != 0 && r.sort_order == 0 {
            1
        } else {
            r.sort_order
        };
        if order != 0 {
            let field = |kv: &KeyValue| -> (Vec<u8>, i64) {
                match r.sort_target {
                    0 => (kv.key.clone(), 0),
                    1 => (Vec::new(), kv.version),
                    2 => (Vec::new(), kv.create_revision),
                    3 => (Vec::new(), kv.mod_revision),
                    _ => (kv.value.clone(), 0),
                }
            };
            kvs.sort_by(|a, b| {
                if order == 2 {
                    field(b).cmp(&field(a))
                } else {
                    field(a).cmp(&field(b))
                }
            });
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: header(view),
            kvs,
            more,
            count,
        })
    }

    /// Live keys attached to lease `id`, in key order.
    fn attached(&self, id: i64) -> Vec<Vec<u8>> {
        self.keys
            .keys()
            .filter(|k| self.latest(k).is_some_and(|kv| kv.lease == id))
            .cloned()
            .collect()
    }

    /// The events a watcher from `start` sees, with previous versions
    /// (none for an event at the compacted revision: its predecessor is
    /// compacted away).
    fn events(&self, start: i64) -> Vec<Event> {
        self.changes
            .iter()
            .filter(|(revision, _, _)| *revision >= start)
            .map(|(revision, key, kv)| Event {
                r#type: if kv.is_some() { 0 } else { 1 },
                kv: Some(kv.clone().unwrap_or_else(|| KeyValue {
                    key: key.clone(),
                    mod_revision: *revision,
                    ..Default::default()
                })),
                prev_kv: if *revision == self.compacted {
                    None
                } else {
                    self.at(key, revision - 1)
                },
            })
            .collect()
    }

    fn compare_holds(&self, c: &Compare, view: i64) -> bool {
        let kvs = self.keys_in(&c.key, &c.range_end, view);
        let target = compare::CompareTarget::try_from(c.target).unwrap();
        if kvs.is_empty() && target == compare::CompareTarget::Value {
            return false;
        }
        let check = |kv: &KeyValue| {
            let ord = match (&c.target_union, target) {
                (Some(compare::TargetUnion::Value(v)), compare::CompareTarget::Value) => {
                    kv.value.cmp(v)
                }
                (Some(compare::TargetUnion::Version(v)), compare::CompareTarget::Version) => {
                    kv.version.cmp(v)
                }
                (Some(compare::TargetUnion::CreateRevision(v)), compare::CompareTarget::Create) => {
                    kv.create_revision.cmp(v)
                }
                (Some(compare::TargetUnion::ModRevision(v)), compare::CompareTarget::Mod) => {
                    kv.mod_revision.cmp(v)
                }
                (Some(compare::TargetUnion::Lease(v)), compare::CompareTarget::Lease) => {
                    kv.lease.cmp(v)
                }
                _ => panic!("generator pairs targets with their union"),
            };
            match compare::CompareResult::try_from(c.result).unwrap() {
                compare::CompareResult::Equal => ord.is_eq(),
                compare::CompareResult::NotEqual => ord.is_ne(),
                compare::CompareResult::Greater => ord.is_gt(),
                compare::CompareResult::Less => ord.is_lt(),
            }
        };
        if kvs.is_empty() {
            return check(&KeyValue::default());
        }
        kvs.iter().all(check)
    }

    /// Compares of every txn on the path, evaluated before any write.
    fn plan(&self, t: &TxnRequest, view: i64, path: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| self.compare_holds(c, view));
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
                self.plan(inner, view, path);
            }
        }
    }

    fn run_txn(
        &mut self,
        t: &TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
        begin: i64,
        changed: &mut bool,
    ) -> TxnResponse {
        let ok = *path.next().unwrap();
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            let response = match op.request.as_ref().unwrap() {
                request_op::Request::RequestRange(r) => response_op::Response::ResponseRange(
                    self.range(r, begin + i64::from(*changed)).unwrap(),
                ),
                request_op::Request::RequestPut(p) => {
                    let prev = self.write_put(&p.key, &p.value, p.lease, begin + 1);
                    *changed = true;
                    response_op::Response::ResponsePut(PutResponse {
                        header: header(begin + 1),
                        prev_kv: if p.prev_kv { prev } else { None },
                    })
                }
                request_op::Request::RequestDeleteRange(d) => {
                    let prev = self.write_delete(&d.key, &d.range_end, begin + 1);
                    if !prev.is_empty() {
                        *changed = true;
                    }
                    response_op::Response::ResponseDeleteRange(DeleteRangeResponse {
                        header: header(begin + i64::from(*changed)),
                        deleted: prev.len() as i64,
                        prev_kvs: if d.prev_kv { prev } else { Vec::new() },
                    })
                }
                request_op::Request::RequestTxn(inner) => {
                    let mut response = self.run_txn(inner, path, begin, changed);
                    response.header = Some(ResponseHeader::default());
                    response_op::Response::ResponseTxn(response)
                }
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        TxnResponse {
            header: None,
            succeeded: ok,
            responses,
        }
    }

    fn apply(&mut self, request: &Request) -> Result<ApplyResponse, EtcdError> {
        let begin = self.revision;
        match request {
            Request::Put(p) => {
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return Err(EtcdError::LeaseNotFound);
                }
                let prev = self.write_put(&p.key, &p.value, p.lease, begin + 1);
                self.revision += 1;
                Ok(ApplyResponse::Put(PutResponse {
                    header: header(begin + 1),
                    prev_kv: if p.prev_kv { prev } else { None },
                }))
            }
            Request::DeleteRange(d) => {
                let prev = self.write_delete(&d.key, &d.range_end, begin + 1);
                if !prev.is_empty() {
                    self.revision += 1;
                }
                Ok(ApplyResponse::DeleteRange(DeleteRangeResponse {
                    header: header(self.revision),
                    deleted: prev.len() as i64,
                    prev_kvs: if d.prev_kv { prev } else { Vec::new() },
                }))
            }
            Request::Txn(t) => {
                let mut path = Vec::new();
                self.plan(t, begin, &mut path);
                let mut changed = false;
                let mut response = self.run_txn(t, &mut path.iter(), begin, &mut changed);
                if changed {
                    self.revision += 1;
                }
                response.header = header(self.revision);
                Ok(ApplyResponse::Txn(response))
            }
            Request::LeaseGrant(g) => {
                if self.leases.contains_key(&g.id) {
                    return Err(EtcdError::LeaseExists);
                }
                self.leases.insert(g.id, g.ttl);
                Ok(ApplyResponse::LeaseGrant(LeaseGrantResponse {
                    header: header(self.revision),
                    id: g.id,
                    ttl: g.ttl,
                    error: String::new(),
                }))
            }
            Request::LeaseRevoke(r) => {
                if self.leases.remove(&r.id).is_none() {
                    return Err(EtcdError::LeaseNotFound);
                }
                let attached = self.attached(r.id);
                for key in &attached {
                    self.write_delete(key, b"", begin + 1);
                }
                if !attached.is_empty() {
                    self.revision += 1;
                }
                Ok(ApplyResponse::LeaseRevoke(LeaseRevokeResponse {
                    header: header(self.revision),
                }))
            }
            Request::MemberChange(_)
            | Request::MemberAttributes(_)
            | Request::MemberPeerUrls(_) => {
                unreachable!("the model's workload makes no membership requests")
            }
            Request::Compaction(c) => {
                if c.revision <= self.compacted {
                    return Err(EtcdError::Compacted);
                }
                if c.revision > self.revision {
                    return Err(EtcdError::FutureRevision);
                }
                self.compacted = c.revision;
                Ok(ApplyResponse::Compaction(
                    raftwood_kv::proto::etcdserverpb::CompactionResponse {
                        header: header(self.revision),
                    },
                ))
            }
        }
    }
}

// ----------------------------------------------------------- generators --

const KEYS: &[&[u8]] = &[b"a", b"a\0", b"a\0b", b"ab", b"b", b"b\xff", b"c", b"cc"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KEYS).prop_map(<[u8]>::to_vec)
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => Just(vec![0]),
        2 => key(),
        1 => Just(b"b".to_vec()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'x', b'y', 0u8]), 0..3)
}

/// A range with every option; revisions are chosen relative to the store
/// (`-1` becomes "compacted - 1", `100` "current + 1", other values are
/// offsets from the current revision).
fn range_request() -> impl Strategy<Value = RangeRequest> {
    (
        (key(), range_end(), 0i64..4, -3i64..=1),
        (0i32..3, 0i32..5, any::<bool>(), prop::bool::weighted(0.15)),
        (0i64..4, 0i64..4, 0i64..4, 0i64..4),
    )
        .prop_map(
            |(
                (key, range_end, limit, revision),
                (sort_order, sort_target, keys_only, count_only),
                (min_mod, max_mod, min_create, max_create),
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                serializable: false,
                keys_only,
                count_only,
                min_mod_revision: min_mod,
                max_mod_revision: max_mod,
                min_create_revision: min_create,
                max_create_revision: max_create,
            },
        )
}

fn compare_gen() -> impl Strategy<Value = Compare> {
    (
        key(),
        0i32..4,
        0i32..5,
        value(),
        0i64..8,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(key, result, target, value, number, ranged)| {
            let union = match target {
                0 => compare::TargetUnion::Version(number % 4),
                1 => compare::TargetUnion::CreateRevision(number),
                2 => compare::TargetUnion::ModRevision(number),
                3 => compare::TargetUnion::Value(value),
                _ => compare::TargetUnion::Lease(0),
            };
            Compare {
                result,
                target,
                key,
                target_union: Some(union),
                range_end: if ranged { vec![0] } else { Vec::new() },
            }
        })
}

#[derive(Debug, Clone)]
enum Step {
    /// Requests applied as consecutive entries in one apply call.
    Apply(Vec<Request>),
    /// Drop the store; reopen; replay the log after the durable index.
    Restart { flush_first: bool },
}

/// A txn whose writes touch distinct single keys (so it is never refused
/// as a duplicate), with ranges and at most one nested txn per branch.
fn ops_gen() -> impl Strategy<Value = Vec<(u8, Vec<u8>, Vec<u8>, bool)>> {
    prop::collection::vec((0u8..3, value(), range_end(), any::<bool>()), 0..4)
}

fn txn_gen() -> impl Strategy<Value = Request> {
    (
        prop::collection::vec(compare_gen(), 0..3),
        prop::sample::subsequence(KEYS.to_vec(), 0..=KEYS.len()).prop_shuffle(),
        ops_gen(),
        ops_gen(),
        prop::collection::vec(compare_gen(), 0..2),
        any::<bool>(),
    )
        .prop_map(
            |(compares, keys, success, failure, inner_compares, nested)| {
                let mut keys = keys.into_iter();
                let mut build = |ops: Vec<(u8, Vec<u8>, Vec<u8>, bool)>| -> Vec<RequestOp> {
                    ops.into_iter()
                        .filter_map(|(kind, value, end, prev_kv)| {
                            let request = match kind {
                                0 => request_op::Request::RequestPut(PutRequest {
                                    key: keys.next()?.to_vec(),
                                    value,
                                    prev_kv,
                                    ..Default::default()
                                }),
                                1 => request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                                    key: keys.next()?.to_vec(),
                                    range_end: Vec::new(),
                                    prev_kv,
                                }),
                                _ => request_op::Request::RequestRange(RangeRequest {
                                    key: b"a".to_vec(),
                                    range_end: end,
                                    ..Default::default()
                                }),
                            };
                            Some(RequestOp {
                                request: Some(request),
                            })
                        })
                        .collect()
                };
                let mut success = build(success);
                let failure = build(failure);
                if nested {
                    let inner_success = build(vec![(0, b"n".to_vec(), Vec::new(), true)]);
                    let inner_failure = build(vec![(2, Vec::new(), vec![0], false)]);
                    success.push(RequestOp {
                        request: Some(request_op::Request::RequestTxn(TxnRequest {
                            compare: inner_compares,
                            success: inner_success,
                            failure: inner_failure,
                        })),
                    });
                }
                Request::Txn(TxnRequest {
                    compare: compares,
                    success,
                    failure,
                })
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        8 => (key(), value(), any::<bool>(), prop_oneof![3 => Just(0i64), 1 => 1i64..4])
            .prop_map(|(key, value, prev_kv, lease)| Request::Put(
                PutRequest { key, value, prev_kv, lease, ..Default::default() }
            )),
        1 => (1i64..4, 1i64..100).prop_map(|(id, ttl)| Request::LeaseGrant(
            LeaseGrantRequest { id, ttl }
        )),
        1 => (1i64..4).prop_map(|id| Request::LeaseRevoke(LeaseRevokeRequest { id })),
        3 => (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
            Request::DeleteRange(DeleteRangeRequest { key, range_end, prev_kv })
        }),
        4 => txn_gen(),
        1 => (-2i64..=1).prop_map(|offset| Request::Compaction(
            raftwood_kv::proto::etcdserverpb::CompactionRequest { revision: offset, physical: false }
        )),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // Mostly one entry per apply call; sometimes several, which must
        // see each other's writes before they reach the engine.
        10 => request().prop_map(|r| Step::Apply(vec![r])),
        3 => prop::collection::vec(request(), 2..5).prop_map(Step::Apply),
        1 => any::<bool>().prop_map(|flush_first| Step::Restart { flush_first }),
    ]
}

/// Turns relative revisions of generated requests into absolute ones.
fn resolve(offset: i64, model: &Model) -> i64 {
    match offset {
        1 => model.revision + 1,
        0 => 0,
        // -1, -2, -3: a few revisions back, possibly below compaction.
        back => (model.revision + back).max(1),
    }
}

// ---------------------------------------------------------------- test --

struct Run {
    fs: Arc<CrashFs>,
    store: Option<KvStore>,
    log: Vec<Vec<u8>>,
}

const DIR: &str = "/kv";

/// Restarts that found part of the log durable (checked to be non-zero, so
/// the test is known to exercise recovery from a durable prefix).
static RESTARTS_WITH_DURABLE_PREFIX: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

fn open_on(fs: &Arc<CrashFs>, live_cache_bytes: u64) -> KvStore {
    let mut options = support::options();
    options.live_cache_bytes = live_cache_bytes;
    // Tiny memtables: flushes happen on their own, so a crash keeps a
    // durable prefix of the log and loses the rest.
    options.lsm.memtable_size_bytes = 1024;
    options.lsm.fs = Arc::clone(fs) as Arc<dyn raftwood_lsm::fs::FileSystem>;
    KvStore::open(Path::new(DIR), options).unwrap()
}

impl Run {
    fn store(&self) -> &KvStore {
        self.store.as_ref().unwrap()
    }
}

/// Granted leases and the keys attached to each.
fn check_leases(run: &Run, model: &Model) {
    let expected: Vec<(i64, i64)> = model.leases.iter().map(|(id, ttl)| (*id, *ttl)).collect();
    assert_eq!(run.store().leases().unwrap(), expected);
    for id in 0..4 {
        let lease = run.store().lease(id).unwrap();
        match model.leases.get(&id) {
            Some(ttl) => {
                let lease = lease.unwrap();
                assert_eq!(lease.granted_ttl_seconds, *ttl);
                assert_eq!(lease.keys, model.attached(id), "keys of lease {id}");
            }
            None => assert_eq!(lease, None),
        }
    }
}

/// Events from a few start revisions, whole and in batches.
fn check_events(run: &Run, model: &Model) {
    let first = model.compacted.max(1);
    for start in [first, (model.revision - 2).max(first), model.revision + 1] {
        let expected = model.events(start);
        let batch = run.store().events(start, 0, true).unwrap();
        assert_eq!(batch.events, expected, "events from {start}");
        assert_eq!(batch.through_revision, model.revision);
        // In batches of about two events, continuing after each batch.
        let mut collected = Vec::new();
        let mut from = start;
        while from <= model.revision {
            let batch = run.store().events(from, 2, true).unwrap();
            assert!(batch.through_revision >= from, "progress");
            collected.extend(batch.events);
            from = batch.through_revision + 1;
        }
        assert_eq!(collected, expected, "batched events from {start}");
    }
    if model.compacted > 1 {
        assert_eq!(
            run.store()
                .events(model.compacted - 1, 0, false)
                .unwrap_err()
                .to_string(),
            EtcdError::Compacted.to_string()
        );
    }
}

fn check_ranges(run: &Run, model: &Model, ranges: &[RangeRequest]) {
    for request in ranges {
        let mut request = request.clone();
        request.revision = resolve(request.revision, model);
        let expected = model.range(&request, model.revision);
        let actual = run.store().range(&request).map_err(|e| match e {
            raftwood_kv::RequestError::Refused(e) => e,
            other => panic!("storage error {other}"),
        });
        assert_eq!(actual, expected, "range {request:?}");
    }
}

/// `live_cache_bytes`: the apply path's cache of live entries, off, tiny
/// (constant eviction) or large; answers must not depend on it.
fn run_steps(steps: Vec<(Step, Vec<RangeRequest>)>, live_cache_bytes: u64) {
    let fs = Arc::new(CrashFs::new());
    let store = open_on(&fs, live_cache_bytes);
    let mut run = Run {
        fs,
        store: Some(store),
        log: Vec::new(),
    };
    let mut model = Model::new();
    for (step, ranges) in steps {
        match step {
            Step::Apply(requests) => {
                let mut expected = Vec::new();
                let first = run.log.len();
                for mut request in requests {
                    if let Request::Compaction(c) = &mut request {
                        c.revision = resolve(c.revision, &model).max(1);
                    }
                    expected.push(model.apply(&request));
                    run.log.push(support::encode(request));
                }
                let entries: Vec<CommittedEntry<'_>> = run.log[first..]
                    .iter()
                    .enumerate()
                    .map(|(i, bytes)| CommittedEntry {
                        index: (first + i) as u64 + 1,
                        request: Some(bytes),
                    })
                    .collect();
                let outcomes = run.store().apply(&entries).unwrap();
                assert_eq!(outcomes, expected, "entries from {}", first + 1);
                assert_eq!(run.store().current_revision(), model.revision);
                assert_eq!(run.store().compacted_revision(), model.compacted);
            }
            Step::Restart { flush_first } => {
                let applied = run.log.len() as u64;
                if flush_first {
                    run.store().flush().unwrap();
                }
                let digest_before = run.store().state_digest().unwrap();
                let durable = run.store().durable_applied_index();
                if flush_first {
                    assert_eq!(durable, applied, "flush makes everything durable");
                }
                // A crash: from now on every write fails (so closing cannot
                // flush), then everything unsynced is dropped.
                run.fs.crash_after_operations(0);
                drop(run.store.take());
                run.fs.crash(CrashMode::DropUnsynced);
                let store = open_on(&run.fs, live_cache_bytes);
                assert_eq!(
                    store.applied_index(),
                    durable,
                    "reopens at the durable index"
                );
                if durable > 0 {
                    RESTARTS_WITH_DURABLE_PREFIX.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                // Replay the log after the durable index; entries at or
                // below it are skipped.
                let entries: Vec<CommittedEntry<'_>> = run
                    .log
                    .iter()
                    .enumerate()
                    .map(|(i, bytes)| CommittedEntry {
                        index: i as u64 + 1,
                        request: Some(bytes),
                    })
                    .collect();
                let outcomes = store.apply(&entries).unwrap();
                assert_eq!(outcomes.len(), entries.len());
                assert_eq!(store.applied_index(), applied);
                assert_eq!(store.state_digest().unwrap(), digest_before);
                run.store = Some(store);
            }
        }
        check_ranges(&run, &model, &ranges);
        check_events(&run, &model);
        check_leases(&run, &model);
    }
}

proptest! {
    // PROPTEST_CASES overrides the number of cases for longer runs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(
        steps in prop::collection::vec((step(), prop::collection::vec(range_request(), 0..4)), 1..60),
        live_cache_bytes in prop_oneof![Just(0u64), Just(400), Just(32 << 20)],
    ) {
        run_steps(steps, live_cache_bytes);
    }
}

#[test]
fn model_runs_exercise_recovery_from_a_durable_prefix() {
    // A fixed workload with restarts after enough writes to flush.
    let mut steps = Vec::new();
    for i in 0..200u32 {
        let key = KEYS[i as usize % KEYS.len()].to_vec();
        steps.push((
            Step::Apply(vec![Request::Put(PutRequest {
                key,
                value: i.to_le_bytes().to_vec(),
                ..Default::default()
            })]),
            Vec::new(),
        ));
        if i % 50 == 49 {
            steps.push((Step::Restart { flush_first: false }, Vec::new()));
        }
    }
    let before = RESTARTS_WITH_DURABLE_PREFIX.load(std::sync::atomic::Ordering::Relaxed);
    run_steps(steps, KvOptions::default().live_cache_bytes);
    let after = RESTARTS_WITH_DURABLE_PREFIX.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after > before, "no restart found a durable prefix");
}
