//! The peer transport against peers that do not read (stopped, or
//! overloaded) and one that does: memory stays bounded, writes time out, a
//! snapshot is reported sent only once it was written, and one that is
//! written arrives whole.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftwood_lsm::fs::{CrashFs, FileSystem};
use raftwood_raft::{Entry, EntryPayload, Message, MessageBody, SnapshotMeta};
use tokio::sync::mpsc;

use super::{
    Frame, Hello, INBOUND_QUEUE, Inbound, MESSAGE_QUEUE, MESSAGE_QUEUE_BYTES, PeerTransport,
    SnapshotReceiver, WRITE_TIMEOUT, serve_peers,
};
use crate::driver::MessageSink;
use crate::snapshot::SnapshotStore;

const ME: u64 = 1;
const PEER: u64 = 2;
const CLUSTER: u64 = 77;
const SNAPSHOT_INDEX: u64 = 7;

/// A transport of member `ME` whose snapshots live on `fs`, and what it
/// reports.
fn transport(fs: &Arc<CrashFs>) -> (Arc<PeerTransport>, mpsc::Receiver<Inbound>) {
    let hello = Hello {
        cluster_id: CLUSTER,
        from: ME,
        client_urls: Vec::new(),
        name: "me".into(),
    };
    let root = Path::new("/snap");
    fs.create_dir_all(root).unwrap();
    let snapshots =
        SnapshotStore::open(Arc::clone(fs) as Arc<dyn FileSystem>, root.into()).unwrap();
    let (inbound, reports) = mpsc::channel(INBOUND_QUEUE);
    (PeerTransport::new(hello, snapshots, inbound), reports)
}

/// A snapshot of one file of `len` bytes (a repeating pattern) at
/// `SNAPSHOT_INDEX`; returns the file's contents.
fn write_snapshot(fs: &Arc<CrashFs>, transport: &PeerTransport, len: usize) -> Vec<u8> {
    let dir = transport.snapshots.path_of(SNAPSHOT_INDEX).join("kv");
    fs.create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut file = fs.create_file(&dir.join("000001.sst")).unwrap();
    file.append(&data).unwrap();
    file.sync_data().unwrap();
    data
}

fn install_snapshot() -> Message {
    Message {
        from: ME,
        to: PEER,
        term: 3,
        body: MessageBody::InstallSnapshot {
            snapshot: SnapshotMeta {
                index: SNAPSHOT_INDEX,
                ..SnapshotMeta::default()
            },
        },
    }
}

/// An append carrying 64 KiB.
fn append(index: u64) -> Message {
    Message {
        from: ME,
        to: PEER,
        term: 3,
        body: MessageBody::AppendRequest {
            prev_log_index: index - 1,
            prev_log_term: 3,
            entries: vec![Entry {
                term: 3,
                index,
                payload: EntryPayload::Command(Bytes::from(vec![0u8; 64 * 1024])),
            }],
            commit: 0,
        },
    }
}

/// A peer address that accepts connections (the kernel completes them in
/// the backlog) and never reads: a stopped member.
fn stopped_peer() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

/// The next report other than a connection failure, if one comes within
/// `wait`.
async fn next_snapshot_report(
    reports: &mut mpsc::Receiver<Inbound>,
    wait: Duration,
) -> Option<Inbound> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(Inbound::Unreachable { .. })) => continue,
            Ok(report) => return report,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_costs_a_bounded_queue_and_its_connection_times_out() {
    let fs = Arc::new(CrashFs::new());
    let (transport, mut reports) = transport(&fs);
    let (_listener, address) = stopped_peer();
    transport.add_peer(PEER, vec![address]);
    // 4 GiB of appends: far more than the kernel's buffers hold.
    for index in 1..=64 * 1024u64 {
        transport.send_messages(vec![append(index)]);
        if index % 1024 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let queues = transport.queues(PEER).unwrap();
    assert!(queues.queued_messages() <= MESSAGE_QUEUE);
    assert!(
        queues.queued_bytes() <= MESSAGE_QUEUE_BYTES,
        "{} bytes queued",
        queues.queued_bytes()
    );
    assert!(
        queues.dropped() > 0,
        "every message was taken: the peer reads?"
    );
    // The write blocked on the full connection gives up, and raft hears.
    let report = tokio::time::timeout(WRITE_TIMEOUT * 2, reports.recv()).await;
    assert!(
        matches!(report, Ok(Some(Inbound::Unreachable { peer: PEER }))),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_to_a_stopped_peer_is_not_reported_sent() {
    let fs = Arc::new(CrashFs::new());
    let (transport, mut reports) = transport(&fs);
    write_snapshot(&fs, &transport, 64 * 1024 * 1024);
    let (_listener, address) = stopped_peer();
    transport.add_peer(PEER, vec![address]);
    transport.send_snapshot(install_snapshot());
    // The kernel takes a few MB; the rest waits, and is not "sent".
    let early = next_snapshot_report(&mut reports, Duration::from_secs(2)).await;
    assert!(
        early.is_none(),
        "reported before it could be written: {early:?}"
    );
    let report = next_snapshot_report(&mut reports, WRITE_TIMEOUT * 2).await;
    assert!(
        matches!(
            report,
            Some(Inbound::SnapshotSent {
                peer: PEER,
                ok: false
            })
        ),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_streamed_from_disk_arrives_whole_and_is_then_reported_sent() {
    let fs = Arc::new(CrashFs::new());
    let (transport, mut reports) = transport(&fs);
    let data = write_snapshot(&fs, &transport, 5 * 1024 * 1024 + 12_345);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (peer_inbound, mut peer_reports) = mpsc::channel(INBOUND_QUEUE);
    let membership =
        tokio::sync::watch::channel(std::sync::Arc::new(crate::membership::Membership::default()))
            .1;
    tokio::spawn(serve_peers(listener, CLUSTER, membership, peer_inbound));
    transport.add_peer(PEER, vec![address]);
    transport.send_snapshot(install_snapshot());

    let peer_fs = Arc::new(CrashFs::new());
    peer_fs.create_dir_all(Path::new("/incoming")).unwrap();
    let mut receiver = SnapshotReceiver::new(peer_fs.clone(), "/incoming".into(), u64::MAX);
    let received = loop {
        let report = tokio::time::timeout(Duration::from_secs(20), peer_reports.recv())
            .await
            .unwrap()
            .unwrap();
        if let Inbound::Frame {
            from: ME,
            frame: Frame::SnapshotChunk(chunk),
        } = report
            && let Some(done) = receiver.receive(ME, chunk).unwrap()
        {
            break done;
        }
    };
    let (dir, message) = received;
    assert!(matches!(message.body, MessageBody::InstallSnapshot { .. }));
    assert_eq!(peer_fs.read_file(&dir.join("kv/000001.sst")).unwrap(), data);
    let report = next_snapshot_report(&mut reports, Duration::from_secs(10)).await;
    assert!(
        matches!(
            report,
            Some(Inbound::SnapshotSent {
                peer: PEER,
                ok: true
            })
        ),
        "{report:?}"
    );
}
