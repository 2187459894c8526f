//! What the client services' unit tests share: a member handle over an
//! in-memory state machine, with the drive loop's side of its channel, so
//! that a test can play the loop. No socket is opened, no disk touched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use raftwood_kv::{KvOptions, KvStore};
use raftwood_lsm::fs::{CrashFs, FileSystem};
use tokio::sync::{mpsc, watch};

use super::MemberHandle;
use crate::config::ServerConfig;
use crate::driver::{LoopEvent, RaftStatus};
use crate::membership::{Member, Membership};
use crate::request_id::RequestIds;

/// The member the handle stands for.
pub(crate) const ME: u64 = 0x5eed_0001;

/// A handle for member `ME` (whose client URL is unknown), with its
/// drive-loop channel and the given published status.
pub(crate) fn handle_with(
    status: RaftStatus,
) -> (MemberHandle, mpsc::UnboundedReceiver<LoopEvent>) {
    let fs = Arc::new(CrashFs::new());
    let mut options = KvOptions::default();
    options.lsm.fs = Arc::clone(&fs) as Arc<dyn FileSystem>;
    options.lsm.background_threads = false;
    let kv = KvStore::open(Path::new("/kv"), options).expect("an in-memory store");
    let mut members = BTreeMap::new();
    members.insert(
        ME,
        Member {
            id: ME,
            name: "m1".into(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: false,
        },
    );
    let (events, loop_side) = mpsc::unbounded_channel();
    let (_, status) = watch::channel(status);
    let (_, applied) = watch::channel(0);
    let handle = MemberHandle {
        config: Arc::new(ServerConfig::new("m1", "/unused".into())),
        member_id: ME,
        cluster_id: 7,
        membership: watch::channel(Arc::new(Membership {
            cluster_id: 7,
            members,
            removed: Default::default(),
        }))
        .1,
        kv: Arc::new(ArcSwap::from_pointee(kv)),
        events,
        status,
        applied,
        request_ids: Arc::new(RequestIds::new(ME, 1_000)),
    };
    (handle, loop_side)
}
