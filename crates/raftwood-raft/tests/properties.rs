//! Randomized property test: many seeds, each a random schedule of ticks,
//! message deliveries (reordered, dropped), persistence completions,
//! proposals, partitions, crashes and compactions on a 3- or 5-member
//! cluster. After every step the Raft safety properties (paper Figure 3)
//! are checked:
//!
//! - election safety: at most one leader per term;
//! - log matching: two logs that agree on (index, term) agree on every
//!   entry up to that index;
//! - leader completeness: a leader holds every entry committed in an
//!   earlier (or its own) term;
//! - state machine safety: no two members apply different entries at the
//!   same index; a committed entry never changes;
//! - term, commit index and applied index never decrease while a member
//!   runs (a crash may lose what was never persisted, so they are
//!   re-based at restart).
//!
//! At the end of each seed, faults stop: the cluster must elect a leader,
//! commit a new entry everywhere within a bound, and every proposal that
//! was acknowledged (applied by its proposer) must be applied on every
//! member.
//!
//! A failure prints the seed; `RAFTWOOD_SEED=<n> cargo test -p raftwood-raft
//! --test properties` replays exactly that seed.
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use raftwood_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition, ConfState, Config, Entry,
    EntryPayload, Index, NodeId, Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::cluster::{Bootstrap, Cluster};

/// Steps of random faults per seed.
const STEPS_PER_SEED: usize = 3_000;
/// Seeds per run (override with `RAFTWOOD_SEEDS`).
const DEFAULT_SEEDS: u64 = 400;

/// What the checker remembers across steps.
#[derive(Default)]
struct Observations {
    /// Every entry ever seen committed, with the highest term of a member
    /// that saw it committed at the time it was first seen.
    committed: BTreeMap<Index, (Entry, Term)>,
    /// Per member: (term, commit, applied) at the last check since it last
    /// started.
    watermarks: BTreeMap<NodeId, (Term, Index, Index)>,
    /// Proposals applied by the member that proposed them: acknowledged.
    acknowledged: Vec<Entry>,
    /// Proposals in flight: (proposer, index, term, payload).
    proposals: Vec<(NodeId, Index, Term, Bytes)>,
}

