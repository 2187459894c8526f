//! A member made of the server's own drive loop (`raftwood_server::driver`),
//! for the server-loop mode: the same `DriveLoop`, persistence batches and
//! apply batches the server runs on its threads, here run one step at a
//! time by the simulator, on its simulated disk, network and clock.
//!
//! The seams the loop was written with are filled in as follows:
//! - `MessageSink`: [`SimSink`] collects the loop's messages; the
//!   simulator hands them to its network after every round.
//! - `LogStorage`: the member's [`SimDisk`]. A write is pending (lost by a
//!   crash, possibly torn) until the batch's sync, which the simulator
//!   runs when the simulated fsync completes.
//! - The persistence and apply channels: the simulator drains them after
//!   every round and runs the work as timed events, with
//!   `PersistBatcher`/`WrittenBatch` and `apply_batch`.
//! - Proposers and readers: oneshot receivers, polled with `try_recv`.
//! - The membership: published from the store's registry by the server's
//!   `MembershipPublisher`; a member that applies its own removal stops.
//!
//! - Snapshots: the server's own steps (`raftwood_server::snapshot`) on the
//!   member's crash-modelling filesystem. The apply side takes and installs
//!   them, the persistence side finishes or discards them and compacts the
//!   [`SimDisk`] log, and a snapshot the loop sends travels as the files of
//!   the sender's snapshot directory, reassembled at the receiver by the
//!   server's `SnapshotReceiver`.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use raftwood_kv::KvStore;
use raftwood_raft::{Index, Message, NodeId, PersistRequest, RaftNode, SnapshotMeta, Term};
use raftwood_server::driver::{
    ApplyWork, DriveLoop, ForwardSettings, LogStorage, LoopEvent, LoopOutputs, MessageSink,
    PersistBatcher, PersistWork, ProposeResult, RaftStatus, ReadError, Waiters, WrittenBatch,
};
use raftwood_server::membership::Membership;
use raftwood_server::snapshot::SnapshotStore;
use raftwood_server::state_dir::StateDir;
use raftwood_server::threads::{ApplyContext, ApplySnapshots, MembershipPublisher};
use raftwood_server::transport::SnapshotReceiver;
use tokio::sync::{mpsc, oneshot, watch};

use super::ClientRef;
use crate::disk::SimDisk;
use crate::model::Key;

impl LogStorage for SimDisk {
    fn write(&mut self, request: &PersistRequest) -> Result<(), String> {
        // Written, not durable: the completion time is the simulator's
        // business (it syncs when the simulated fsync completes).
        self.submit(request.clone(), None, 0, 0);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        while self.complete_oldest().is_some() {}
        Ok(())
    }

    fn compact(&mut self, snapshot: &SnapshotMeta) -> Result<(), String> {
        // The snapshot's data is the finished directory on the member's
        // filesystem, not an image on this disk.
        self.write_compaction(snapshot.clone(), Arc::default());
        Ok(())
    }
}

/// What the drive loop sent, until the simulator takes it.
#[derive(Debug, Default)]
pub struct SimSink {
    sent: Mutex<Vec<Message>>,
    snapshots: Mutex<Vec<Message>>,
}

impl SimSink {
    /// Messages sent since the last call, in order.
    pub fn take_messages(&self) -> Vec<Message> {
        std::mem::take(&mut *self.sent.lock())
    }

    /// Snapshot streams asked for since the last call.
    pub fn take_snapshots(&self) -> Vec<Message> {
        std::mem::take(&mut *self.snapshots.lock())
    }
}

impl MessageSink for SimSink {
    fn send(&self, messages: Vec<Message>) {
        self.sent.lock().extend(messages);
    }

    fn send_snapshot(&self, message: Message) {
        self.snapshots.lock().push(message);
    }
}

/// A client write waiting for its outcome.
#[derive(Debug)]
pub struct WaitingProposal {
    /// Who asked.
    pub client: ClientRef,
    /// The command's request id.
    pub request_id: u64,
    /// Whether the member did not lead when the request arrived (so the
    /// loop forwarded it, or refused it).
    pub at_follower: bool,
    /// Where the outcome arrives.
    pub reply: oneshot::Receiver<ProposeResult>,
}

/// A client read waiting for its ReadIndex.
#[derive(Debug)]
pub struct WaitingRead {
    /// Who asked.
    pub client: ClientRef,
    /// The key to read once the index is applied.
    pub key: Key,
    /// Where the index arrives.
    pub reply: oneshot::Receiver<Result<Index, ReadError>>,
}

