//! The first step of starting a member: who it is, what its disk holds,
//! and where its raft core starts — gathered into one [`Bootstrapped`]
//! value before any thread or task runs (`node::start` does the rest).
//!
//! In order: the member and cluster ids from `--initial-cluster`, checked
//! against the data directory's identity file; the raft log opened and
//! recovered; leftovers of interrupted snapshot installs and takes
//! removed; the state machine opened; and the two reconciled
//! (`recovery::reconcile`), or a new cluster bootstrapped.

use std::path::Path;
use std::sync::Arc;

use raftwood_kv::KvStore;
use raftwood_log::{LogOptions, RaftLogStore};
use raftwood_lsm::fs::StdFs;
use raftwood_raft::{
    ConfState, HardState, InitialState, NodeId, PersistRequest, PersistTicket, SnapshotMeta,
};

use crate::config::{InitialClusterState, ServerConfig};
use crate::driver::LogStorage;
use crate::error::ServerError;
use crate::membership::Membership;
use crate::recovery::reconcile;
use crate::state_dir::StateDir;

/// Everything a member knows before it starts running.
#[derive(Debug)]
pub struct Bootstrapped {
    /// This member's id.
    pub member_id: NodeId,
    /// Who is in the cluster (from `--initial-cluster`).
    pub membership: Membership,
    /// The data directory's layout.
    pub dirs: StateDir,
    /// The raft log, recovered and reconciled with the state machine.
    pub log_store: RaftLogStore,
    /// The state machine.
    pub kv: KvStore,
    /// Where the raft core starts.
    /// Invariant: `initial.applied` <= the last index the log holds.
    pub initial: InitialState,
}

/// Identifies the member, opens its log and state machine and reconciles
/// them. Writes only what a new member must (its identity, and the
/// bootstrap snapshot point of a new cluster) or what recovery asks for
/// (the log reset to an installed snapshot).
pub fn bootstrap(config: &ServerConfig) -> Result<Bootstrapped, ServerError> {
    let membership =
        Membership::from_initial_cluster(&config.initial_cluster, &config.initial_cluster_token);
    let member_id = membership
        .id_of(&config.name)
        .ok_or_else(|| ServerError::DataDirMismatch("member not in its own cluster".into()))?;
    let dirs = StateDir::new(&config.data_dir);
    check_identity(&dirs.identity(), member_id, membership.cluster_id)?;

    let (mut log_store, recovered) =
        RaftLogStore::open(Arc::new(StdFs), &dirs.raft(), LogOptions::default())?;
    dirs.remove_unused_kv_dirs();
    dirs.snapshots()
        .map_err(|e| ServerError::io("opening the snapshot directory", e))?
        .remove_leftovers()
        .map_err(|e| ServerError::io("clearing unfinished snapshots", e))?;
    let kv = dirs.open_kv()?;

    let fresh = recovered.snapshot.is_none()
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    let initial = if fresh {
        first_start(config, &membership, &mut log_store)?
    } else {
        restart(recovered, &kv, &dirs, &mut log_store)?
    };
    tracing::info!(
        member = %format!("{member_id:x}"),
        applied = initial.applied,
        first = initial.snapshot.index + 1,
        last = initial.entries.last().map_or(initial.snapshot.index, |e| e.index),
        "recovered"
    );
    Ok(Bootstrapped {
        member_id,
        membership,
        dirs,
        log_store,
        kv,
        initial,
    })
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
    dirs: &StateDir,
    log_store: &mut RaftLogStore,
) -> Result<InitialState, ServerError> {
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
        persist_snapshot_point(log_store, snapshot, startup.initial.hard_state)?;
    }
    Ok(startup.initial)
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
