//! The first step of starting a member: who it is, what its disk holds,
//! and where its raft core starts — gathered into one [`Bootstrapped`]
//! value before any thread or task runs (`node::start` does the rest).
//!
//! In order: the member and cluster ids — from `--initial-cluster` for a
//! new cluster, from the membership the cluster's members answered for a
//! member that joins (`transport::join`), from the data directory's
//! identity file on a restart; the raft log opened and recovered;
//! leftovers of interrupted snapshot installs and takes removed; the
//! state machine opened, its member registry started if it has none; and
//! the log and the state machine reconciled (`recovery::reconcile`), or a
//! new cluster bootstrapped.

use std::path::Path;
use std::sync::Arc;

use raftwood_kv::{KvOptions, KvStore};
use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::FileSystem;
use raftwood_raft::{
    ConfState, HardState, InitialState, NodeId, PersistRequest, PersistTicket, SnapshotMeta,
};

use crate::config::{InitialClusterState, ServerConfig};
use crate::driver::LogStorage;
use crate::error::ServerError;
use crate::membership::Membership;
use crate::recovery::reconcile;
use crate::snapshot::{self, SnapshotStore};
use crate::state_dir::StateDir;

/// Everything a member knows before it starts running.
#[derive(Debug)]
pub struct Bootstrapped {
    /// This member's id.
    pub member_id: NodeId,
    /// How many times this member has started, this start included
    /// (`member/incarnation`).
    pub incarnation: u64,
    /// Who is in the cluster, as the state machine's registry says.
    pub membership: Membership,
    /// The data directory's layout.
    pub dirs: StateDir,
    /// The snapshots this member took.
    pub snapshots: SnapshotStore,
    /// The raft log, recovered and reconciled with the state machine.
    pub log_store: RaftLogStore,
    /// The state machine.
    pub kv: KvStore,
    /// Where the raft core starts.
    /// Invariant: `initial.applied` <= the last index the log holds.
    pub initial: InitialState,
}

/// Identifies the member, opens its log and state machine (everything on
/// `fs`) and reconciles them. Writes only what a new member must (its
/// identity, and the bootstrap snapshot point of a new cluster), what
/// recovery asks for (the log reset to an installed snapshot), and removes
/// what interrupted snapshot steps left.
///
/// `joined`: for a member started with `--initial-cluster-state existing`
/// and no identity yet, the membership its peers answered (see
/// [`needs_membership_query`]).
pub fn bootstrap(
    config: &ServerConfig,
    fs: Arc<dyn FileSystem>,
    joined: Option<Membership>,
) -> Result<Bootstrapped, ServerError> {
    let kv_options = KvOptions {
        limits: config.request_limits(),
        ..KvOptions::default()
    };
    let dirs = StateDir::new(Arc::clone(&fs), &config.data_dir).with_kv_options(kv_options);
    let (member_id, first_registry) = identify(config, fs.as_ref(), &dirs, joined)?;
    let incarnation = dirs.next_incarnation()?;

    let (mut log_store, recovered) =
        RaftLogStore::open(Arc::clone(&fs), &dirs.raft(), LogOptions::default())?;
    // Fails closed: with no certain live state machine, nothing is removed.
    let live_kv = dirs.current_kv()?;
    dirs.remove_unused_kv_dirs(&live_kv)
        .map_err(|e| ServerError::storage("removing old state machines", e))?;
    let snapshots = SnapshotStore::open(Arc::clone(&fs), dirs.snapshot_root())
        .map_err(|e| ServerError::storage("opening the snapshot directory", e))?;
    snapshots
        .remove_leftovers()
        .map_err(|e| ServerError::storage("clearing unfinished snapshots", e))?;
    crate::durable::remove_tree_synced(fs.as_ref(), &dirs.incoming())
        .map_err(|e| ServerError::storage("clearing abandoned snapshot transfers", e))?;
    fs.create_dir_all(&dirs.incoming())
        .map_err(|e| ServerError::storage("creating the snapshot transfer directory", e))?;
    let kv = dirs.open_kv_at(&live_kv)?;
    let installed = snapshot::installed_snapshot(&dirs, &live_kv);

    let fresh = recovered.snapshot.is_none()
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    let cluster_id = first_registry.membership.cluster_id;
    kv.bootstrap_members(
        &first_registry.membership.to_proto(),
        first_registry.applied_index,
    )?;
    let registry = kv.members()?;
    let membership = Membership::from_registry(cluster_id, &registry);
    let initial = if fresh {
        first_start(config, &membership, &mut log_store)?
    } else {
        restart(recovered, &kv, installed, &snapshots, &mut log_store)?
    };
    if fresh && config.initial_cluster_state == InitialClusterState::New {
        // A member added before the log is ever compacted needs the log
        // from its start, this snapshot point: the leader must have it.
        snapshot::keep_live_store(&snapshots, &kv, &initial.snapshot)
            .map_err(ServerError::Bootstrap)?;
    }
    tracing::info!(
        member = %format!("{member_id:x}"),
        applied = initial.applied,
        first = initial.snapshot.index + 1,
        last = initial.entries.last().map_or(initial.snapshot.index, |e| e.index),
        "recovered"
    );
    Ok(Bootstrapped {
        member_id,
        incarnation,
        membership,
        dirs,
        snapshots,
        log_store,
        kv,
        initial,
    })
}

