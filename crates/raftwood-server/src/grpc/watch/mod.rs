//! The Watch service: streams of changes from a revision on, over a key
//! or a range, as etcd's.
//!
//! One task per client stream holds its watchers. Whenever the state
//! machine applies more entries, the stream reads the changes after the
//! last revision its watchers sent (`KvStore::events`, which reads the
//! store's revision log) and sends each watcher the ones in its range.
//! Because events are read from the store rather than pushed by the apply
//! thread, a slow client never holds up apply, and a watcher that starts
//! in the past replays from history exactly like one that was there all
//! along. The reads are shared: watchers at the same revision read once
//! per stream (`watchers.rs`), and streams at the same revision read once
//! per member (`event_cache.rs`), off the runtime's workers.
//!
//! Progress: a progress request is answered once the stream's watchers
//! are drained, with the revision every one of them has been sent (etcd
//! 3.4 answered with the store's revision at once, which could claim
//! events not yet sent); watchers created with `progress_notify` hear the
//! same every `--experimental-watch-progress-notify-interval` (10 minutes)
//! unless they were sent events since the last one, as in etcd.

#[cfg(test)]
mod drain_tests;
mod event_cache;
mod fragment;
mod watchers;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use raftwood_kv::{EtcdError, RequestError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use self::event_cache::{EventCache, ReadError};
use self::watchers::{Group, Watcher};
use super::member::MemberHandle;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};

/// The watch id a client sends to let the server choose
/// (`clientv3.AutoWatchID`).
const AUTO_WATCH_ID: i64 = 0;

/// etcd's filter values (`WatchCreateRequest.FilterType`).
const FILTER_NO_PUT: i32 = 0;
const FILTER_NO_DELETE: i32 = 1;

/// The Watch service of one member (one per member, served on every client
/// listener: its event cache is the member's).
#[derive(Debug, Clone)]
pub struct WatchService {
    member: MemberHandle,
    events: Arc<EventCache>,
}

impl WatchService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> WatchService {
        WatchService {
            member,
            events: Arc::new(EventCache::default()),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let incoming = request.into_inner();
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(run_stream(self.clone(), incoming, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

type Sender = mpsc::Sender<Result<WatchResponse, Status>>;

/// The watch id etcd's responses carry when they belong to no watcher
/// (`clientv3.InvalidWatchID`).
const NO_WATCH_ID: i64 = -1;

/// One client stream's watchers and the ids it hands out.
#[derive(Debug, Default)]
struct StreamWatchers {
    watchers: BTreeMap<i64, Watcher>,
    /// The next id to try for a watcher that asks for none (etcd's
    /// `nextID`: never handed out twice in a stream).
    next_id: i64,
}

async fn run_stream(service: WatchService, mut incoming: Streaming<WatchRequest>, sender: Sender) {
    let member = &service.member;
    let mut stream = StreamWatchers::default();
    let mut applied = member.applied.clone();
    let interval = member.config.watch_progress_notify_interval;
    let mut progress_ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        let mut progress_requested = false;
        let mut progress_due = false;
        tokio::select! {
            message = incoming.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) | Err(_) => return,
                };
                let keep_going = match request.request_union {
                    Some(RequestUnion::CreateRequest(create)) => {
                        create_watcher(member, &sender, &mut stream, create).await
                    }
                    Some(RequestUnion::CancelRequest(cancel)) => {
                        cancel_watcher(member, &sender, &mut stream, cancel.watch_id).await
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        progress_requested = true;
                        true
                    }
                    None => true,
                };
                if !keep_going {
                    return;
                }
            }
            changed = applied.changed() => {
                if changed.is_err() {
                    return; // the member stopped
                }
            }
            _ = progress_ticker.tick() => progress_due = true,
        }
        let Some(current) = drain(&service, &sender, &mut stream.watchers).await else {
            return;
        };
        let synced = synced_revision(&stream.watchers, current);
        if progress_requested && !send(&sender, progress(member, NO_WATCH_ID, synced)).await {
            return;
        }
        if progress_due && !notify_progress(member, &sender, &mut stream.watchers, current).await {
            return;
        }
    }
}

