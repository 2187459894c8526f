//! The apply thread: hands committed entries to the state machine in log
//! order, answers the proposers waiting for them, takes the state
//! machine's checkpoints for snapshots, and installs snapshots received
//! from the leader.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use raftwood_kv::{ApplyResponse, CommittedEntry, KvStore};
use raftwood_raft::{Entry, EntryPayload, Index, Message, NodeId};
use tokio::sync::watch;

use crate::driver::{ApplyWork, LoopEvent, Waiters};
use crate::durable::remove_tree_synced;
use crate::membership::Membership;
use crate::snapshot::{self, SnapshotStore};
use crate::state_dir::StateDir;
use crate::timings::{Stage, StageTimings};

/// What the apply thread needs.
#[derive(Debug)]
pub struct ApplyContext {
    /// The state machine, swapped when a snapshot is installed.
    pub kv: Arc<ArcSwap<KvStore>>,
    /// Proposers waiting for their entries.
    pub waiters: Arc<Mutex<Waiters>>,
    /// Published after every batch.
    pub applied: watch::Sender<Index>,
    /// Reports to the drive loop.
    pub events: tokio::sync::mpsc::UnboundedSender<LoopEvent>,
    /// Where the membership is published after every change to the
    /// registry; `None` for a member that publishes none (the simulator's).
    pub membership: Option<MembershipPublisher>,
    /// Snapshot taking and installing, which work on real directories;
    /// `None` for a member that never snapshots (the simulator's, which
    /// covers snapshots in its raft-core mode): a snapshot received then is
    /// a fatal error.
    pub snapshots: Option<ApplySnapshots>,
}

/// Publishes the state machine's member registry as the member's
/// [`Membership`] whenever an applied entry may have changed it.
#[derive(Debug)]
pub struct MembershipPublisher {
    /// The cluster's id (the registry does not hold it).
    pub cluster_id: u64,
    /// This member: once the registry has removed it, it stops.
    pub member_id: NodeId,
    /// The published membership.
    pub sender: watch::Sender<Arc<Membership>>,
}

impl MembershipPublisher {
    /// Reads the registry of `kv` and publishes it if it changed.
    pub fn refresh(&self, kv: &KvStore) -> Result<(), String> {
        let registry = kv
            .members()
            .map_err(|e| format!("reading the member registry: {e}"))?;
        let membership = Membership::from_registry(self.cluster_id, &registry);
        // Ids of added members are drawn outside the removed ones, and a
        // removal moves an id from one set to the other.
        membership.check_invariants();
        self.sender.send_if_modified(|current| {
            if **current == membership {
                return false;
            }
            *current = Arc::new(membership);
            true
        });
        Ok(())
    }

    /// Whether the membership last published says this member was removed.
    pub fn is_removed(&self) -> bool {
        self.sender.borrow().removed.contains(&self.member_id)
    }

    /// The error that stops a member the registry removed (etcd's "the
    /// member has been permanently removed from the cluster"): an error, as
    /// a storage failure is, so that nothing more is applied or served.
    fn removed_error(&self) -> String {
        format!(
            "member {:x} has been permanently removed from the cluster; its data directory must be removed before it can join again",
            self.member_id
        )
    }
}

/// Where and how often the apply thread snapshots the state machine.
#[derive(Debug)]
pub struct ApplySnapshots {
    /// Where state-machine directories live (installs switch them).
    pub state_dir: StateDir,
    /// Where snapshots are taken.
    pub store: SnapshotStore,
    /// Entries between two snapshots (`--snapshot-count`; 0: never).
    pub snapshot_count: u64,
    /// The index of the last snapshot.
    pub last_snapshot_index: Index,
}

