//! Where a restarting member's raft core starts, from what its raft log
//! and its state machine hold durably. A pure function, so every crash
//! window is a unit test.

use raftwood_raft::{Entry, HardState, Index, InitialState, SnapshotMeta};

/// The core's starting state, and whether the log on disk must first be
/// reset to a snapshot point it does not know of.
#[derive(Debug, Clone)]
pub struct Startup {
    /// What the raft core starts from.
    pub initial: InitialState,
    /// A snapshot point to write to the raft log (and sync) before the core
    /// starts: set when the state machine was replaced by a leader's
    /// snapshot but the crash came before the core persisted its point.
    pub reset_log_to: Option<SnapshotMeta>,
}

/// Why a member cannot start from what its disk holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The state machine holds less than the log's snapshot covers: the
    /// entries between were compacted away, so neither can bring it back.
    /// (A lost or wrong state-machine directory; never a crash window.)
    #[error(
        "the state machine is applied only to {applied}, behind the raft log's snapshot at {snapshot_index}: the entries between are gone; restore the member's data directory or remove the member and add it again"
    )]
    StateMachineBehindSnapshot {
        /// What the state machine applied.
        applied: Index,
        /// Where the log starts.
        snapshot_index: Index,
    },
}

/// Reconciles the raft log's recovered state (`hard_state`, `snapshot`,
/// `entries`) with the state machine's durable applied index and the meta
/// of the snapshot it was installed from, if any.
///
/// - The state machine is never ahead of the log's last entry except after
///   installing a leader's snapshot whose point the log did not record
///   yet: the log then starts after that snapshot (its older entries are
///   all covered by it).
/// - The core's applied index is the state machine's, capped at the last
///   entry the log holds: a checkpoint may hold state a little past its
///   snapshot's index, and the entries it already holds are skipped by the
///   state machine when handed out again (applying is idempotent by index).
/// - The commit index is at least the applied index: applied entries were
///   committed, and a commit index is not synced on its own.
/// - A state machine behind the log's snapshot point is refused (it used
///   to be started at the snapshot's index, silently missing the entries
///   between); the bootstrap snapshot (index 1) holds no data, so an
///   empty state machine is at it.
pub fn reconcile(
    mut hard_state: HardState,
    mut snapshot: SnapshotMeta,
    mut entries: Vec<Entry>,
    state_machine_applied: Index,
    installed_snapshot: Option<SnapshotMeta>,
) -> Result<Startup, RecoveryError> {
    let mut last = entries.last().map_or(snapshot.index, |e| e.index);
    let mut reset_log_to = None;
    if let Some(installed) = installed_snapshot
        && installed.index > snapshot.index
        && term_at(&snapshot, &entries, installed.index) != Some(installed.term)
    {
        // The log does not hold the installed snapshot's point (it ends
        // before it, or holds another term's entry there, from a history
        // the snapshot overrides): it restarts from the snapshot. Its
        // commit index counted entries of the discarded log.
        entries.clear();
        if installed.term > hard_state.term {
            hard_state.term = installed.term;
            hard_state.vote = None;
        }
        hard_state.commit = hard_state.commit.min(installed.index);
        last = installed.index;
        snapshot = installed;
        reset_log_to = Some(snapshot.clone());
    }
    if state_machine_applied < snapshot.index && snapshot.index > 1 {
        return Err(RecoveryError::StateMachineBehindSnapshot {
            applied: state_machine_applied,
            snapshot_index: snapshot.index,
        });
    }
    let applied = state_machine_applied.min(last).max(snapshot.index);
    hard_state.commit = hard_state.commit.max(applied);
    // A log reset to a snapshot starts from it and holds nothing after it.
    debug_assert!(
        reset_log_to.is_none() || (entries.is_empty() && reset_log_to.as_ref() == Some(&snapshot))
    );
    Ok(Startup {
        initial: InitialState {
            hard_state,
            snapshot,
            entries,
            applied,
        },
        reset_log_to,
    })
}

/// The term of the entry at `index` as the log holds it, if it does.
fn term_at(snapshot: &SnapshotMeta, entries: &[Entry], index: Index) -> Option<u64> {
    if index == snapshot.index {
        return Some(snapshot.term);
    }
    let offset = index.checked_sub(snapshot.index + 1)?;
    let entry = entries.get(usize::try_from(offset).ok()?)?;
    assert_eq!(entry.index, index, "log entries are consecutive");
    Some(entry.term)
}

#[cfg(test)]
mod tests {
    use raftwood_raft::{ConfState, EntryPayload};

    use super::*;

    fn entries(range: std::ops::RangeInclusive<Index>) -> Vec<Entry> {
        range
            .map(|index| Entry {
                term: 2,
                index,
                payload: EntryPayload::Empty,
            })
            .collect()
    }