/// The revision through which every watcher of the stream has been sent
/// its events, after a drain that caught them up to `current`: a watcher
/// behind (the store applied more meanwhile) holds it back; watchers
/// starting in the future do not.
fn synced_revision(watchers: &BTreeMap<i64, Watcher>, current: i64) -> i64 {
    let synced = watchers
        .values()
        .map(|watcher| watcher.next_revision - 1)
        .fold(current, i64::min);
    assert!(synced <= current, "progress never runs ahead of the store");
    synced
}

/// A progress notification: `watch_id`'s events (every watcher's, for
/// [`NO_WATCH_ID`]) have all been sent through `revision`.
fn progress(member: &MemberHandle, watch_id: i64, revision: i64) -> WatchResponse {
    WatchResponse {
        header: Some(member.header(revision)),
        watch_id,
        ..WatchResponse::default()
    }
}

/// The periodic notification of watchers created with `progress_notify`
/// that were sent nothing since the last one and are caught up (etcd:
/// only synced watchers are told).
async fn notify_progress(
    member: &MemberHandle,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
    current: i64,
) -> bool {
    let mut due = Vec::new();
    for (&id, watcher) in watchers.iter_mut() {
        if watcher.progress_notify
            && !watcher.sent_since_progress
            && watcher.next_revision > current
        {
            due.push(id);
        }
        watcher.sent_since_progress = false;
    }
    for id in due {
        if !send(sender, progress(member, id, current)).await {
            return false;
        }
    }
    true
}

async fn cancel_watcher(
    member: &MemberHandle,
    sender: &Sender,
    stream: &mut StreamWatchers,
    watch_id: i64,
) -> bool {
    // etcd answers only a watcher it had.
    if stream.watchers.remove(&watch_id).is_none() {
        return true;
    }
    let response = WatchResponse {
        header: Some(member.header_now()),
        watch_id,
        canceled: true,
        ..WatchResponse::default()
    };
    send(sender, response).await
}

async fn send(sender: &Sender, response: WatchResponse) -> bool {
    sender.send(Ok(response)).await.is_ok()
}

async fn create_watcher(
    member: &MemberHandle,
    sender: &Sender,
    stream: &mut StreamWatchers,
    create: WatchCreateRequest,
) -> bool {
    let current = member.kv.load().current_revision();
    let header = Some(member.header(current));
    let id = if create.watch_id == AUTO_WATCH_ID {
        while stream.watchers.contains_key(&stream.next_id) {
            stream.next_id += 1;
        }
        stream.next_id += 1;
        stream.next_id - 1
    } else if stream.watchers.contains_key(&create.watch_id) {
        let reason = "mvcc: duplicate watch ID provided on the WatchStream";
        return send(sender, created_and_canceled(header, reason)).await;
    } else {
        create.watch_id
    };
    let start = if create.start_revision > 0 {
        create.start_revision
    } else {
        current + 1
    };
    // A start below the compaction revision is created, then cancelled
    // with the compact revision by the drain that finds it compacted (as
    // etcd does); a start at the compaction revision is served.
    let earlier = stream.watchers.insert(
        id,
        Watcher {
            key: create.key,
            range_end: create.range_end,
            next_revision: start,
            no_put: create.filters.contains(&FILTER_NO_PUT),
            no_delete: create.filters.contains(&FILTER_NO_DELETE),
            prev_kv: create.prev_kv,
            progress_notify: create.progress_notify,
            fragment: create.fragment,
            sent_since_progress: false,
        },
    );
    // A watch id names one watcher of the stream: a client's own id was
    // refused above if taken, and a chosen one is free.
    assert!(earlier.is_none(), "watch id {id} given twice");
    send(
        sender,
        WatchResponse {
            header,
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        },
    )
    .await
}

