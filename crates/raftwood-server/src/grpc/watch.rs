//! The Watch service: streams of changes from a revision on, over a key
//! or a range, as etcd's.
//!
//! One task per client stream holds its watchers. Whenever the state
//! machine applies more entries, every watcher reads the changes after the
//! last revision it sent (`KvStore::events`, which reads the store's
//! revision log) and sends the ones in its range. Because events are read
//! from the store rather than pushed by the apply thread, a slow client
//! never holds up apply, and a watcher that starts in the past replays
//! from history exactly like one that was there all along.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::Stream;
use raftwood_kv::proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::member::MemberHandle;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};

/// etcd's filter values (`WatchCreateRequest.FilterType`).
const FILTER_NO_PUT: i32 = 0;
const FILTER_NO_DELETE: i32 = 1;
/// etcd's event types (`mvccpb.Event.EventType`).
const EVENT_PUT: i32 = 0;
/// Events read from the store per step, so one busy watcher cannot hold
/// the stream for long.
const EVENTS_PER_STEP: usize = 1000;

/// The Watch service of one member.
#[derive(Debug, Clone)]
pub struct WatchService {
    member: MemberHandle,
}

impl WatchService {
    /// The service of `member`.
    pub fn new(member: MemberHandle) -> WatchService {
        WatchService { member }
    }
}

/// One watcher of a stream.
#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The next revision to send changes from.
    next_revision: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

impl Watcher {
    fn matches(&self, event: &Event) -> bool {
        if event.r#type == EVENT_PUT && self.no_put || event.r#type != EVENT_PUT && self.no_delete {
            return false;
        }
        let Some(kv) = &event.kv else {
            return false;
        };
        let key = kv.key.as_slice();
        if self.range_end.is_empty() {
            key == self.key.as_slice()
        } else if self.range_end == [0] {
            key >= self.key.as_slice()
        } else {
            key >= self.key.as_slice() && key < self.range_end.as_slice()
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
        tokio::spawn(run_stream(self.member.clone(), incoming, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

type Sender = mpsc::Sender<Result<WatchResponse, Status>>;

async fn run_stream(member: MemberHandle, mut incoming: Streaming<WatchRequest>, sender: Sender) {
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
                        create_watcher(&member, &sender, &mut watchers, &mut next_id, create).await
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
        if !drain(&member, &sender, &mut watchers).await {
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
        return send(
            sender,
            WatchResponse {
                header,
                watch_id: id,
                created: true,
                canceled: true,
                cancel_reason: "etcdserver: duplicate watch ID".into(),
                ..WatchResponse::default()
            },
        )
        .await;
    }
    let start = if create.start_revision > 0 {
        create.start_revision
    } else {
        current + 1
    };
    let compacted = kv.compacted_revision();
    if start <= compacted {
        // etcd: created, then cancelled with the compact revision.
        return send(
            sender,
            WatchResponse {
                header,
                watch_id: id,
                created: true,
                canceled: true,
                compact_revision: compacted,
                cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                ..WatchResponse::default()
            },
        )
        .await;
    }
    watchers.insert(
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

/// Sends every watcher the changes it has not seen yet.
async fn drain(
    member: &MemberHandle,
    sender: &Sender,
    watchers: &mut BTreeMap<i64, Watcher>,
) -> bool {
    let ids: Vec<i64> = watchers.keys().copied().collect();
    for id in ids {
        while let Some(watcher) = watchers.get_mut(&id) {
            let kv = member.kv.load();
            let current = kv.current_revision();
            if watcher.next_revision > current {
                break;
            }
            let batch = match kv.events(watcher.next_revision, EVENTS_PER_STEP, watcher.prev_kv) {
                Ok(batch) => batch,
                Err(error) => {
                    // History this watcher needs was compacted away.
                    let compacted = kv.compacted_revision();
                    watchers.remove(&id);
                    let sent = send(
                        sender,
                        WatchResponse {
                            header: Some(member.header(current)),
                            watch_id: id,
                            canceled: true,
                            compact_revision: compacted,
                            cancel_reason: error.to_string(),
                            ..WatchResponse::default()
                        },
                    )
                    .await;
                    if !sent {
                        return false;
                    }
                    break;
                }
            };
            let events: Vec<Event> = batch
                .events
                .into_iter()
                .filter(|event| watcher.matches(event))
                .collect();
            let made_progress = batch.through_revision >= watcher.next_revision;
            watcher.next_revision = batch.through_revision + 1;
            if !events.is_empty() {
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
            if !made_progress {
                break;
            }
        }
    }
    true
}
