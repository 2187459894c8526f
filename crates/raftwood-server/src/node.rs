//! Starting and stopping a member: open the raft log and the state
//! machine, bootstrap a new cluster, start the threads and tasks, serve.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::StdFs;
use raftwood_raft::{
    ConfState, Config, HardState, InitialState, NodeId, PersistRequest, PersistTicket, RaftNode,
    ReadOnlyMode, SnapshotMeta,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{InitialClusterState, ServerConfig};
use crate::driver::{
    ApplyContext, ApplySnapshots, ApplyWork, DriveLoop, ForwardSettings, LogStorage, LoopEvent,
    LoopOutputs, PersistWork, RaftStatus, Waiters, run_apply, run_persistence,
};
use crate::error::ServerError;
use crate::grpc::MemberHandle;
use crate::membership::Membership;
use crate::recovery::reconcile;
use crate::request_id::RequestIds;
use crate::snapshot::SnapshotReceiver;
use crate::state_dir::StateDir;
use crate::timings::StageTimings;
use crate::transport::{self, Frame, Hello, Inbound, PeerTransport};

/// A running member.
#[derive(Debug)]
pub struct RunningNode {
    /// Handles for the services.
    pub context: MemberHandle,
    /// The addresses the client server bound (useful with port 0).
    pub client_addresses: Vec<SocketAddr>,
    drive: JoinHandle<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
    /// The gRPC servers, stopped gracefully through `stop`.
    client_servers: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    /// Stops the member cleanly: the drive loop ends, the threads finish
    /// their queued work, and the state machine is flushed so that the next
    /// start replays little. Returns the fatal error that stopped the
    /// member earlier, if any.
    pub async fn shutdown(self) -> Option<String> {
        // Clients first: no new requests, those in flight finish (they are
        // answered "stopped" once the loop ends), connections close.
        let _ = self.stop.send(true);
        let _ = self.context.events.send(LoopEvent::Shutdown);
        for server in self.client_servers {
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!("a client connection did not close within 5 s");
            }
        }
        let failure = self.drive.await.ok().flatten();
        for task in &self.tasks {
            task.abort();
        }
        // Aborted tasks drop their state (the gRPC services hold the state
        // machine) only when the runtime gets to them: wait, so that the
        // files are unlocked when this returns and the member can restart.
        for task in self.tasks {
            let _ = task.await;
        }
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Err(error) = self.context.kv.load().flush() {
            tracing::warn!(%error, "flushing the state machine at shutdown failed");
        }
        failure
    }

    /// Waits until the member stops by itself (a fatal storage error).
    pub async fn wait_failed(&mut self) -> String {
        let mut status = self.context.status.clone();
        loop {
            if status.borrow().failed {
                return "storage failure".into();
            }
            if status.changed().await.is_err() {
                return "drive loop ended".into();
            }
        }
    }
}

