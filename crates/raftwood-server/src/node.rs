//! Starting and stopping a member. [`start`] is a short list of named
//! steps: bind the listeners, bootstrap (`bootstrap.rs`: identity, log,
//! state machine, reconciled into one value), build the raft core, spawn
//! the persistence and apply threads (`threads/`), the drive loop and the
//! tasks around it (ticks, peer routing), then serve clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use raftwood_kv::KvStore;
use raftwood_log::RaftLogStore;
use raftwood_lsm::fs::{FileSystem, StdFs};
use raftwood_raft::{Config, Index, InitialState, NodeId, RaftNode, ReadOnlyMode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::bootstrap::{Bootstrapped, bootstrap, needs_membership_query};
use crate::config::ServerConfig;
use crate::driver::{
    ApplyWork, DriveLoop, ForwardSettings, LoopEvent, LoopOutputs, PersistWork, RaftStatus, Waiters,
};
use crate::error::ServerError;
use crate::grpc::{ClientApi, MemberHandle};
use crate::membership::Membership;
use crate::request_id::RequestIds;
use crate::snapshot::SnapshotStore;
use crate::threads::{
    ApplyContext, ApplySnapshots, MembershipPublisher, run_apply, run_persistence,
};
use crate::timings::StageTimings;
use crate::transport::{self, Hello, Inbound, PeerTransport, SnapshotReceiver};

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

    /// Waits until the member stops by itself: a fatal storage error, or
    /// its own removal from the cluster (then the answer says so).
    pub async fn wait_failed(&mut self) -> String {
        let mut status = self.context.status.clone();
        loop {
            let now = *status.borrow();
            if now.removed {
                return "removed from the cluster".into();
            }
            if now.failed {
                return "storage failure".into();
            }
            if status.changed().await.is_err() {
                return "drive loop ended".into();
            }
        }
    }
}

/// The listeners a member serves on, bound before anything is written.
#[derive(Debug)]
struct Listeners {
    peers: Vec<TcpListener>,
    clients: Vec<TcpListener>,
}

/// Binds every peer and client URL: a port in use is the commonest
/// start-up error, and it should be reported before anything is written.
async fn bind_listeners(config: &ServerConfig) -> Result<Listeners, ServerError> {
    let mut peers = Vec::new();
    for url in &config.listen_peer_urls {
        let listener = TcpListener::bind(url.authority())
            .await
            .map_err(|e| ServerError::io(format!("listening for peers on {url}"), e))?;
        peers.push(listener);
    }
    let mut clients = Vec::new();
    for url in &config.listen_client_urls {
        let listener = TcpListener::bind(url.authority())
            .await
            .map_err(|e| ServerError::io(format!("listening for clients on {url}"), e))?;
        clients.push(listener);
    }
    Ok(Listeners { peers, clients })
}

/// The raft core with the server's settings.
fn raft_node(
    config: &ServerConfig,
    member_id: NodeId,
    initial: InitialState,
) -> Result<RaftNode, ServerError> {
    let mut raft_config = Config::new(member_id);
    raft_config.election_timeout_ticks = config.election_timeout_ticks();
    raft_config.heartbeat_interval_ticks = 1;
    // A validated configuration: an election timeout of five heartbeats
    // at least (`ServerConfig::validate`).
    assert!(
        raft_config.election_timeout_ticks >= 5 * raft_config.heartbeat_interval_ticks,
        "election timeout of {} ticks",
        raft_config.election_timeout_ticks
    );
    raft_config.pre_vote = true;
    raft_config.check_quorum = true;
    raft_config.read_only_mode = ReadOnlyMode::Safe;
    raft_config.seed = member_id ^ u64::from(std::process::id());
    Ok(RaftNode::new(raft_config, initial)?)
}

