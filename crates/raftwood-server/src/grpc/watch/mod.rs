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

#[cfg(test)]
mod drain_tests;
mod event_cache;
mod watchers;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use raftwood_kv::RequestError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use self::event_cache::{EventCache, ReadError};
use self::watchers::{Group, Watcher};
use super::member::MemberHandle;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};

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

async fn run_stream(service: WatchService, mut incoming: Streaming<WatchRequest>, sender: Sender) {
    let member = &service.member;
    let mut watchers: BTreeMap<i64, Watcher> = BTreeMap::new();
    let mut next_id: i64 = 0;
    let mut applied = member.applied.clone();
    loop {
        tokio::select! {
            message = incoming.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) | Err(_) => return,
                };
                let keep_going = match request.request_union {
                    Some(RequestUnion::CreateRequest(create)) => {
                        create_watcher(member, &sender, &mut watchers, &mut next_id, create).await
                    }
                    Some(RequestUnion::CancelRequest(cancel)) => {
                        watchers.remove(&cancel.watch_id);
                        send(&sender, WatchResponse {
                            header: Some(member.header_now()),
                            watch_id: cancel.watch_id,
                            canceled: true,
                            ..WatchResponse::default()
                        }).await
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        // A progress notification: the header's revision
                        // says every watcher is up to date to it (they are
                        // drained below before anything new is applied).
                        send(&sender, WatchResponse {
                            header: Some(member.header_now()),
                            watch_id: -1,
                            ..WatchResponse::default()
                        }).await
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
        }
        if !drain(&service, &sender, &mut watchers).await {
            return;
        }
    }
}

async fn send(sender: &Sender, response: WatchResponse) -> bool {
    sender.send(Ok(response)).await.is_ok()
}

async fn create_watcher(
    member: &MemberHandle,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
    next_id: &mut i64,
    create: WatchCreateRequest,
) -> bool {
    let kv = member.kv.load();
    let id = if create.watch_id != 0 {
        create.watch_id
    } else {
        while watchers.contains_key(next_id) {
            *next_id += 1;
        }
        *next_id
    };
    let current = kv.current_revision();
    let header = Some(member.header(current));
    if watchers.contains_key(&id) && create.watch_id != 0 {
        let refused = created_and_canceled(header, id, "etcdserver: duplicate watch ID", 0);
        return send(sender, refused).await;
    }
    let start = if create.start_revision > 0 {
        create.start_revision
    } else {
        current + 1
    };
    let compacted = kv.compacted_revision();
    if start <= compacted {
        // etcd: created, then cancelled with the compact revision.
        let reason = "etcdserver: mvcc: required revision has been compacted";
        return send(sender, created_and_canceled(header, id, reason, compacted)).await;
    }
    let earlier = watchers.insert(
        id,
        Watcher {
            key: create.key,
            range_end: create.range_end,
            next_revision: start,
            no_put: create.filters.contains(&FILTER_NO_PUT),
            no_delete: create.filters.contains(&FILTER_NO_DELETE),
            prev_kv: create.prev_kv,
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

/// How etcd refuses a watch it cannot create: created, then canceled.
fn created_and_canceled(
    header: Option<ResponseHeader>,
    id: i64,
    reason: &str,
    compact_revision: i64,
) -> WatchResponse {
    WatchResponse {
        header,
        watch_id: id,
        created: true,
        canceled: true,
        compact_revision,
        cancel_reason: reason.into(),
        ..WatchResponse::default()
    }
}

/// Sends every watcher the changes it has not seen yet, a group of
/// watchers at the same revision at a time.
async fn drain(
    service: &WatchService,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
) -> bool {
    let member = &service.member;
    loop {
        let current = member.kv.load().current_revision();
        let Some(group) = watchers::next_group(watchers, current) else {
            return true;
        };
        let batch = match service
            .events
            .events(member, group.next_revision, group.prev_kv)
            .await
        {
            Ok(batch) => batch,
            Err(ReadError::Stopped) => return false,
            Err(ReadError::Store(error)) => {
                if !cancel_group(member, sender, watchers, group, &error).await {
                    return false;
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
            if !send(sender, response).await {
                return false;
            }
        }
        if batch.through_revision < group.next_revision {
            return true; // nothing new yet; the next apply wakes the stream
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
    for id in ids {
        watchers.remove(&id);
        let response = WatchResponse {
            header: Some(member.header(current)),
            watch_id: id,
            canceled: true,
            compact_revision: compacted,
            cancel_reason: error.to_string(),
            ..WatchResponse::default()
        };
        if !send(sender, response).await {
            return false;
        }
    }
    true
}