/// Refuses a data directory written by another member or cluster; records
/// the identity in a new one.
fn check_identity(path: &Path, member_id: NodeId, cluster_id: u64) -> Result<(), ServerError> {
    let expected = format!("member_id={member_id:016x}\ncluster_id={cluster_id:016x}\n");
    match std::fs::read_to_string(path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(ServerError::DataDirMismatch(format!(
            "{} holds\n{found}but this member is\n{expected}(another --name, --initial-cluster or --initial-cluster-token wrote it)",
            path.display()
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(path);
            std::fs::create_dir_all(parent)
                .map_err(|e| ServerError::io(format!("creating {}", parent.display()), e))?;
            crate::durable::replace_file(path, expected.as_bytes())
                .map_err(|e| ServerError::io(format!("writing {}", path.display()), e))
        }
        Err(error) => Err(ServerError::io(
            format!("reading {}", path.display()),
            error,
        )),
    }
}

/// Writes `snapshot` as the raft log's starting point, with `hard_state`,
/// and syncs, before the core starts.
fn persist_snapshot_point(
    log_store: &mut RaftLogStore,
    snapshot: &SnapshotMeta,
    hard_state: HardState,
) -> Result<(), ServerError> {
    let request = PersistRequest {
        ticket: PersistTicket(0),
        snapshot: Some(snapshot.clone()),
        entries: Vec::new(),
        hard_state: Some(hard_state),
    };
    LogStorage::write(log_store, &request).map_err(ServerError::Bootstrap)?;
    LogStorage::sync(log_store).map_err(ServerError::Bootstrap)
}

/// Starts a member. Must be called inside a tokio runtime.
pub async fn start(config: ServerConfig) -> Result<RunningNode, ServerError> {
    config.validate()?;
    let config = Arc::new(config);
    let membership =
        Membership::from_initial_cluster(&config.initial_cluster, &config.initial_cluster_token);
    let member_id = membership
        .id_of(&config.name)
        .ok_or_else(|| ServerError::DataDirMismatch("member not in its own cluster".into()))?;
    let cluster_id = membership.cluster_id;
    let dirs = StateDir::new(&config.data_dir);
    check_identity(&dirs.identity(), member_id, cluster_id)?;

    // Bind first: a port in use is the commonest start-up error, and it
    // should be reported before anything is written.
    let mut peer_listeners = Vec::new();
    for url in &config.listen_peer_urls {
        let listener = TcpListener::bind(url.authority())
            .await
            .map_err(|e| ServerError::io(format!("listening for peers on {url}"), e))?;
        peer_listeners.push(listener);
    }
    let mut client_listeners = Vec::new();
    for url in &config.listen_client_urls {
        let listener = TcpListener::bind(url.authority())
            .await
            .map_err(|e| ServerError::io(format!("listening for clients on {url}"), e))?;
        client_listeners.push(listener);
    }

    let (mut log_store, recovered) =
        RaftLogStore::open(Arc::new(StdFs), &dirs.raft(), LogOptions::default())?;
    dirs.remove_unused_kv_dirs();
    let snapshots = dirs
        .snapshots()
        .map_err(|e| ServerError::io("opening the snapshot directory", e))?;
    snapshots
        .remove_leftovers()
        .map_err(|e| ServerError::io("clearing unfinished snapshots", e))?;
    let kv = dirs.open_kv()?;

    let fresh = recovered.snapshot.is_none()
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    let initial = if fresh {
        match config.initial_cluster_state {
            InitialClusterState::New => {
                let voters: Vec<NodeId> = membership.members.keys().copied().collect();
                let initial = InitialState::bootstrap(ConfState::with_voters(voters));
                persist_snapshot_point(&mut log_store, &initial.snapshot, initial.hard_state)?;
                initial
            }
            // A joining member starts empty and learns the configuration
            // from the leader's snapshot.
            InitialClusterState::Existing => InitialState::default(),
        }
    } else {
        let startup = reconcile(
            recovered.hard_state,
            recovered.snapshot.unwrap_or_default(),
            recovered.entries,
            kv.applied_index(),
            dirs.installed_snapshot(),
        );
        if let Some(snapshot) = &startup.reset_log_to {
            tracing::warn!(
                index = snapshot.index,
                "the state machine holds a snapshot the raft log did not record; resetting the log to it"
            );
            persist_snapshot_point(&mut log_store, snapshot, startup.initial.hard_state)?;
        }
        startup.initial
    };
    let applied = initial.applied;
    let snapshot_index = initial.snapshot.index;
    tracing::info!(
        member = %format!("{member_id:x}"),
        applied,
        first = snapshot_index + 1,
        last = initial.entries.last().map_or(snapshot_index, |e| e.index),
        "recovered"
    );

    let mut raft_config = Config::new(member_id);
    raft_config.election_timeout_ticks = config.election_timeout_ticks();
    raft_config.heartbeat_interval_ticks = 1;
    raft_config.pre_vote = true;
    raft_config.check_quorum = true;
    raft_config.read_only_mode = ReadOnlyMode::Safe;
    raft_config.seed = member_id ^ std::process::id() as u64;
    let node = RaftNode::new(raft_config, initial)?;

    let (events_tx, events_rx) = mpsc::unbounded_channel::<LoopEvent>();
    let (status_tx, status_rx) = watch::channel(RaftStatus {
        id: member_id,
        applied,
        ..RaftStatus::default()
    });
    let (applied_tx, applied_rx) = watch::channel(applied);
    let (inbound_tx, mut inbound_rx) = mpsc::unbounded_channel::<Inbound>();
    let waiters = Arc::new(Mutex::new(Waiters::default()));
    let membership = Arc::new(RwLock::new(membership));
    if let Some(me) = membership.write().members.get_mut(&member_id) {
        me.client_urls = config.advertise_client_urls.clone();
    }

    let hello = Hello {
        cluster_id,
        from: member_id,
        client_urls: config
            .advertise_client_urls
            .iter()
            .map(ToString::to_string)
            .collect(),
        name: config.name.clone(),
    };
    let network = PeerTransport::new(
        hello,
        dirs.snapshots()
            .map_err(|e| ServerError::io("opening the snapshot directory", e))?
            .path_of(0)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        inbound_tx.clone(),
    );
    for member in membership.read().members.values() {
        if member.id != member_id {
            network.add_peer(
                member.id,
                member.peer_urls.iter().map(|u| u.authority()).collect(),
            );
        }
    }

    let kv = Arc::new(ArcSwap::from_pointee(kv));
    let mut threads = Vec::new();
    let timings = (config.log_timings_seconds > 0).then(|| Arc::new(StageTimings::new()));
    let (persist_tx, persist_rx) = std_mpsc::channel::<PersistWork>();
    {
        let persist_timings = timings.clone();
        let done_events = events_tx.clone();
        let fatal_events = events_tx.clone();
        let state_dir = dirs.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("persist-{}", config.name))
                .spawn(move || {
                    run_persistence(
                        log_store,
                        persist_rx,
                        |temp_dir, meta| state_dir.finish_snapshot(temp_dir, meta).map(|_| ()),
                        |tickets| {
                            let _ = done_events.send(LoopEvent::Persisted(tickets));
                        },
                        |reason| {
                            let _ = fatal_events.send(LoopEvent::Fatal(reason));
                        },
                        persist_timings,
                    );
                })
                .map_err(|e| ServerError::io("starting the persistence thread", e))?,
        );
    }
    let (apply_tx, apply_rx) = std_mpsc::channel::<ApplyWork>();
    {
        let apply_timings = timings.clone();
        let context = ApplyContext {
            kv: kv.clone(),
            waiters: waiters.clone(),
            applied: applied_tx,
            events: events_tx.clone(),
            snapshots: Some(ApplySnapshots {
                state_dir: dirs.clone(),
                snapshot_count: config.snapshot_count,
                last_snapshot_index: snapshot_index,
            }),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("apply-{}", config.name))
                .spawn(move || run_apply(context, apply_rx, apply_timings))
                .map_err(|e| ServerError::io("starting the apply thread", e))?,
        );
    }

    let drive = DriveLoop::new(
        node,
        LoopOutputs {
            network: Arc::new(network.clone()),
            persist: persist_tx,
            apply: apply_tx,
            waiters,
            status: status_tx,
        },
        (config.snapshot_count / 2).min(5_000),
    )
    .with_forwarding(ForwardSettings {
        // Above every batch id of an earlier life: one id per round, far
        // fewer rounds than microseconds.
        first_batch_id: now_since_epoch().as_micros() as u64,
        timeout_ticks: config.forward_timeout_ticks(),
    });
    let drive = match &timings {
        Some(timings) => drive.with_timings(timings.clone()),
        None => drive,
    };
    let drive = tokio::spawn(drive.run(events_rx));

    let mut tasks = Vec::new();
    if let Some(timings) = timings {
        let period = Duration::from_secs(config.log_timings_seconds);
        let member = config.name.clone();
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Some(summary) = timings.take_summary() {
                    tracing::info!(target: "raftwood::timings", member = %member, "timings over {}s: {summary}", period.as_secs());
                }
            }
        }));
    }
    // Time enters the loop as ticks.
    {
        let events = events_tx.clone();
        let period = Duration::from_millis(config.heartbeat_interval_ms);
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if events.send(LoopEvent::Tick).is_err() {
                    return;
                }
            }
        }));
    }
    // What peers send goes to the loop.
    {
        let events = events_tx.clone();
        let membership = membership.clone();
        let mut receiver = SnapshotReceiver::new(dirs.incoming());
        tasks.push(tokio::spawn(async move {
            while let Some(inbound) = inbound_rx.recv().await {
                let event = match inbound {
                    Inbound::Connected(hello) => {
                        if let Some(member) = membership.write().members.get_mut(&hello.from) {
                            member.client_urls = hello
                                .client_urls
                                .iter()
                                .filter_map(|u| u.parse().ok())
                                .collect();
                        }
                        continue;
                    }
                    Inbound::Frame {
                        frame: Frame::Messages(messages),
                        ..
                    } => LoopEvent::Messages(messages),
                    Inbound::Frame {
                        frame: Frame::SnapshotChunk(chunk),
                        from,
                    } => match receiver.receive(from, chunk) {
                        Ok(Some((dir, message))) => {
                            let index = match &message.body {
                                raftwood_raft::MessageBody::InstallSnapshot { snapshot } => {
                                    snapshot.index
                                }
                                _ => continue,
                            };
                            LoopEvent::SnapshotReceived {
                                dir,
                                index,
                                message,
                            }
                        }
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(from, %error, "snapshot transfer abandoned");
                            continue;
                        }
                    },
                    Inbound::SnapshotSent { peer, ok } => LoopEvent::SnapshotSent { peer, ok },
                    Inbound::Unreachable { peer } => LoopEvent::Unreachable(peer),
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        }));
    }
    for listener in peer_listeners {
        tasks.push(tokio::spawn(transport::serve_peers(
            listener,
            cluster_id,
            inbound_tx.clone(),
        )));
    }

    let context = MemberHandle {
        config: config.clone(),
        member_id,
        cluster_id,
        membership,
        kv,
        events: events_tx,
        status: status_rx,
        applied: applied_rx,
        request_ids: Arc::new(RequestIds::new(
            member_id,
            now_since_epoch().as_millis() as u64,
        )),
    };
    let api = crate::grpc::ClientApi::new(context.clone());
    tasks.push(tokio::spawn(api.expire_leases()));
    let mut client_addresses = Vec::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut client_servers = Vec::new();
    for listener in client_listeners {
        if let Ok(address) = listener.local_addr() {
            client_addresses.push(address);
        }
        client_servers.push(tokio::spawn(crate::grpc::serve(
            listener,
            api.clone(),
            stop_rx.clone(),
        )));
    }
    Ok(RunningNode {
        context,
        client_addresses,
        drive,
        tasks,
        client_servers,
        stop: stop_tx,
        threads,
    })
}

/// Wall-clock time since the Unix epoch (zero if the clock is before it):
/// what request ids and forwarded batch ids start from.
fn now_since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
