//! Writes the seed corpora of the fuzz targets in `fuzz/` (checked in under
//! `fuzz/seeds/<target>/`): valid inputs of each decoder, made with the
//! project's own encoders, so that every fuzz run starts from inputs that
//! reach deep into the decoder.
//!
//! `cargo run -p raftwood-server --example fuzz_seeds -- fuzz/seeds`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a tool")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use raftwood_kv::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use raftwood_raft::codec::encode_message;
use raftwood_raft::{
    ConfState, Entry, EntryPayload, HardState, Message, MessageBody, PersistRequest, PersistTicket,
    SnapshotMeta,
};
use raftwood_server::snapshot::meta_file;
use raftwood_server::transport::{Frame, Hello, SnapshotChunk};

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn append(index: u64, payload: &'static [u8]) -> Message {
    Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendRequest {
            prev_log_index: index - 1,
            prev_log_term: 3,
            entries: vec![Entry {
                term: 3,
                index,
                payload: EntryPayload::Command(Bytes::from_static(payload)),
            }],
            commit: index - 1,
        },
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    let vote = Message {
        from: 2,
        to: 1,
        term: 4,
        body: MessageBody::VoteRequest {
            last_log_index: 9,
            last_log_term: 3,
            leadership_transfer: false,
        },
    };
    let snapshot = Message {
        from: 1,
        to: 3,
        term: 3,
        body: MessageBody::InstallSnapshot {
            snapshot: SnapshotMeta {
                index: 100,
                term: 3,
                conf_state: ConfState::with_voters([1, 2, 3]),
            },
        },
    };
    vec![
        ("append", append(10, b"a command")),
        ("vote", vote),
        ("snapshot", snapshot),
    ]
}

fn internal(request: internal_request::Request) -> Vec<u8> {
    InternalRequest {
        id: 7,
        request: Some(request),
    }
    .encode_to_vec()
}

fn kv_entries() -> Vec<(&'static str, Vec<u8>)> {
    let put = PutRequest {
        key: b"a".to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    };
    let txn = TxnRequest {
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put.clone())),
            },
            RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: b"b".to_vec(),
                        range_end: b"c".to_vec(),
                        prev_kv: true,
                    },
                )),
            },
        ],
        ..TxnRequest::default()
    };
    vec![
        ("put", internal(internal_request::Request::Put(put))),
        ("txn", internal(internal_request::Request::Txn(txn))),
        (
            "delete_range",
            internal(internal_request::Request::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                prev_kv: false,
            })),
        ),
        (
            "compaction",
            internal(internal_request::Request::Compaction(CompactionRequest {
                revision: 3,
                physical: false,
            })),
        ),
    ]
}

/// A segment the log store wrote: a hard state and a few entries, without
/// the zeros written ahead of them.
fn log_segment() -> Vec<u8> {
    let fs = Arc::new(CrashFs::new());
    let dir = PathBuf::from("/raft");
    fs.create_dir_all(&dir).unwrap();
    let options = LogOptions::default();
    let (mut store, _) = RaftLogStore::open(fs.clone(), &dir, options).unwrap();
    let entries = (1..=3)
        .map(|index| Entry {
            term: 1,
            index,
            payload: EntryPayload::Command(Bytes::from_static(b"entry")),
        })
        .collect();
    let request = PersistRequest {
        ticket: PersistTicket(1),
        snapshot: None,
        entries,
        hard_state: Some(HardState {
            term: 1,
            vote: Some(1),
            commit: 2,
        }),
    };
    store.write(&request).unwrap();
    store.sync().unwrap();
    drop(store);
    let name = fs
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .find(|name| name.ends_with(".log"))
        .expect("a segment");
    let mut segment = fs.read_file(&dir.join(name)).unwrap();
    // The store writes zeros ahead; a zero tail is a clean end, and the
    // seed stays small without it.
    while segment.last() == Some(&0) {
        segment.pop();
    }
    segment
}

/// A client's HEADERS block as grpc-go sends it (literal `:authority`
/// with incremental indexing, static-table name index 1).
fn header_block() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x41); // literal with indexing, name index 1 (:authority)
    let value = b"http://127.0.0.1:2379";
    block.push(value.len() as u8);
    block.extend_from_slice(value);
    block.push(0x04 | 0x40); // literal with indexing, name index 4 (:path)
    let path = b"/etcdserverpb.KV/Range";
    block.push(path.len() as u8);
    block.extend_from_slice(path);
    block
}

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    for (name, message) in messages() {
        let mut encoded = Vec::new();
        encode_message(&message, &mut encoded);
        write(&root, "raft_message", name, &encoded);
    }
    let mut frame = BytesMut::new();
    Frame::Messages(messages().into_iter().map(|(_, m)| m).collect()).encode(&mut frame);
    write(&root, "peer_frame", "messages", &frame[4..]);
    let mut chunk = BytesMut::new();
    let last = SnapshotChunk {
        snapshot_index: 100,
        file: "kv/000001.sst".into(),
        offset: 0,
        data: Bytes::from_static(b"table bytes"),
        finish: Some((0x1234_5678, messages().remove(2).1)),
    };
    Frame::SnapshotChunk(last).encode(&mut chunk);
    write(&root, "peer_frame", "snapshot_chunk", &chunk[4..]);
    let hello = Hello {
        cluster_id: 0xC1,
        from: 1,
        client_urls: vec!["http://127.0.0.1:2379".into()],
        name: "a".into(),
    };
    write(&root, "peer_hello", "hello", &hello.encode());
    write(
        &root,
        "membership_answer",
        "three_members",
        &membership_answer()[12..],
    );
    write(&root, "raft_log_segment", "three_entries", &log_segment());
    write(&root, "hpack_authority", "grpc_go", &header_block());
    for (name, entry) in kv_entries() {
        write(&root, "kv_entry", name, &entry);
    }
    let meta = SnapshotMeta {
        index: 100,
        term: 3,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    write(&root, "snapshot_meta", "meta", &meta_file::encode(&meta));
    // Records: a history key (user key "a", revision 2), meta, a progress.
    let mut history_key = vec![b'h', b'a', 0x00, 0x01];
    history_key.extend_from_slice(&(!2u64).to_be_bytes());
    write(&root, "kv_records", "history_key", &history_key);
    write(&root, "kv_records", "meta", &7i64.to_le_bytes());
    let mut progress = 6001u64.to_le_bytes().to_vec();
    progress.extend_from_slice(&4321i64.to_le_bytes());
    write(&root, "kv_records", "compaction_progress", &progress);
}

/// A membership answer: two voters that started, a learner that did not,
/// one removed member.
fn membership_answer() -> Vec<u8> {
    use raftwood_server::membership::{Member, Membership};
    use raftwood_server::url::PeerUrl;
    let member = |id: u64, name: &str, port: u16, learner: bool| Member {
        id,
        name: name.into(),
        peer_urls: vec![PeerUrl::localhost(port)],
        client_urls: if name.is_empty() {
            Vec::new()
        } else {
            vec![PeerUrl::localhost(port - 1)]
        },
        is_learner: learner,
    };
    let membership = Membership {
        cluster_id: 0xC1,
        members: [
            (1, member(1, "a", 2380, false)),
            (2, member(2, "b", 2480, false)),
            (3, member(3, "", 2580, true)),
        ]
        .into_iter()
        .collect(),
        removed: [4].into_iter().collect(),
    };
    raftwood_server::transport::join::encode_answer(&membership)
}