/// Runs until `work` closes, one [`apply_batch`] for whatever is queued.
/// A storage error is fail-stop: it is reported as [`LoopEvent::Fatal`]
/// and the thread ends.
pub fn run_apply(
    mut context: ApplyContext,
    work: std_mpsc::Receiver<ApplyWork>,
    timings: Option<Arc<StageTimings>>,
) {
    while let Ok(first) = work.recv() {
        let works: Vec<ApplyWork> = std::iter::once(first).chain(work.try_iter()).collect();
        let entries: usize = works
            .iter()
            .map(|work| match work {
                ApplyWork::Entries(entries) => entries.len(),
                ApplyWork::Install { .. } => 0,
            })
            .sum();
        let started = std::time::Instant::now();
        if let Err(reason) = apply_batch(&mut context, works) {
            let _ = context.events.send(stop_event(&context, reason));
            return;
        }
        if let Some(timings) = &timings {
            timings.record_duration(Stage::Apply, started.elapsed());
            timings.record(Stage::EntriesPerApply, entries as u64);
        }
    }
}

/// What stops the member after [`apply_batch`] failed with `reason`: its
/// removal from the cluster, if the registry it applied says so, else a
/// storage failure (fail-stop).
pub fn stop_event(context: &ApplyContext, reason: String) -> LoopEvent {
    let removed = context
        .membership
        .as_ref()
        .is_some_and(MembershipPublisher::is_removed);
    if removed {
        LoopEvent::Removed(reason)
    } else {
        LoopEvent::Fatal(reason)
    }
}

/// The apply thread's work for one batch, in order: consecutive
/// [`ApplyWork::Entries`] become one state-machine batch; an install is
/// carried out between them. Reports go to `context.events`
/// ([`LoopEvent::Applied`] after each state-machine batch). A storage
/// error is returned (fail-stop).
pub fn apply_batch(context: &mut ApplyContext, works: Vec<ApplyWork>) -> Result<(), String> {
    let mut entries: Vec<Entry> = Vec::new();
    for work in works {
        match work {
            ApplyWork::Entries(more) => {
                // One batch of the core's: consecutive, in log order.
                debug_assert!(
                    more.windows(2)
                        .all(|pair| pair[1].index == pair[0].index + 1
                            && pair[1].term >= pair[0].term),
                    "entries to apply out of log order"
                );
                entries.extend(more);
            }
            ApplyWork::Install {
                dir,
                index,
                message,
            } => {
                apply_entries(context, std::mem::take(&mut entries))?;
                install(context, dir, index, message)?;
            }
        }
    }
    apply_entries(context, entries)
}

fn apply_entries(context: &mut ApplyContext, entries: Vec<Entry>) -> Result<(), String> {
    let Some(last) = entries.last().map(|e| e.index) else {
        return Ok(());
    };
    let kv = context.kv.load_full();
    let committed: Vec<CommittedEntry<'_>> = entries
        .iter()
        .map(|entry| CommittedEntry {
            index: entry.index,
            request: state_machine_request(entry),
        })
        .collect();
    let outcomes = kv
        .apply(&committed)
        .map_err(|e| format!("state machine apply failed: {e}"))?;
    assert_eq!(outcomes.len(), entries.len(), "one outcome per entry");
    // Applied, or skipped as applied before (a snapshot installed ahead).
    assert!(
        kv.applied_index() >= last,
        "the state machine is at {} after applying up to {last}",
        kv.applied_index()
    );
    let membership_changed = outcomes
        .iter()
        .any(|outcome| matches!(outcome, Ok(ApplyResponse::Membership)));
    // Published before the proposers hear back, so that a MemberAdd's
    // answer lists the member it added; a member that removed itself
    // answers its proposer first, then stops.
    if membership_changed && let Some(membership) = &context.membership {
        membership.refresh(&kv)?;
    }
    {
        let mut waiters = context.waiters.lock();
        for (entry, outcome) in entries.iter().zip(outcomes) {
            let command = match &entry.payload {
                EntryPayload::Command(data) => Some(data.as_ref()),
                EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
            };
            waiters.complete(entry.index, entry.term, command, move || outcome);
        }
    }
    context.applied.send_replace(last);
    let _ = context.events.send(LoopEvent::Applied(last));
    if membership_changed
        && let Some(membership) = &context.membership
        && membership.is_removed()
    {
        return Err(membership.removed_error());
    }

    let Some(snapshots) = &mut context.snapshots else {
        return Ok(());
    };
    let durable = kv.durable_applied_index();
    // A snapshot holds nothing the state machine has not applied.
    debug_assert!(snapshots.last_snapshot_index <= kv.applied_index());
    if let Some(checkpoint) = snapshot::checkpoint_due(
        last,
        durable,
        snapshots.last_snapshot_index,
        snapshots.snapshot_count,
    ) {
        let taken = snapshot::take(&snapshots.store, &kv, last, checkpoint)?;
        let index = taken.index;
        // Snapshots only move forward.
        assert!(
            index >= snapshots.last_snapshot_index,
            "snapshot at {index}, the last was at {}",
            snapshots.last_snapshot_index
        );
        snapshots.last_snapshot_index = index;
        let _ = context.events.send(LoopEvent::SnapshotTaken {
            index,
            temp_dir: taken.temp_dir,
        });
    }
    Ok(())
}

