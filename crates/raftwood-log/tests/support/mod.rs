//! Shared by the integration tests: a model of the log (what a store must
//! recover) and a random workload of persist requests that a real Raft core
//! could issue.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use raftwood_log::{LogError, LogOptions, RaftLogStore, Recovered};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use raftwood_raft::{
    ConfChange, ConfChangeKind, ConfState, Entry, EntryPayload, HardState, Index, PersistRequest,
    PersistTicket, SnapshotMeta, Term,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const DIR: &str = "/node/log";

/// The log as the store must recover it.
pub type Model = Recovered;

pub fn model_snapshot_index(model: &Model) -> Index {
    model.snapshot.as_ref().map_or(0, |s| s.index)
}

pub fn model_last_index(model: &Model) -> Index {
    model
        .entries
        .last()
        .map_or(model_snapshot_index(model), |e| e.index)
}

pub fn model_term(model: &Model, index: Index) -> Option<Term> {
    if index == model_snapshot_index(model) {
        return Some(model.snapshot.as_ref().map_or(0, |s| s.term));
    }
    model
        .entries
        .iter()
        .find(|e| e.index == index)
        .map(|e| e.term)
}

pub fn model_write(model: &mut Model, request: &PersistRequest) {
    if let Some(meta) = &request.snapshot {
        model.snapshot = Some(meta.clone());
        model.entries.clear();
    }
    if let Some(first) = request.entries.first() {
        model.entries.retain(|e| e.index < first.index);
        model.entries.extend(request.entries.iter().cloned());
    }
    if let Some(hard_state) = request.hard_state {
        model.hard_state = hard_state;
    }
}

pub fn model_compact(model: &mut Model, meta: &SnapshotMeta) {
    if meta.index > model_snapshot_index(model) {
        model.entries.retain(|e| e.index > meta.index);
        model.snapshot = Some(meta.clone());
    }
}

/// One step of a workload.
#[derive(Debug, Clone)]
pub enum Op {
    Write(PersistRequest),
    Sync,
    Compact(SnapshotMeta),
    /// Close the store and open it again (no crash).
    Reopen,
}

fn payload(rng: &mut SmallRng) -> EntryPayload {
    match rng.random_range(0..10) {
        0 => EntryPayload::Empty,
        1 => EntryPayload::ConfChange(ConfChange::single(
            ConfChangeKind::AddLearner,
            rng.random_range(1..10),
        )),
        _ => {
            let len = rng.random_range(0..48);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            EntryPayload::Command(Bytes::from(bytes))
        }
    }
}

fn conf_state() -> ConfState {
    ConfState::with_voters([1, 2, 3])
}

/// A random workload of `steps` operations, valid against the model: what a
/// Raft core could ask of its log (appends, conflicts resolved by a higher
/// term, hard-state changes, snapshots installed, local compactions).
pub fn workload(seed: u64, steps: usize, with_reopen: bool) -> Vec<Op> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut term: Term = 1;
    let mut ticket = 0;
    let mut ops = Vec::new();
    while ops.len() < steps {
        ticket += 1;
        let snapshot_index = model_snapshot_index(&model);
        let last = model_last_index(&model);
        let roll = rng.random_range(0..100);
        let mut request = PersistRequest {
            ticket: PersistTicket(ticket),
            snapshot: None,
            entries: Vec::new(),
            hard_state: None,
        };
        if roll < 50 {
            if rng.random_bool(0.1) {
                term += 1;
            }
            let count = rng.random_range(1..=4);
            request.entries = (1..=count)
                .map(|i| Entry {
                    term,
                    index: last + i,
                    payload: payload(&mut rng),
                })
                .collect();
        } else if roll < 62 && last > snapshot_index {
            // A new leader overwrote part of the log.
            term += 1;
            let from = rng.random_range(snapshot_index + 1..=last);
            let count = rng.random_range(1..=3);
            request.entries = (0..count)
                .map(|i| Entry {
                    term,
                    index: from + i,
                    payload: payload(&mut rng),
                })
                .collect();
        } else if roll < 72 {
            // Hard state only.
        } else if roll < 77 {
            // A snapshot from the leader, possibly past our log.
            term += 1;
            let index = last + rng.random_range(0..4);
            request.snapshot = Some(SnapshotMeta {
                index: index.max(1),
                term,
                conf_state: conf_state(),
            });
            let count = rng.random_range(0..=2);
            request.entries = (1..=count)
                .map(|i| Entry {
                    term,
                    index: index.max(1) + i,
                    payload: payload(&mut rng),
                })
                .collect();
        } else if roll < 87 && last > snapshot_index {
            let index = rng.random_range(snapshot_index + 1..=last);
            let meta = SnapshotMeta {
                index,
                term: model_term(&model, index).unwrap_or(0),
                conf_state: conf_state(),
            };
            model_compact(&mut model, &meta);
            ops.push(Op::Compact(meta));
            continue;
        } else if roll < 90 && with_reopen {
            ops.push(Op::Reopen);
            continue;
        } else {
            ops.push(Op::Sync);
            continue;
        }
        let last_after = request.entries.last().map(|e| e.index).unwrap_or(last);
        let vote = if rng.random_bool(0.5) {
            Some(rng.random_range(1..=3))
        } else {
            model.hard_state.vote
        };
        if rng.random_bool(0.7) || request.entries.is_empty() && request.snapshot.is_none() {
            request.hard_state = Some(HardState {
                term,
                vote,
                commit: rng.random_range(0..=last_after),
            });
        }
        model_write(&mut model, &request);
        ops.push(Op::Write(request));
        if rng.random_bool(0.6) {
            ops.push(Op::Sync);
        }
    }
    ops
}

/// A `CrashFs` whose parent directory of the log is durable.
pub fn crash_fs() -> CrashFs {
    let fs = CrashFs::new();
    fs.create_dir_all(Path::new("/node")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

pub fn open(fs: &CrashFs, options: &LogOptions) -> Result<(RaftLogStore, Recovered), LogError> {
    RaftLogStore::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new(DIR),
        options.clone(),
    )
}

pub fn small_segments() -> LogOptions {
    LogOptions {
        segment_size_bytes: 300,
        ..LogOptions::default()
    }
}

/// Checks that the store's view matches `model`.
pub fn assert_store_matches(store: &RaftLogStore, model: &Model) {
    assert_eq!(store.hard_state(), model.hard_state);
    assert_eq!(store.snapshot(), model.snapshot.as_ref());
    assert_eq!(store.last_index(), model_last_index(model));
    let entries = store
        .entries(store.first_index(), store.last_index() + 1)
        .unwrap();
    assert_eq!(entries, model.entries);
}

/// The newest segment file of the log in `DIR` and its visible bytes (zero
/// tail included).
pub fn active_segment(fs: &CrashFs) -> (std::path::PathBuf, Vec<u8>) {
    let name = fs
        .list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".log"))
        .max()
        .unwrap();
    let path = Path::new(DIR).join(name);
    let bytes = fs.read_raw(&path).unwrap();
    (path, bytes)
}
