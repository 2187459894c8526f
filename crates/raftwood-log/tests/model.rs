#![allow(clippy::unwrap_used, reason = "tests")]
//! Random operation sequences against an in-memory model of the log:
//! after every operation the store's view equals the model; after a
//! reopen, so does what it recovered; after a power cut, what it recovered
//! is a state at or after the last sync.

mod support;

use bytes::Bytes;
use proptest::prelude::*;
use raftwood_log::LogOptions;
use raftwood_lsm::fs::CrashMode;
use raftwood_raft::{
    ConfState, Entry, EntryPayload, HardState, PersistRequest, PersistTicket, SnapshotMeta,
};
use support::*;

/// An operation, abstract enough that every generated one can be made
/// valid against the current model.
#[derive(Debug, Clone)]
enum Action {
    /// Append `count` entries; `overwrite_back` > 0 rewrites that many
    /// entries at the end of the log with a higher term first.
    Append {
        count: u8,
        overwrite_back: u8,
        payload_len: u8,
        with_hard_state: bool,
    },
    HardState {
        vote: Option<u8>,
    },
    InstallSnapshot {
        ahead: u8,
    },
    /// Compact to `fraction`/256 of the way through the log.
    Compact {
        fraction: u8,
    },
    Sync,
    Reopen,
    PowerCut,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1..5u8, prop_oneof![4 => Just(0u8), 1 => 1..4u8], 0..40u8, any::<bool>()).prop_map(
            |(count, overwrite_back, payload_len, with_hard_state)| Action::Append {
                count,
                overwrite_back,
                payload_len,
                with_hard_state,
            }
        ),
        1 => proptest::option::of(1..4u8).prop_map(|vote| Action::HardState { vote }),
        1 => (0..4u8).prop_map(|ahead| Action::InstallSnapshot { ahead }),
        1 => any::<u8>().prop_map(|fraction| Action::Compact { fraction }),
        3 => Just(Action::Sync),
        1 => Just(Action::Reopen),
        1 => Just(Action::PowerCut),
    ]
}

fn term_of(model: &Model) -> u64 {
    model
        .hard_state
        .term
        .max(model.entries.last().map_or(0, |e| e.term))
        .max(model.snapshot.as_ref().map_or(0, |s| s.term))
        .max(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_store_behaves_like_the_model(actions in proptest::collection::vec(action(), 1..60)) {
        let options = LogOptions { segment_size_bytes: 400, ..LogOptions::default() };
        let fs = crash_fs();
        let (mut store, _) = open(&fs, &options).unwrap();
        let mut model = Model::default();
        // States at or after the last sync: what a power cut may leave.
        let mut since_sync = vec![model.clone()];
        for action in actions {
            let snapshot_index = model_snapshot_index(&model);
            let last = model_last_index(&model);
            let mut request = PersistRequest {
                ticket: PersistTicket(0),
                snapshot: None,
                entries: Vec::new(),
                hard_state: None,
            };
            match action {
                Action::Append { count, overwrite_back, payload_len, with_hard_state } => {
                    let mut term = term_of(&model);
                    let back = u64::from(overwrite_back).min(last - snapshot_index);
                    if back > 0 {
                        term += 1;
                    }
                    let from = last + 1 - back;
                    request.entries = (0..u64::from(count))
                        .map(|i| Entry {
                            term,
                            index: from + i,
                            payload: EntryPayload::Command(Bytes::from(vec![count; payload_len as usize])),
                        })
                        .collect();
                    if with_hard_state || back > 0 {
                        request.hard_state = Some(HardState { term, vote: model.hard_state.vote, commit: from - 1 });
                    }
                }
                Action::HardState { vote } => {
                    request.hard_state = Some(HardState {
                        term: term_of(&model) + 1,
                        vote: vote.map(u64::from),
                        commit: model.hard_state.commit,
                    });
                }
                Action::InstallSnapshot { ahead } => {
                    let term = term_of(&model) + 1;
                    request.snapshot = Some(SnapshotMeta {
                        index: last + u64::from(ahead) + 1,
                        term,
                        conf_state: ConfState::with_voters([1, 2, 3]),
                    });
                    request.hard_state = Some(HardState { term, vote: None, commit: last + u64::from(ahead) + 1 });
                }
                Action::Compact { fraction } => {
                    if last > snapshot_index {
                        let index = snapshot_index + 1 + (last - snapshot_index - 1) * u64::from(fraction) / 255;
                        let meta = SnapshotMeta {
                            index,
                            term: model_term(&model, index).unwrap(),
                            conf_state: ConfState::with_voters([1]),
                        };
                        let segments_before = store.segment_count();
                        store.compact(&meta).unwrap();
                        prop_assert!(store.segment_count() <= segments_before);
                        prop_assert!(store.segment_count() >= 1);
                        model_compact(&mut model, &meta);
                        since_sync = vec![model.clone()];
                    }
                }
                Action::Sync => {
                    store.sync().unwrap();
                    since_sync = vec![model.clone()];
                }
                Action::Reopen => {
                    drop(store);
                    let (reopened, recovered) = open(&fs, &options).unwrap();
                    prop_assert_eq!(&recovered, &model);
                    store = reopened;
                    since_sync = vec![model.clone()];
                }
                Action::PowerCut => {
                    drop(store);
                    fs.crash(CrashMode::DropUnsynced);
                    let (reopened, recovered) = open(&fs, &options).unwrap();
                    prop_assert!(
                        since_sync.contains(&recovered),
                        "recovered {:?}, expected one of {:?}", recovered, since_sync
                    );
                    model = recovered;
                    store = reopened;
                    since_sync = vec![model.clone()];
                }
            }
            if request.snapshot.is_some() || !request.entries.is_empty() || request.hard_state.is_some() {
                store.write(&request).unwrap();
                model_write(&mut model, &request);
                since_sync.push(model.clone());
            }
            assert_store_matches(&store, &model);
        }
    }
}