/// What an entry asks of the state machine: a command's request, or the
/// registry change a configuration change carries in its context (the
/// leave-joint step carries none); `None` for an empty entry.
fn state_machine_request(entry: &Entry) -> Option<&[u8]> {
    match &entry.payload {
        EntryPayload::Command(data) => Some(data.as_ref()),
        EntryPayload::ConfChange(change) if !change.context.is_empty() => {
            Some(change.context.as_ref())
        }
        EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
    }
}

fn install(
    context: &mut ApplyContext,
    dir: PathBuf,
    index: Index,
    message: Message,
) -> Result<(), String> {
    let Some(snapshots) = &mut context.snapshots else {
        return Err(format!(
            "snapshot {index} received by a member that takes no snapshots"
        ));
    };
    let current = context.kv.load_full();
    if current.applied_index() >= index {
        // Already there through the log: installing would go back in time.
        tracing::info!(index, "snapshot not needed, state machine is ahead");
        if let Err(error) = remove_tree_synced(snapshots.state_dir.fs().as_ref(), &dir) {
            tracing::warn!(%error, "an unneeded snapshot was not deleted");
        }
        let _ = context.events.send(LoopEvent::Messages(vec![message]));
        return Ok(());
    }
    // Ahead of this member's own snapshots, which hold nothing not applied.
    assert!(
        snapshots.last_snapshot_index < index,
        "installing snapshot {index} behind this member's own at {}",
        snapshots.last_snapshot_index
    );
    let store = snapshot::install(&snapshots.state_dir, &dir, index)?;
    let applied = store.applied_index();
    if applied < index {
        return Err(format!(
            "snapshot {index} holds a state machine applied only to {applied}"
        ));
    }
    // Readers may still hold the old store; its directory is deleted at
    // the next start-up, never under them.
    context.kv.store(Arc::new(store));
    // Forwarded proposals inside the snapshot will not be applied one by
    // one here: their clients cannot be told what happened.
    context.waiters.lock().snapshot_installed();
    drop(current);
    keep_as_own_snapshot(snapshots, &context.kv.load_full(), &message)?;
    snapshots.last_snapshot_index = index;
    context.applied.send_replace(applied);
    tracing::info!(index, applied, "installed snapshot from the leader");
    if let Some(membership) = &context.membership {
        membership.refresh(&context.kv.load_full())?;
        if membership.is_removed() {
            return Err(membership.removed_error());
        }
    }
    let _ = context.events.send(LoopEvent::Messages(vec![message]));
    Ok(())
}

/// Keeps the snapshot just installed as this member's own (`snapshot/keep.rs`).
fn keep_as_own_snapshot(
    snapshots: &ApplySnapshots,
    kv: &KvStore,
    message: &Message,
) -> Result<(), String> {
    let raftwood_raft::MessageBody::InstallSnapshot { snapshot: meta } = &message.body else {
        return Err("an install without its snapshot message".into());
    };
    snapshot::keep_live_store(&snapshots.store, kv, meta)
}