fn check(cluster: &mut Cluster, seen: &mut Observations) -> Result<(), String> {
    cluster.check_safety();
    if let Some(violation) = cluster.violations().first() {
        return Err(violation.clone());
    }
    let ids = cluster.ids();
    // Monotonic term, commit, applied.
    for &id in &ids {
        let raft = cluster.raft(id);
        let now = (raft.term(), raft.log().committed(), raft.log().applied());
        if let Some(before) = seen.watermarks.insert(id, now)
            && (now.0 < before.0 || now.1 < before.1 || now.2 < before.2)
        {
            return Err(format!(
                "member {id}: (term, commit, applied) went from {before:?} to {now:?}"
            ));
        }
    }
    // Committed entries never change.
    for &id in &ids {
        let raft = cluster.raft(id);
        let log = raft.log();
        for index in log.first_index()..=log.committed() {
            let Some(entry) = log.entry(index) else {
                continue;
            };
            match seen.committed.get(&index) {
                Some((known, _)) if known != entry => {
                    return Err(format!(
                        "member {id} committed {entry:?} at {index}, but {known:?} was committed there"
                    ));
                }
                Some(_) => {}
                None => {
                    seen.committed.insert(index, (entry.clone(), raft.term()));
                }
            }
        }
    }
    // Log matching.
    for (position, &a) in ids.iter().enumerate() {
        for &b in &ids[position + 1..] {
            let (la, lb) = (cluster.raft(a).log(), cluster.raft(b).log());
            let low = la.first_index().max(lb.first_index());
            let high = la.last_index().min(lb.last_index());
            let Some(agree) = (low..=high)
                .rev()
                .find(|&i| la.term(i).is_ok() && la.term(i) == lb.term(i))
            else {
                continue;
            };
            for index in low..=agree {
                if la.entry(index) != lb.entry(index) {
                    return Err(format!(
                        "log matching: members {a} and {b} agree at {agree} but differ at {index}"
                    ));
                }
            }
        }
    }
    // Leader completeness.
    for &id in &ids {
        let raft = cluster.raft(id);
        if raft.role() != Role::Leader {
            continue;
        }
        let log = raft.log();
        for (&index, (entry, seen_in_term)) in seen.committed.range(log.first_index()..) {
            if *seen_in_term <= raft.term() && log.entry(index) != Some(entry) {
                return Err(format!(
                    "leader completeness: leader {id} of term {} lacks committed entry {index} (seen in term {seen_in_term})",
                    raft.term()
                ));
            }
        }
    }
    // Acknowledgements: a proposer that applied its own proposal acknowledges
    // it (this is where a server would answer its client).
    let mut still_pending = Vec::new();
    for (proposer, index, term, payload) in seen.proposals.drain(..) {
        let applied = cluster
            .applied(proposer)
            .iter()
            .find(|e| e.index == index)
            .cloned();
        match applied {
            Some(entry)
                if entry.term == term
                    && entry.payload == EntryPayload::Command(payload.clone()) =>
            {
                seen.acknowledged.push(entry);
            }
            Some(_) => {} // overwritten by another leader: the client is told it failed
            None => still_pending.push((proposer, index, term, payload)),
        }
    }
    seen.proposals = still_pending;
    Ok(())
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size: u64 = if rng.random_bool(0.5) { 3 } else { 5 };
    let pre_vote = rng.random_bool(0.7);
    let check_quorum = rng.random_bool(0.7);
    let make_config = |id: NodeId, rng: &mut ChaCha8Rng| Config {
        pre_vote,
        check_quorum,
        max_inflight_messages: rng.random_range(1..8),
        max_message_entries: rng.random_range(1..6),
        election_timeout_ticks: 5,
        seed: seed.wrapping_mul(31).wrapping_add(id),
        ..Config::new(id)
    };
    let mut cluster = Cluster::new();
    for id in 1..=size {
        let config = make_config(id, &mut rng);
        let bootstrap = Bootstrap::Member {
            conf_state: ConfState::with_voters(1..=size),
            index: 1,
        };
        cluster
            .add_node(config, bootstrap)
            .map_err(|e| e.to_string())?;
    }
    let mut seen = Observations::default();
    let mut proposal_number = 0u64;
    let pick = |rng: &mut ChaCha8Rng, ids: &[NodeId]| ids[rng.random_range(0..ids.len())];

    for step in 0..STEPS_PER_SEED {
        let roll = rng.random_range(0..1000);
        let all = cluster.ids();
        let id = pick(&mut rng, &all);
        // Targets where an action does something, so that steps are spent on
        // progress and faults rather than no-ops.
        let with_effects: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|&n| cluster.raft(n).has_effects())
            .collect();
        let with_persists: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|&n| cluster.pending_persist_count(n) > 0)
            .collect();
        let waiting: Vec<(NodeId, usize)> = all
            .iter()
            .copied()
            .map(|n| (n, cluster.in_flight(n).len()))
            .filter(|&(_, c)| c > 0)
            .collect();
        let outcome: Result<(), String> = match roll {
            0..250 => {
                cluster.tick(id, 1);
                Ok(())
            }
            250..420 => match with_effects.get(rng.random_range(0..with_effects.len().max(1))) {
                Some(&n) => cluster
                    .process_ready(n)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
            420..540 => match with_persists.get(rng.random_range(0..with_persists.len().max(1))) {
                Some(&n) => cluster.persist(n).map(|_| ()).map_err(|e| e.to_string()),
                None => Ok(()),
            },
            540..860 => {
                if let Some(&(n, count)) = waiting.get(rng.random_range(0..waiting.len().max(1))) {
                    // Mostly in order, sometimes out of order.
                    let position = if rng.random_bool(0.8) {
                        0
                    } else {
                        rng.random_range(0..count)
                    };
                    cluster.deliver_one(n, position);
                }
                Ok(())
            }
            860..866 => {
                // Lose everything on the way to one member (a dropped
                // connection).
                if let Some(&(n, _)) = waiting.get(rng.random_range(0..waiting.len().max(1))) {
                    cluster.drop_in_flight(n);
                }
                Ok(())
            }
            866..940 => {
                let leader = cluster
                    .ids()
                    .into_iter()
                    .find(|&n| cluster.raft(n).role() == Role::Leader);
                if let Some(leader) = leader {
                    proposal_number += 1;
                    let payload = Bytes::from(format!("s{seed}-p{proposal_number}"));
                    if let Ok(position) = cluster.raft_mut(leader).propose(payload.clone()) {
                        seen.proposals
                            .push((leader, position.index, position.term, payload));
                    }
                }
                Ok(())
            }
            940..952 => {
                let mut members = all.clone();
                let cut = rng.random_range(1..members.len());
                for i in (1..members.len()).rev() {
                    members.swap(i, rng.random_range(0..=i));
                }
                cluster.partition(&[members[..cut].to_vec(), members[cut..].to_vec()]);
                Ok(())
            }
            952..970 => {
                cluster.heal();
                Ok(())
            }
            970..978 => {
                seen.watermarks.remove(&id);
                cluster
                    .restart(id)
                    .map_err(|e| format!("restart of {id} failed: {e}"))
            }
            978..995 => {
                let applied = cluster.raft(id).log().applied();
                if applied > cluster.raft(id).log().snapshot().index {
                    cluster
                        .compact(id, applied)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            }
            995..997 => {
                let to = pick(&mut rng, &all);
                let _ = cluster.raft_mut(id).transfer_leader(to);
                Ok(())
            }
            _ => change_membership(&mut cluster, &mut rng, &make_config),
        };
        if std::env::var("RAFTWOOD_TRACE").is_ok() && step % 100 == 0 {
            for &n in &all {
                println!(
                    "step {step} roll {roll}: {} persists={} in_flight={}",
                    support::format::node_state(cluster.raft(n)),
                    cluster.pending_persist_count(n),
                    cluster.in_flight(n).len()
                );
            }
        }
        outcome.map_err(|e| format!("step {step}: {e}"))?;
        check(&mut cluster, &mut seen).map_err(|e| format!("step {step}: {e}"))?;
    }

    // Liveness: no more faults. A leader must emerge and commit a fresh
    // entry on every member within a bound.
    cluster.heal();
    let marker = Bytes::from(format!("s{seed}-final"));
    let mut proposed: Option<(NodeId, Index)> = None;
    for round in 0..400 {
        // Members removed from the configuration are shut down, as a server
        // does once it applies its own removal; one that never learned of
        // it would otherwise campaign forever when neither pre-vote nor
        // check-quorum protects the cluster (thesis §4.2.3).
        let members = current_members(&cluster);
        for &id in &members {
            cluster.tick(id, 1);
        }
        cluster
            .stabilize(&[], 10_000, &mut |_| {})
            .map_err(|e| format!("liveness round {round}: {e}"))?;
        check(&mut cluster, &mut seen).map_err(|e| format!("liveness round {round}: {e}"))?;
        // (Re-)propose the marker whenever the current leader does not hold
        // it: a proposal made to a leader that was then deposed may be lost,
        // which is allowed (it was never acknowledged).
        let leader = cluster
            .ids()
            .into_iter()
            .find(|&n| cluster.raft(n).role() == Role::Leader);
        if let Some(leader) = leader {
            let log = cluster.raft(leader).log();
            let holds_marker = (log.first_index()..=log.last_index()).any(|i| {
                log.entry(i)
                    .is_some_and(|e| e.payload == EntryPayload::Command(marker.clone()))
            }) || cluster
                .applied(leader)
                .iter()
                .any(|e| e.payload == EntryPayload::Command(marker.clone()));
            if !holds_marker && let Ok(position) = cluster.raft_mut(leader).propose(marker.clone())
            {
                proposed = Some((leader, position.index));
            }
        }
        let everywhere = members.iter().all(|&id| {
            cluster
                .applied(id)
                .iter()
                .any(|e| e.payload == EntryPayload::Command(marker.clone()))
        });
        if everywhere {
            if std::env::var("RAFTWOOD_STATS").is_ok() {
                let max_term = members
                    .iter()
                    .map(|&id| cluster.raft(id).term())
                    .max()
                    .unwrap_or(0);
                println!(
                    "seed {seed}: size {size} members {members:?} max_term {max_term} committed {} acknowledged {}",
                    seen.committed.len(),
                    seen.acknowledged.len()
                );
            }
            for entry in &seen.acknowledged {
                for &id in &members {
                    if !cluster.applied(id).contains(entry) {
                        return Err(format!(
                            "acknowledged entry {entry:?} is missing on member {id}"
                        ));
                    }
                }
            }
            return Ok(());
        }
    }
    let state: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| {
            let raft = cluster.raft(id);
            let progress: Vec<String> = raft
                .tracker()
                .progress_map()
                .iter()
                .map(|(peer, p)| format!("{peer}:{p}"))
                .collect();
            format!(
                "\n  {} applied_entries={} pending_persists={} progress=[{}]",
                support::format::node_state(raft),
                cluster.applied(id).len(),
                cluster.pending_persist_count(id),
                progress.join(", ")
            )
        })
        .collect();
    Err(format!(
        "liveness: no entry committed on every member after 400 rounds of a healed cluster (proposed: {proposed:?}){}",
        state.concat()
    ))
}