/// One life of a server-loop member (a crash drops it; a restart builds a
/// new one from the disk).
#[derive(Debug)]
pub struct ServerMember {
    /// The server's drive loop around this member's core.
    pub drive: DriveLoop,
    /// What the loop sent.
    pub sink: Arc<SimSink>,
    /// Events waiting for the loop's next round, in arrival order (the
    /// server's loop takes whatever its channel holds as one round).
    pub inbox: Vec<LoopEvent>,
    /// Whether a round is scheduled for the inbox.
    pub round_scheduled: bool,
    /// Work the loop queued for the persistence thread.
    pub persist_work: std_mpsc::Receiver<PersistWork>,
    /// Work the loop queued for the apply thread.
    pub apply_work: std_mpsc::Receiver<ApplyWork>,
    /// The apply side's state, as the apply thread keeps it.
    pub apply: ApplyContext,
    /// Reports of the apply side to the loop.
    pub apply_reports: mpsc::UnboundedReceiver<LoopEvent>,
    /// The persistence side's state between batches.
    pub batcher: PersistBatcher,
    /// Persist requests queued behind the batch in flight.
    pub persist_queue: Vec<PersistWork>,
    /// The batch written and waiting for its simulated fsync.
    pub persist_in_flight: Option<WrittenBatch>,
    /// Apply work queued; an apply event is scheduled while non-empty.
    pub apply_queue: Vec<ApplyWork>,
    /// The member's snapshots, finished by the persistence side and read
    /// when one is sent.
    pub snapshots: SnapshotStore,
    /// Reassembles the snapshots this member receives.
    pub receiver: SnapshotReceiver,
    /// The applied index of the last store installed from a snapshot. The
    /// checkpoint may hold state past the snapshot's index, so the core
    /// hands out entries up to here again, which the store skips
    /// (applying is idempotent by index); only entries past it must be new.
    pub installed_through: Index,
    /// Client writes waiting for their outcome.
    pub proposals: Vec<WaitingProposal>,
    /// Client reads waiting for their index.
    pub reads: Vec<WaitingRead>,
    /// Where each client command was applied here: request id → (index,
    /// term), to tell the safety checker which entry a client's
    /// acknowledgement stands for.
    pub applied_at: std::collections::BTreeMap<u64, (Index, Term)>,
}

/// The simulated cluster's id (the registry does not hold one).
const SIM_CLUSTER_ID: u64 = 0x51_3c1d;

/// Publishes member `id`'s membership from its store's registry, as the
/// server's apply thread does: the apply side then stops the member once
/// it applies its own removal.
fn membership_publisher(id: NodeId, kv: &KvStore) -> MembershipPublisher {
    // A registry the store cannot read shows as empty here; the apply
    // side reads it again after every membership change and fails then.
    let registry = kv.members().unwrap_or_default();
    let membership = Membership::from_registry(SIM_CLUSTER_ID, &registry);
    let (sender, _) = watch::channel(Arc::new(membership));
    MembershipPublisher {
        cluster_id: SIM_CLUSTER_ID,
        member_id: id,
        sender,
    }
}

/// Where a member's state machine and snapshots live, and how often it
/// snapshots.
#[derive(Debug)]
pub struct MemberFiles {
    /// The member's data directory.
    pub dirs: StateDir,
    /// Its snapshots.
    pub snapshots: SnapshotStore,
    /// Entries between snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot.
    pub catch_up_entries: u64,
}

impl ServerMember {
    /// A drive loop around `node`, applying to `kv`, started at simulated
    /// time `now_us`, with its files in `files`.
    pub fn new(
        node: RaftNode,
        kv: Arc<ArcSwap<KvStore>>,
        applied: Index,
        now_us: u64,
        files: MemberFiles,
    ) -> ServerMember {
        let last_snapshot_index = node.log().snapshot().index;
        let node_id = node.id();
        // As the server's batch ids come from the wall clock, these come
        // from simulated time, so a restarted member's forwarded batches
        // are above its earlier life's (up to 1,024 rounds per simulated
        // microsecond).
        let forwarding = ForwardSettings {
            first_batch_id: now_us.saturating_mul(1_024) + 1,
            timeout_ticks: u64::from(node.config().election_timeout_ticks) * 4,
        };
        let sink = Arc::new(SimSink::default());
        let (persist_tx, persist_work) = std_mpsc::channel();
        let (apply_tx, apply_work) = std_mpsc::channel();
        let (status, _) = watch::channel(RaftStatus::default());
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let drive = DriveLoop::new(
            node,
            LoopOutputs {
                network: Arc::clone(&sink) as Arc<dyn MessageSink>,
                persist: persist_tx,
                apply: apply_tx,
                waiters: Arc::clone(&waiters),
                status,
            },
            files.catch_up_entries,
        )
        .with_forwarding(forwarding);
        let (events, apply_reports) = mpsc::unbounded_channel();
        let (applied, _) = watch::channel(applied);
        // etcd's default quota's limit: the simulated stores are small.
        let max_snapshot_bytes =
            raftwood_server::ServerConfig::new("sim", "/".into()).max_snapshot_bytes();
        let receiver = SnapshotReceiver::new(
            Arc::clone(files.dirs.fs()),
            files.dirs.incoming(),
            max_snapshot_bytes,
        );
        let membership = membership_publisher(node_id, &kv.load());
        let apply = ApplyContext {
            kv,
            waiters,
            applied,
            events,
            membership: Some(membership),
            snapshots: Some(ApplySnapshots {
                state_dir: files.dirs,
                store: files.snapshots.clone(),
                snapshot_count: files.snapshot_count,
                last_snapshot_index,
            }),
        };
        ServerMember {
            drive,
            sink,
            inbox: Vec::new(),
            round_scheduled: false,
            persist_work,
            apply_work,
            apply,
            apply_reports,
            batcher: PersistBatcher::default(),
            persist_queue: Vec::new(),
            persist_in_flight: None,
            apply_queue: Vec::new(),
            snapshots: files.snapshots,
            receiver,
            installed_through: 0,
            proposals: Vec::new(),
            reads: Vec::new(),
            applied_at: std::collections::BTreeMap::new(),
        }
    }
}