/// The registry a store without one starts from, and the applied index it
/// stands for.
struct FirstRegistry {
    membership: Membership,
    applied_index: u64,
}

/// Whether `config` describes a member joining an existing cluster that
/// has not yet learned it (no identity in its data directory): it must ask
/// its peers before [`bootstrap`].
pub fn needs_membership_query(
    config: &ServerConfig,
    fs: &Arc<dyn FileSystem>,
) -> Result<bool, ServerError> {
    if config.initial_cluster_state != InitialClusterState::Existing {
        return Ok(false);
    }
    let identity = StateDir::new(Arc::clone(fs), &config.data_dir).identity();
    let exists = fs
        .exists(&identity)
        .map_err(|e| ServerError::storage(format!("looking for {}", identity.display()), e))?;
    Ok(!exists)
}

/// Who this member is: its id, and the registry its state machine starts
/// from if it has none. A joining member finds itself, by its peer URLs, in
/// the membership its peers answered; a new cluster's members derive
/// everything from `--initial-cluster` (the identity file, if there is
/// one, must agree: a wrong --data-dir, --name or token is caught here); a
/// member that joined earlier reads its identity file.
fn identify(
    config: &ServerConfig,
    fs: &dyn FileSystem,
    dirs: &StateDir,
    joined: Option<Membership>,
) -> Result<(NodeId, FirstRegistry), ServerError> {
    if let Some(joined) = joined {
        let my_urls = &config.initial_advertise_peer_urls;
        let Some(me) = joined.with_peer_url(my_urls, None) else {
            return Err(ServerError::DataDirMismatch(format!(
                "no member of cluster {:x} has the peer URLs {} (add it first: etcdctl member add {} --peer-urls=...)",
                joined.cluster_id,
                my_urls
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                config.name
            )));
        };
        check_identity(fs, &dirs.identity(), me, joined.cluster_id)?;
        let first = FirstRegistry {
            membership: joined,
            applied_index: 0,
        };
        return Ok((me, first));
    }
    let initial =
        Membership::from_initial_cluster(&config.initial_cluster, &config.initial_cluster_token);
    if config.initial_cluster_state == InitialClusterState::New {
        let member_id = initial.id_of(&config.name).ok_or_else(|| {
            ServerError::DataDirMismatch(format!(
                "--name {} is not in --initial-cluster",
                config.name
            ))
        })?;
        check_identity(fs, &dirs.identity(), member_id, initial.cluster_id)?;
        let first = FirstRegistry {
            membership: initial,
            applied_index: 1,
        };
        return Ok((member_id, first));
    }
    // Joined earlier (`needs_membership_query` found its identity): its
    // registry came with the join and the leader's snapshots.
    let Some((member_id, cluster_id)) = read_identity(fs, &dirs.identity())? else {
        return Err(ServerError::DataDirMismatch(
            "--initial-cluster-state existing needs the cluster's membership from a peer".into(),
        ));
    };
    let first = FirstRegistry {
        membership: Membership {
            cluster_id,
            ..initial
        },
        applied_index: 1,
    };
    Ok((member_id, first))
}