/// The channels between the drive loop and everything around it.
struct Channels {
    events: mpsc::UnboundedSender<LoopEvent>,
    events_rx: mpsc::UnboundedReceiver<LoopEvent>,
    status: watch::Sender<RaftStatus>,
    status_rx: watch::Receiver<RaftStatus>,
    applied: watch::Sender<Index>,
    applied_rx: watch::Receiver<Index>,
    inbound: mpsc::Sender<Inbound>,
    inbound_rx: mpsc::Receiver<Inbound>,
}

impl Channels {
    fn new(member_id: NodeId, applied: Index) -> Channels {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (status, status_rx) = watch::channel(RaftStatus {
            id: member_id,
            applied,
            ..RaftStatus::default()
        });
        let (applied, applied_rx) = watch::channel(applied);
        let (inbound, inbound_rx) = mpsc::channel(transport::INBOUND_QUEUE);
        Channels {
            events,
            events_rx,
            status,
            status_rx,
            applied,
            applied_rx,
            inbound,
            inbound_rx,
        }
    }
}

/// The peer transport; `transport::follow_membership` starts its senders.
fn peer_transport(
    config: &ServerConfig,
    boot: &Bootstrapped,
    inbound: mpsc::Sender<Inbound>,
) -> Arc<PeerTransport> {
    let hello = Hello {
        cluster_id: boot.membership.cluster_id,
        from: boot.member_id,
        client_urls: config
            .advertise_client_urls
            .iter()
            .map(ToString::to_string)
            .collect(),
        name: config.name.clone(),
    };
    PeerTransport::new(hello, boot.snapshots.clone(), inbound)
}

/// Starts the persistence thread over `log_store`; it reports to the
/// drive loop through `events`.
fn spawn_persistence(
    name: &str,
    log_store: RaftLogStore,
    snapshots: SnapshotStore,
    events: mpsc::UnboundedSender<LoopEvent>,
    timings: Option<Arc<StageTimings>>,
) -> Result<(std_mpsc::Sender<PersistWork>, std::thread::JoinHandle<()>), ServerError> {
    let (work, work_rx) = std_mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("persist-{name}"))
        .spawn(move || run_persistence(log_store, work_rx, snapshots, events, timings))
        .map_err(|e| ServerError::io("starting the persistence thread", e))?;
    Ok((work, thread))
}

/// Starts the apply thread with `context`; it reports to the drive loop
/// through the context's events.
fn spawn_apply(
    name: &str,
    context: ApplyContext,
    timings: Option<Arc<StageTimings>>,
) -> Result<(std_mpsc::Sender<ApplyWork>, std::thread::JoinHandle<()>), ServerError> {
    let (work, work_rx) = std_mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("apply-{name}"))
        .spawn(move || run_apply(context, work_rx, timings))
        .map_err(|e| ServerError::io("starting the apply thread", e))?;
    Ok((work, thread))
}

/// The drive loop around `node`, with the server's settings.
fn drive_loop(
    config: &ServerConfig,
    node: RaftNode,
    outputs: LoopOutputs,
    incarnation: u64,
    timings: Option<Arc<StageTimings>>,
) -> DriveLoop {
    // The loop's own answer to a forwarded write comes before the gRPC
    // layer's generic timeout.
    assert!(
        config.forward_timeout_ticks() * config.heartbeat_interval_ms < config.request_timeout_ms(),
        "forwarded proposals time out after their requests"
    );
    let drive = DriveLoop::new(node, outputs, (config.snapshot_count / 2).min(5_000))
        .with_forwarding(ForwardSettings {
            first_batch_id: first_batch_id(incarnation),
            timeout_ticks: config.forward_timeout_ticks(),
        });
    match timings {
        Some(timings) => drive.with_timings(timings),
        None => drive,
    }
}

/// Rounds one life of a member may number (one batch id per round): 2^40,
/// three and a half years at 10,000 rounds a second.
const BATCH_IDS_PER_INCARNATION: u64 = 1 << 40;
/// Where incarnation-numbered batch ids start: above every id the earlier
/// wall-clock numbering (microseconds since the epoch) gave, so a member
/// upgraded in place keeps its ids increasing.
const BATCH_ID_BASE: u64 = 1 << 62;

