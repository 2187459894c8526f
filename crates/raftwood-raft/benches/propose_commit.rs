//! Hot path of the core: a leader proposes a batch of entries on a
//! three-member in-memory cluster and the batch is replicated, persisted
//! (instantly), committed and applied everywhere. Measures the core's own
//! CPU cost per entry — no disk, no network.
//!
//! Run: `cargo bench -p raftwood-raft --bench propose_commit`.

#![allow(clippy::unwrap_used, reason = "benchmark harness")]

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raftwood_raft::{
    ConfState, Config, HardState, InitialState, Message, RaftNode, Role, SnapshotMeta,
};

/// Three nodes whose disk and network are instantaneous.
struct Cluster {
    nodes: Vec<RaftNode>,
    network: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Cluster {
        // Bootstrap: every member starts from a snapshot at index 1 naming
        // the voters.
        let snapshot = SnapshotMeta {
            index: 1,
            term: 1,
            conf_state: ConfState::with_voters([1, 2, 3]),
        };
        let hard_state = HardState {
            term: 1,
            vote: None,
            commit: 1,
        };
        let nodes = (1..=3)
            .map(|id| {
                let config = Config {
                    max_inflight_messages: 4096,
                    ..Config::new(id)
                };
                RaftNode::new(
                    config,
                    InitialState {
                        snapshot: snapshot.clone(),
                        hard_state,
                        entries: Vec::new(),
                        applied: 1,
                    },
                )
                .unwrap()
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            network: VecDeque::new(),
        };
        while cluster.nodes[0].role() != Role::Leader {
            cluster.nodes[0].tick();
            cluster.run_until_quiet();
        }
        cluster
    }

    /// Carries out every effect until no node has anything left to do.
    fn run_until_quiet(&mut self) {
        loop {
            let mut busy = false;
            for node in &mut self.nodes {
                if !node.has_effects() {
                    continue;
                }
                busy = true;
                let effects = node.take_effects();
                self.network.extend(effects.messages);
                if let Some(last) = effects.apply.last() {
                    node.on_applied(last.index).unwrap();
                }
                if let Some(request) = effects.persist {
                    node.on_persisted(request.ticket).unwrap();
                }
            }
            while let Some(message) = self.network.pop_front() {
                busy = true;
                let to = usize::try_from(message.to - 1).unwrap();
                self.nodes[to].step(message).unwrap();
            }
            if !busy {
                return;
            }
        }
    }
}

fn propose_and_commit(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("propose_commit_3_nodes");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("entries_per_batch", batch),
            &batch,
            |bencher, &batch| {
                let mut cluster = Cluster::new();
                let payload = Bytes::from(vec![7u8; 256]);
                bencher.iter(|| {
                    let position = cluster.nodes[0]
                        .propose_many(vec![payload.clone(); batch])
                        .unwrap();
                    cluster.run_until_quiet();
                    assert!(
                        cluster
                            .nodes
                            .iter()
                            .all(|n| n.log().applied() >= position.index)
                    );
                    // Keep memory flat: compact behind the applied index.
                    if position.index % 8192 < batch as u64 {
                        for node in &mut cluster.nodes {
                            let applied = node.log().applied();
                            node.compact_log(applied).unwrap();
                        }
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, propose_and_commit);
criterion_main!(benches);
