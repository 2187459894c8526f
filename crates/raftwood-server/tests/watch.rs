//! The Watch service's edges, as etcd serves them: a watch from the
//! compaction revision itself, progress that never claims unsent events,
//! periodic progress notifications, fragmented responses, and watch ids a
//! client chooses.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::Duration;

use raftwood_server::proto::etcdserverpb::watch_client::WatchClient;
use raftwood_server::proto::etcdserverpb::watch_request::RequestUnion;
use raftwood_server::proto::etcdserverpb::{
    CompactionRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use support::*;
use tokio::sync::mpsc;
use tonic::Streaming;

/// A watch stream on the member serving `port`.
struct Stream {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Stream {
    async fn open(port: u16) -> Stream {
        let (requests, receiver) = mpsc::channel(16);
        let responses = WatchClient::new(channel(port))
            .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        Stream {
            requests,
            responses,
        }
    }

    async fn send(&self, request: RequestUnion) {
        let request = WatchRequest {
            request_union: Some(request),
        };
        self.requests.send(request).await.unwrap();
    }

    async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        self.send(RequestUnion::CreateRequest(create)).await;
        self.next().await
    }

    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("a watch response within 10 s")
            .unwrap()
            .unwrap()
    }

    /// Responses until one satisfies `done`, all of them.
    async fn until(&mut self, done: impl Fn(&WatchResponse) -> bool) -> Vec<WatchResponse> {
        let mut seen = Vec::new();
        loop {
            let response = self.next().await;
            let finished = done(&response);
            seen.push(response);
            if finished {
                return seen;
            }
        }
    }
}

fn watch_key(key: &str, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        start_revision,
        ..WatchCreateRequest::default()
    }
}