/// The first forwarded-batch id of the member's `incarnation`-th start:
/// above every id of its earlier lives whatever the wall clock says (the
/// leader drops a forwarded batch whose id is not above the last it took
/// from the member in its term; ids from the clock went back with it).
fn first_batch_id(incarnation: u64) -> u64 {
    assert!(
        incarnation > 0 && incarnation < (1 << 21),
        "incarnation {incarnation} outside the batch-id space"
    );
    BATCH_ID_BASE + incarnation * BATCH_IDS_PER_INCARNATION
}

/// The membership of the cluster this member joins, from the first peer
/// of `--initial-cluster` (other than itself) that answers with one that
/// includes this member.
async fn ask_peers_for_membership(config: &ServerConfig) -> Result<Membership, ServerError> {
    let mine = &config.initial_advertise_peer_urls;
    let peers: Vec<crate::url::PeerUrl> = config
        .initial_cluster
        .iter()
        .flat_map(|member| member.peer_urls.iter())
        .filter(|url| !mine.contains(url))
        .cloned()
        .collect();
    let includes_me = |membership: &Membership| membership.with_peer_url(mine, None).is_some();
    transport::join::ask_any(
        &peers,
        MEMBERSHIP_QUERY_TIMEOUT,
        MEMBERSHIP_QUERY_PATIENCE,
        includes_me,
    )
    .await
    .map_err(ServerError::Bootstrap)
}

/// How long a peer may take to answer the membership query.
const MEMBERSHIP_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the peers are asked again while none knows this member yet
/// (a follower applies the MemberAdd just after the leader answered it).
const MEMBERSHIP_QUERY_PATIENCE: Duration = Duration::from_secs(5);

/// Time enters the drive loop as ticks, one per heartbeat interval.
async fn tick(events: mpsc::UnboundedSender<LoopEvent>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if events.send(LoopEvent::Tick).is_err() {
            return;
        }
    }
}

/// Logs the stage timings every `period` (`--log-timings-seconds`).
async fn log_timings(timings: Arc<StageTimings>, member: String, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Some(summary) = timings.take_summary() {
            tracing::info!(target: "raftwood::timings", member = %member, "timings over {}s: {summary}", period.as_secs());
        }
    }
}