/// How etcd refuses a watch it cannot create: created and canceled at
/// once, for no watcher.
fn created_and_canceled(header: Option<ResponseHeader>, reason: &str) -> WatchResponse {
    WatchResponse {
        header,
        watch_id: NO_WATCH_ID,
        created: true,
        canceled: true,
        cancel_reason: reason.into(),
        ..WatchResponse::default()
    }
}

/// Sends every watcher the changes it has not seen yet, a group of
/// watchers at the same revision at a time. Returns the store's revision
/// the watchers were caught up to (`None`: the stream or member ended).
async fn drain(
    service: &WatchService,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
) -> Option<i64> {
    let member = &service.member;
    let max_bytes = usize::try_from(member.config.max_request_bytes).unwrap_or(usize::MAX);
    loop {
        let current = member.kv.load().current_revision();
        let Some(group) = watchers::next_group(watchers, current) else {
            return Some(current);
        };
        let batch = match service
            .events
            .events(member, group.next_revision, group.prev_kv)
            .await
        {
            Ok(batch) => batch,
            Err(ReadError::Stopped) => return None,
            Err(ReadError::Store(error)) => {
                if !cancel_group(member, sender, watchers, group, &error).await {
                    return None;
                }
                continue;
            }
        };
        // Invariant: a batch holds changes of its revisions only, in order
        // (so a watcher moved past it has been sent all it wants of them).
        debug_assert!(batch.events.windows(2).all(|pair| {
            let revision =
                |e: &raftwood_kv::proto::mvccpb::Event| e.kv.as_ref().map(|kv| kv.mod_revision);
            revision(&pair[0]) <= revision(&pair[1])
        }));
        debug_assert!(batch.events.iter().all(|event| {
            event.kv.as_ref().is_none_or(|kv| {
                kv.mod_revision >= group.next_revision && kv.mod_revision <= batch.through_revision
            })
        }));
        let wanted = watchers::dispatch(watchers, group, &batch.events);
        for watcher in watchers.values_mut() {
            if group.holds(watcher) {
                // A watcher never goes back to revisions it was sent.
                debug_assert!(batch.through_revision + 1 >= watcher.next_revision);
                watcher.next_revision = batch.through_revision + 1;
            }
        }
        for (id, events) in wanted {
            let response = WatchResponse {
                header: Some(member.header(batch.through_revision)),
                watch_id: id,
                events,
                ..WatchResponse::default()
            };
            let Some(watcher) = watchers.get_mut(&id) else {
                unreachable!("dispatch answers only the stream's watchers");
            };
            watcher.sent_since_progress = true;
            let responses = if watcher.fragment {
                fragment::fragments(response, max_bytes)
            } else {
                vec![response]
            };
            for response in responses {
                if !send(sender, response).await {
                    return None;
                }
            }
        }
        if batch.through_revision < group.next_revision {
            // Nothing new yet; the next apply wakes the stream.
            return Some(batch.through_revision);
        }
    }
}

/// History the watchers of `group` need was compacted away (or the store
/// failed): each is cancelled, as etcd cancels them.
async fn cancel_group(
    member: &MemberHandle,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
    group: Group,
    error: &RequestError,
) -> bool {
    let kv = member.kv.load();
    let (current, compacted) = (kv.current_revision(), kv.compacted_revision());
    let ids: Vec<i64> = watchers
        .iter()
        .filter(|(_, watcher)| group.holds(watcher))
        .map(|(&id, _)| id)
        .collect();
    // etcd says compaction by the compact revision alone; other
    // failures by their reason.
    let compacted_away = matches!(error, RequestError::Refused(EtcdError::Compacted));
    for id in ids {
        watchers.remove(&id);
        let response = WatchResponse {
            header: Some(member.header(current)),
            watch_id: id,
            canceled: true,
            compact_revision: compacted,
            cancel_reason: if compacted_away {
                String::new()
            } else {
                error.to_string()
            },
            ..WatchResponse::default()
        };
        if !send(sender, response).await {
            return false;
        }
    }
    true
}