fn revision_of(response: &WatchResponse) -> i64 {
    response.header.as_ref().unwrap().revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_the_compaction_revision_is_served_and_one_below_is_cancelled() {
    let (_dir, ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(ports[0]).await;
    put_eventually(&mut kv, "k", "1").await;
    let compacted_at = put_eventually(&mut kv, "k", "2").await;
    put_eventually(&mut kv, "k", "3").await;
    kv.compact(CompactionRequest {
        revision: compacted_at,
        physical: true,
    })
    .await
    .unwrap();

    let mut stream = Stream::open(ports[0]).await;
    let created = stream.create(watch_key("k", compacted_at)).await;
    assert!(created.created && !created.canceled, "{created:?}");
    let events = stream.until(|r| !r.events.is_empty()).await;
    let values: Vec<Vec<u8>> = events
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| e.kv.as_ref().unwrap().value.clone())
        .collect();
    assert_eq!(values, [b"2".to_vec(), b"3".to_vec()]);

    // One below: created (as etcd does), then cancelled with the
    // compaction revision, and no reason text (the revision says it).
    let created = stream.create(watch_key("k", compacted_at - 1)).await;
    assert!(created.created && !created.canceled, "{created:?}");
    let canceled = stream.next().await;
    assert_eq!(canceled.watch_id, created.watch_id);
    assert!(canceled.canceled);
    assert_eq!(canceled.compact_revision, compacted_at);
    assert_eq!(canceled.cancel_reason, "");
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_follows_the_events_sent_and_ids_follow_etcds_rules() {
    let (_dir, ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(ports[1]).await;
    let first = put_eventually(&mut kv, "p", "0").await;
    for i in 1..=50 {
        put_eventually(&mut kv, "p", &i.to_string()).await;
    }
    let mut stream = Stream::open(ports[1]).await;
    // A watcher replaying history, then a progress request at once: the
    // answer comes after every replayed event, at a revision no lower.
    let created = stream.create(watch_key("p", first)).await;
    assert_eq!(created.watch_id, 0, "etcd's first automatic id");
    stream
        .send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let seen = stream.until(|r| r.watch_id == -1).await;
    let events: usize = seen.iter().map(|r| r.events.len()).sum();
    assert_eq!(events, 51, "every event before the progress notification");
    let last_event_revision = seen
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .max()
        .unwrap();
    let progress = seen.last().unwrap();
    assert!(progress.events.is_empty());
    assert!(revision_of(progress) >= last_event_revision);

    // Ids: a chosen one is used; a duplicate is refused as etcd refuses
    // it; automatic ids are never handed out twice in a stream.
    let chosen = stream
        .create(WatchCreateRequest {
            watch_id: 7,
            ..watch_key("q", 0)
        })
        .await;
    assert_eq!(chosen.watch_id, 7);
    let duplicate = stream
        .create(WatchCreateRequest {
            watch_id: 7,
            ..watch_key("q", 0)
        })
        .await;
    assert!(duplicate.created && duplicate.canceled);
    assert_eq!(duplicate.watch_id, -1);
    assert_eq!(
        duplicate.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    let second = stream.create(watch_key("q", 0)).await;
    assert_eq!(second.watch_id, 1);
    stream
        .send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 1,
        }))
        .await;
    assert!(stream.next().await.canceled);
    let third = stream.create(watch_key("q", 0)).await;
    assert_eq!(third.watch_id, 2, "a cancelled automatic id is not reused");
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watchers_that_ask_for_progress_hear_it_periodically() {
    let (_dir, ports, configs) = layout(|config| {
        config.watch_progress_notify_interval = Duration::from_millis(200);
    });
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(ports[0]).await;
    let revision = put_eventually(&mut kv, "idle", "1").await;
    let mut stream = Stream::open(ports[0]).await;
    let notified = stream
        .create(WatchCreateRequest {
            progress_notify: true,
            ..watch_key("idle", 0)
        })
        .await;
    let silent = stream.create(watch_key("other", 0)).await;
    let progress = stream.next().await;
    assert_eq!(progress.watch_id, notified.watch_id);
    assert!(progress.events.is_empty());
    assert!(revision_of(&progress) >= revision);
    let again = stream.next().await;
    assert_eq!(
        again.watch_id, notified.watch_id,
        "only the watcher that asked ({}), never {}",
        notified.watch_id, silent.watch_id
    );
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_larger_than_the_request_limit_arrives_in_fragments_when_asked() {
    use raftwood_server::proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    let (_dir, ports, configs) = layout(|_| {});
    let nodes = start_all(&configs).await;
    let mut kv = kv_client(ports[0]).await;
    put_eventually(&mut kv, "warm-up", "1").await;
    // 12 keys of 200 KiB: 2.4 MiB, deleted in one revision later.
    let value = vec![b'x'; 200 * 1024];
    for i in 0..12 {
        kv.put(PutRequest {
            key: format!("big/{i:02}").into_bytes(),
            value: value.clone(),
            ..PutRequest::default()
        })
        .await
        .unwrap();
    }
    let mut whole = Stream::open(ports[0]).await;
    let mut split = Stream::open(ports[0]).await;
    let range = |fragment| WatchCreateRequest {
        key: b"big/".to_vec(),
        range_end: b"big0".to_vec(),
        prev_kv: true,
        fragment,
        ..WatchCreateRequest::default()
    };
    whole.create(range(false)).await;
    split.create(range(true)).await;
    kv.delete_range(DeleteRangeRequest {
        key: b"big/".to_vec(),
        range_end: b"big0".to_vec(),
        ..DeleteRangeRequest::default()
    })
    .await
    .unwrap();

    let one = whole.next().await;
    assert_eq!(one.events.len(), 12);
    assert!(!one.fragment);
    let parts = split.until(|r| !r.fragment).await;
    assert!(parts.len() >= 2, "{} responses", parts.len());
    assert!(parts[..parts.len() - 1].iter().all(|r| r.fragment));
    let events: Vec<_> = parts.into_iter().flat_map(|r| r.events).collect();
    assert_eq!(events, one.events, "the same events, in order");
    for node in nodes {
        assert_eq!(node.shutdown().await, None);
    }
}