/// Starts a member. Must be called inside a tokio runtime.
pub async fn start(config: ServerConfig) -> Result<RunningNode, ServerError> {
    config.validate()?;
    let config = Arc::new(config);
    let listeners = bind_listeners(&config).await?;
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let joined = if needs_membership_query(&config, &fs)? {
        Some(ask_peers_for_membership(&config).await?)
    } else {
        None
    };
    let mut boot = bootstrap(&config, fs, joined)?;
    let member_id = boot.member_id;
    let incarnation = boot.incarnation;
    let snapshot_index = boot.initial.snapshot.index;
    let channels = Channels::new(member_id, boot.initial.applied);
    let node = raft_node(&config, member_id, std::mem::take(&mut boot.initial))?;
    let network = peer_transport(&config, &boot, channels.inbound.clone());
    let Bootstrapped {
        membership,
        dirs,
        snapshots,
        log_store,
        kv,
        ..
    } = boot;
    let cluster_id = membership.cluster_id;
    let (membership_sender, membership) = watch::channel(Arc::new(membership));
    let kv: Arc<ArcSwap<KvStore>> = Arc::new(ArcSwap::from_pointee(kv));
    let waiters = Arc::new(Mutex::new(Waiters::default()));
    let timings = (config.log_timings_seconds > 0).then(|| Arc::new(StageTimings::new()));

    let (persist, persist_thread) = spawn_persistence(
        &config.name,
        log_store,
        snapshots.clone(),
        channels.events.clone(),
        timings.clone(),
    )?;
    let apply_context = ApplyContext {
        kv: kv.clone(),
        waiters: waiters.clone(),
        applied: channels.applied,
        events: channels.events.clone(),
        membership: Some(MembershipPublisher {
            cluster_id,
            member_id,
            sender: membership_sender,
        }),
        snapshots: Some(ApplySnapshots {
            state_dir: dirs.clone(),
            store: snapshots,
            snapshot_count: config.snapshot_count,
            last_snapshot_index: snapshot_index,
        }),
    };
    let (apply, apply_thread) = spawn_apply(&config.name, apply_context, timings.clone())?;

    let outputs = LoopOutputs {
        network: Arc::new(Arc::clone(&network)),
        persist,
        apply,
        waiters,
        status: channels.status,
    };
    let drive = drive_loop(&config, node, outputs, incarnation, timings.clone());
    let drive = tokio::spawn(drive.run(channels.events_rx));

    let mut tasks = vec![
        tokio::spawn(tick(
            channels.events.clone(),
            Duration::from_millis(config.heartbeat_interval_ms),
        )),
        tokio::spawn(transport::follow_membership(network, membership.clone())),
        tokio::spawn(transport::route_inbound(
            channels.inbound_rx,
            channels.events.clone(),
            SnapshotReceiver::new(
                Arc::clone(dirs.fs()),
                dirs.incoming(),
                config.max_snapshot_bytes(),
            ),
        )),
    ];
    if let Some(timings) = timings {
        let period = Duration::from_secs(config.log_timings_seconds);
        let member = config.name.clone();
        tasks.push(tokio::spawn(log_timings(timings, member, period)));
    }
    for listener in listeners.peers {
        let inbound = channels.inbound.clone();
        tasks.push(tokio::spawn(transport::serve_peers(
            listener,
            cluster_id,
            membership.clone(),
            inbound,
        )));
    }

    let member = MemberHandle {
        config: config.clone(),
        member_id,
        cluster_id,
        membership,
        kv,
        events: channels.events,
        status: channels.status_rx,
        applied: channels.applied_rx,
        request_ids: Arc::new(RequestIds::new(
            member_id,
            now_since_epoch().as_millis() as u64,
        )),
    };
    let api = ClientApi::new(member.clone());
    tasks.push(tokio::spawn(api.expire_leases()));
    tasks.push(tokio::spawn(member.clone().publish_attributes()));
    let clients = serve_clients(listeners.clients, &api);
    Ok(RunningNode {
        context: member,
        client_addresses: clients.addresses,
        drive,
        tasks,
        client_servers: clients.servers,
        stop: clients.stop,
        threads: vec![persist_thread, apply_thread],
    })
}

/// The client servers of a member, stopped together through `stop`.
struct ClientServers {
    addresses: Vec<SocketAddr>,
    servers: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// Serves `api` on every client listener.
fn serve_clients(listeners: Vec<TcpListener>, api: &ClientApi) -> ClientServers {
    let (stop, stop_rx) = watch::channel(false);
    let mut addresses = Vec::new();
    let mut servers = Vec::new();
    for listener in listeners {
        if let Ok(address) = listener.local_addr() {
            addresses.push(address);
        }
        servers.push(tokio::spawn(crate::grpc::serve(
            listener,
            api.clone(),
            stop_rx.clone(),
        )));
    }
    ClientServers {
        addresses,
        servers,
        stop,
    }
}

/// Wall-clock time since the Unix epoch (zero if the clock is before it):
/// what request ids start from (their bytes are compared too, so a clock
/// gone back cannot answer a client with another request's outcome).
fn now_since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_of_a_later_start_are_above_every_earlier_one() {
        // Hardening: ids came from the wall clock, so a member restarted
        // with its clock set back had its forwarded writes dropped as
        // duplicates until leadership moved. Now they come from the count
        // of starts kept in the data directory.
        for incarnation in 1..1_000 {
            let last_of_this_life = first_batch_id(incarnation) + BATCH_IDS_PER_INCARNATION - 1;
            assert!(first_batch_id(incarnation + 1) > last_of_this_life);
        }
        // Above the old numbering (microseconds since the epoch, for the
        // next thousands of years).
        assert!(first_batch_id(1) > 1 << 61);
    }
}
