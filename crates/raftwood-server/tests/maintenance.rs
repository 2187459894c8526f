//! The Maintenance service's operator RPCs on a live cluster: defragment
//! reclaims the space of compacted history while writes go on.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use raftwood_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use raftwood_server::proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, StatusRequest,
};
use support::*;

async fn db_size(port: u16) -> i64 {
    let mut maintenance = MaintenanceClient::new(channel(port));
    let status = maintenance
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.db_size_in_use <= status.db_size, "{status:?}");
    status.db_size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragment_reclaims_compacted_history_while_writes_go_on() {
    let (_dir, ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(ports[0]).await;
    put_eventually(&mut kv, "warm-up", "1").await;
    // 3 versions of 1,000 keys of 2 KiB, then all deleted and compacted:
    // about 6 MiB of history that no read can reach any more.
    let value = vec![b'v'; 2048];
    for round in 0..3 {
        for i in 0..1000 {
            kv.put(PutRequest {
                key: format!("junk/{i:04}").into_bytes(),
                value: [value.as_slice(), &[round]].concat(),
                ..PutRequest::default()
            })
            .await
            .unwrap();
        }
    }
    let deleted = kv
        .delete_range(DeleteRangeRequest {
            key: b"junk/".to_vec(),
            range_end: b"junk0".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1000);
    kv.compact(CompactionRequest {
        revision: deleted.header.unwrap().revision,
        physical: true,
    })
    .await
    .unwrap();
    let before = db_size(ports[0]).await;

    // A writer keeps putting through the defragment.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        let mut kv = kv_client(ports[1]).await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                put(&mut kv, &format!("live/{n}"), "x").await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut maintenance = MaintenanceClient::new(channel(ports[0]));
    let during_start = written.load(Ordering::Relaxed);
    maintenance.defragment(DefragmentRequest {}).await.unwrap();
    let during = written.load(Ordering::Relaxed) - during_start;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let after = db_size(ports[0]).await;
    assert!(
        after * 2 < before,
        "defragment left {after} of {before} bytes"
    );
    assert!(written.load(Ordering::Relaxed) > 0);
    println!("defragment: {before} -> {after} bytes; {during} writes acknowledged meanwhile");
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}