/// The member and cluster ids an identity file records, if there is one.
fn read_identity(fs: &dyn FileSystem, path: &Path) -> Result<Option<(NodeId, u64)>, ServerError> {
    let looking = |e| ServerError::storage(format!("reading {}", path.display()), e);
    if !fs.exists(path).map_err(looking)? {
        return Ok(None);
    }
    let text = fs.read_file(path).map_err(looking)?;
    let text = String::from_utf8_lossy(&text);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    };
    match (field("member_id"), field("cluster_id")) {
        (Some(member), Some(cluster)) => Ok(Some((member, cluster))),
        _ => Err(ServerError::DataDirMismatch(format!(
            "{} does not hold a member id and a cluster id:\n{text}",
            path.display()
        ))),
    }
}

/// Where a member with an empty log starts: a new cluster's members all
/// start from the same snapshot point holding the initial voters; a
/// joining member starts empty and learns the configuration from the
/// leader's snapshot.
fn first_start(
    config: &ServerConfig,
    membership: &Membership,
    log_store: &mut RaftLogStore,
) -> Result<InitialState, ServerError> {
    match config.initial_cluster_state {
        InitialClusterState::New => {
            let voters: Vec<NodeId> = membership.members.keys().copied().collect();
            let initial = InitialState::bootstrap(ConfState::with_voters(voters));
            persist_snapshot_point(log_store, &initial.snapshot, initial.hard_state)?;
            Ok(initial)
        }
        InitialClusterState::Existing => Ok(InitialState::default()),
    }
}

/// Where a member with a log starts: the log reconciled with the state
/// machine (`recovery::reconcile`), the log reset first if the state
/// machine holds a snapshot the log did not record.
fn restart(
    recovered: raftwood_log::Recovered,
    kv: &KvStore,
    installed: Option<SnapshotMeta>,
    snapshots: &SnapshotStore,
    log_store: &mut RaftLogStore,
) -> Result<InitialState, ServerError> {
    let startup = reconcile(
        recovered.hard_state,
        recovered.snapshot.unwrap_or_default(),
        recovered.entries,
        kv.applied_index(),
        installed,
    )?;
    if let Some(snapshot) = &startup.reset_log_to {
        tracing::warn!(
            index = snapshot.index,
            "the state machine holds a snapshot the raft log did not record; resetting the log to it"
        );
        // The install stopped before keeping it as this member's snapshot;
        // kept before the log starts at it, so a crash in between leaves
        // the reset to do again, not a log starting at a snapshot this
        // member cannot send.
        snapshot::keep_live_store_if_missing(snapshots, kv, snapshot)
            .map_err(ServerError::Bootstrap)?;
        persist_snapshot_point(log_store, snapshot, startup.initial.hard_state)?;
    }
    Ok(startup.initial)
}

/// Refuses a data directory written by another member or cluster; records
/// the identity in a new one.
fn check_identity(
    fs: &dyn FileSystem,
    path: &Path,
    member_id: NodeId,
    cluster_id: u64,
) -> Result<(), ServerError> {
    let expected = format!("member_id={member_id:016x}\ncluster_id={cluster_id:016x}\n");
    let looking = |e| ServerError::storage(format!("reading {}", path.display()), e);
    if fs.exists(path).map_err(looking)? {
        let found = fs.read_file(path).map_err(looking)?;
        if found == expected.as_bytes() {
            return Ok(());
        }
        return Err(ServerError::DataDirMismatch(format!(
            "{} holds\n{}but this member is\n{expected}(another --name, --initial-cluster or --initial-cluster-token wrote it)",
            path.display(),
            String::from_utf8_lossy(&found)
        )));
    }
    let parent = crate::durable::parent_of(path);
    let creating = |e| ServerError::storage(format!("writing {}", path.display()), e);
    fs.create_dir_all(parent).map_err(creating)?;
    crate::durable::replace_file(fs, path, expected.as_bytes()).map_err(creating)?;
    // The new directories' entries, up to the data directory.
    if let Some(data_dir) = parent.parent() {
        fs.sync_dir(data_dir).map_err(creating)?;
    }
    Ok(())
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