    fn meta(index: Index, term: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            conf_state: ConfState::with_voters([1, 2, 3]),
        }
    }

    fn hard(term: u64, commit: Index) -> HardState {
        HardState {
            term,
            vote: Some(1),
            commit,
        }
    }

    #[test]
    fn a_state_machine_behind_the_log_replays_from_its_applied_index() {
        let startup = reconcile(hard(2, 8), meta(1, 1), entries(2..=10), 5, None).unwrap();
        assert_eq!(startup.initial.applied, 5);
        assert_eq!(startup.initial.hard_state.commit, 8);
        assert_eq!(startup.initial.entries.len(), 9);
        assert_eq!(startup.reset_log_to, None);
    }

    #[test]
    fn the_commit_index_is_raised_to_what_was_applied() {
        // Commit-only hard states are not synced: the log may recover an
        // older commit index than the state machine applied.
        let startup = reconcile(hard(2, 3), meta(1, 1), entries(2..=10), 7, None).unwrap();
        assert_eq!(startup.initial.hard_state.commit, 7);
        assert_eq!(startup.initial.applied, 7);
    }

    #[test]
    fn a_checkpoint_past_its_snapshot_index_is_capped_at_the_log() {
        // A snapshot at 100 whose checkpoint holds state up to 130, and a
        // log that only reaches 120.
        let startup = reconcile(hard(2, 100), meta(100, 2), entries(101..=120), 130, None).unwrap();
        assert_eq!(startup.initial.applied, 120);
        assert_eq!(startup.initial.hard_state.commit, 120);
    }

    #[test]
    fn a_crash_after_installing_a_leaders_snapshot_resets_the_log_to_it() {
        // The state machine was replaced by the leader's snapshot at 500
        // (holding state up to 510), then the member crashed before the
        // core persisted the snapshot point: the log still ends at 40.
        let startup = reconcile(
            hard(2, 40),
            meta(1, 1),
            entries(2..=40),
            510,
            Some(meta(500, 4)),
        )
        .unwrap();
        assert_eq!(startup.reset_log_to, Some(meta(500, 4)));
        assert_eq!(startup.initial.snapshot, meta(500, 4));
        assert!(startup.initial.entries.is_empty());
        assert_eq!(startup.initial.applied, 500);
        assert_eq!(startup.initial.hard_state.term, 4);
        assert_eq!(startup.initial.hard_state.vote, None);
        assert_eq!(startup.initial.hard_state.commit, 500);
    }

    #[test]
    fn a_log_past_the_installed_point_is_kept_and_its_commit_stays_within_it() {
        // Found by the simulator: the snapshot at 128 (holding state up to
        // 135) was installed, then a crash before the core persisted its
        // point; the log had meanwhile received 2..=129 of the same
        // history, commit 129. Resetting the log to 128 left commit 129
        // past the last entry, and the core refused to start.
        let startup = reconcile(
            hard(5, 129),
            meta(1, 1),
            entries(2..=129),
            135,
            Some(meta(128, 2)),
        )
        .unwrap();
        assert_eq!(startup.reset_log_to, None);
        assert_eq!(startup.initial.applied, 129);
        assert_eq!(startup.initial.hard_state.commit, 129);
    }

    #[test]
    fn a_log_holding_another_terms_entry_at_the_installed_point_is_reset() {
        // Entries 2..=129 of term 2, but the leader's snapshot says 128 is
        // of term 3: the log's tail is a history the snapshot overrides.
        let startup = reconcile(
            hard(3, 100),
            meta(1, 1),
            entries(2..=129),
            131,
            Some(meta(128, 3)),
        )
        .unwrap();
        assert_eq!(startup.reset_log_to, Some(meta(128, 3)));
        assert_eq!(startup.initial.applied, 128);
        assert_eq!(startup.initial.hard_state.commit, 128);
        assert!(startup.initial.entries.is_empty());
    }

    #[test]
    fn a_state_machine_behind_the_logs_snapshot_is_refused_not_hidden() {
        // The log was compacted to 100; the state machine reopened at 40
        // (a lost or wrong kv directory). Entries 41..=100 are gone.
        let refused = reconcile(hard(2, 120), meta(100, 2), entries(101..=120), 40, None);
        assert_eq!(
            refused.err(),
            Some(RecoveryError::StateMachineBehindSnapshot {
                applied: 40,
                snapshot_index: 100
            })
        );
        // The bootstrap snapshot holds no data: an empty store is at it.
        assert!(reconcile(hard(1, 1), meta(1, 1), entries(2..=3), 0, None).is_ok());
    }

    #[test]
    fn an_installed_snapshot_the_log_already_recorded_changes_nothing() {
        let startup = reconcile(
            hard(4, 520),
            meta(500, 4),
            entries(501..=530),
            525,
            Some(meta(500, 4)),
        )
        .unwrap();
        assert_eq!(startup.reset_log_to, None);
        assert_eq!(startup.initial.applied, 525);
        assert_eq!(startup.initial.entries.len(), 30);
    }
}