/// The members of the most advanced configuration any node has applied.
fn current_members(cluster: &Cluster) -> Vec<NodeId> {
    let most_applied = cluster
        .ids()
        .into_iter()
        .max_by_key(|&id| cluster.raft(id).log().applied());
    most_applied.map_or_else(Vec::new, |id| {
        cluster
            .raft(id)
            .conf_state()
            .members()
            .into_iter()
            .collect()
    })
}

/// A random membership change proposed to the leader, if there is one:
/// add a learner (a new node joining), promote a learner, remove a voter
/// (possibly the leader itself), or swap a learner in for a voter through
/// a joint configuration.
fn change_membership(
    cluster: &mut Cluster,
    rng: &mut ChaCha8Rng,
    make_config: &dyn Fn(NodeId, &mut ChaCha8Rng) -> Config,
) -> Result<(), String> {
    let Some(leader) = cluster
        .ids()
        .into_iter()
        .find(|&n| cluster.raft(n).role() == Role::Leader)
    else {
        return Ok(());
    };
    let conf = cluster.raft(leader).conf_state();
    let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
    let learners: Vec<NodeId> = conf.learners.iter().copied().collect();
    let single = |kind, node_id| ConfChangeSingle { kind, node_id };
    let change = match rng.random_range(0..4) {
        0 if cluster.ids().len() < 7 => {
            let new_id = cluster.ids().last().copied().unwrap_or(0) + 1;
            cluster
                .add_node(make_config(new_id, rng), Bootstrap::Joining)
                .map_err(|e| e.to_string())?;
            ConfChange::single(ConfChangeKind::AddLearner, new_id)
        }
        1 if !learners.is_empty() => ConfChange::single(
            ConfChangeKind::AddVoter,
            learners[rng.random_range(0..learners.len())],
        ),
        2 if voters.len() > 3 => ConfChange::single(
            ConfChangeKind::RemoveNode,
            voters[rng.random_range(0..voters.len())],
        ),
        3 if !learners.is_empty() && voters.len() >= 3 => ConfChange {
            transition: ConfChangeTransition::JointImplicit,
            changes: vec![
                single(
                    ConfChangeKind::AddVoter,
                    learners[rng.random_range(0..learners.len())],
                ),
                single(
                    ConfChangeKind::RemoveNode,
                    voters[rng.random_range(0..voters.len())],
                ),
            ],
            context: Bytes::new(),
        },
        _ => return Ok(()),
    };
    // Refusals (a change pending, a transfer in progress) are expected.
    let _ = cluster.raft_mut(leader).propose_conf_change(change);
    Ok(())
}

#[test]
fn safety_holds_under_random_faults_and_the_cluster_recovers() {
    let seeds: Vec<u64> = match std::env::var("RAFTWOOD_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => {
            let count = std::env::var("RAFTWOOD_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(DEFAULT_SEEDS);
            (0..count).collect()
        }
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        if let Err(error) = run_seed(seed) {
            failures.push(format!("seed {seed}: {error}\n  replay: RAFTWOOD_SEED={seed} cargo test -p raftwood-raft --test properties"));
        }
    }
    println!(
        "{} seeds x {STEPS_PER_SEED} steps, {} failed",
        seeds.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}
