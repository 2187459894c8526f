//! Everything a seed decides about a run before it starts: cluster size,
//! clients, network behaviour, disk delays, fault mix, core settings.

use raftwood_raft::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::linearizability::Budget;
use crate::network::NetworkOptions;

/// Relative weights of the faults injected during the fault phase.
#[derive(Debug, Clone, Copy)]
pub struct FaultWeights {
    /// Crash a member (losing unsynced writes) and restart it later.
    pub crash: u32,
    /// Pause a member (a long GC pause or a stopped VM).
    pub pause: u32,
    /// Cut links (isolate, split, bridge, one-way); healed later.
    pub partition: u32,
    /// Change membership (add learner, promote, remove voter).
    pub membership: u32,
    /// Ask the leader to hand leadership to another voter.
    pub transfer: u32,
    /// A member's clock jumps forward (a burst of ticks).
    pub clock_jump: u32,
}

/// The settings of one simulated run.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The seed; every random choice of the run derives from it.
    pub seed: u64,
    /// Voters the cluster starts with.
    pub initial_voters: usize,
    /// The most voters membership churn grows the cluster to.
    pub max_voters: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys the clients use (few, so that operations contend).
    pub keys: u64,
    /// Length of the fault phase.
    pub fault_phase_us: u64,
    /// After the fault phase, the cluster must elect a leader, commit a new
    /// entry and converge within this long.
    pub liveness_bound_us: u64,
    /// Nominal interval between a member's ticks.
    pub tick_interval_us: u64,
    /// Each member's tick interval is the nominal one times a factor drawn
    /// from `[1 - skew, 1 + skew]` (clock rate skew).
    pub tick_skew: f64,
    /// Network behaviour.
    pub network: NetworkOptions,
    /// Simulated fsync delay range.
    pub fsync_min_us: u64,
    /// Simulated fsync delay range.
    pub fsync_max_us: u64,
    /// Whether a crash may leave a torn prefix of the write in progress.
    pub torn_writes: bool,
    /// Mean time between faults.
    pub mean_fault_interval_us: u64,
    /// A crashed member stays down for up to this long.
    pub max_downtime_us: u64,
    /// A partition lasts up to this long.
    pub max_partition_us: u64,
    /// The fault mix.
    pub fault_weights: FaultWeights,
    /// A member compacts its log once this many entries are applied past
    /// its snapshot.
    pub compaction_threshold_entries: u64,
    /// A client gives up on an operation after this long (its outcome is
    /// then unknown).
    pub client_timeout_us: u64,
    /// Core setting.
    pub pre_vote: bool,
    /// Core setting.
    pub check_quorum: bool,
    /// Core setting (small values split appends, which makes commit-rule
    /// bugs reachable).
    pub max_message_entries: usize,
    /// Record a trace of every event.
    pub trace: bool,
    /// Check, whenever a leader advances its commit index, the commit rule
    /// and that the entry is durable on a majority of voters' simulated
    /// disks. On by default; tests turn it off to show that bugs are also
    /// found by their end-to-end consequences.
    pub check_leader_commits: bool,
    /// Budget of the linearizability checker.
    pub budget: Budget,
    /// Applied to every member's `Config` (tests use it to plant bugs).
    pub configure: Option<fn(&mut Config)>,
    /// Tests only: this member's state machine applies every entry at an
    /// index divisible by 8 as an empty one — a planted divergence between
    /// members' stores, which the state digest checks must find.
    pub planted_state_machine_bug: Option<u64>,
    /// Tests only, server-loop mode: the disk's fsync acknowledges without
    /// making anything durable (the persistence batch reports its tickets
    /// while its writes stay pending), which the durability checks must
    /// find.
    pub planted_fsync_lies: bool,
    /// Each member is the server's own drive loop
    /// (`raftwood_server::driver::DriveLoop`) rather than a core the
    /// simulator drives itself; see [`SimOptions::server_loop_from_seed`].
    pub server_loop: bool,
    /// Server-loop mode: a member's drive loop runs its next round up to
    /// this long after an event arrives, taking everything queued by then
    /// as one round (0: a round per event, unless events coincide).
    pub loop_batch_window_us: u64,
}

impl SimOptions {
    /// The settings seed `seed` stands for. Drawn from their own generator,
    /// so that the run's random stream starts the same whatever is drawn
    /// here.
    pub fn from_seed(seed: u64) -> SimOptions {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f0e_710a_5eed);
        let initial_voters = if rng.random_bool(0.7) { 3 } else { 5 };
        let drop_probability = *pick(&mut rng, &[0.0, 0.01, 0.05, 0.1]);
        let duplicate_probability = *pick(&mut rng, &[0.0, 0.01, 0.05]);
        let max_latency_us = *pick(&mut rng, &[2_000, 5_000, 20_000]);
        let fsync_max_us = *pick(&mut rng, &[1_000, 5_000, 30_000]);
        let membership = if rng.random_bool(0.5) { 2 } else { 0 };
        let mut options = SimOptions {
            seed,
            initial_voters,
            max_voters: 5,
            clients: rng.random_range(2..=5),
            keys: rng.random_range(1..=4),
            fault_phase_us: 6_000_000,
            liveness_bound_us: 8_000_000,
            tick_interval_us: 10_000,
            tick_skew: *pick(&mut rng, &[0.0, 0.05, 0.2]),
            network: NetworkOptions {
                min_latency_us: 200,
                max_latency_us,
                slow_probability: 0.05,
                slow_latency_us: 50_000,
                drop_probability,
                duplicate_probability,
            },
            fsync_min_us: 100,
            fsync_max_us,
            torn_writes: rng.random_bool(0.5),
            mean_fault_interval_us: *pick(&mut rng, &[30_000, 100_000, 300_000, 1_000_000]),
            max_downtime_us: *pick(&mut rng, &[200_000, 2_000_000]),
            fault_weights: FaultWeights {
                crash: rng.random_range(1..=4),
                pause: rng.random_range(0..=2),
                partition: rng.random_range(0..=4),
                membership,
                transfer: rng.random_range(0..=1),
                clock_jump: rng.random_range(0..=1),
            },
            compaction_threshold_entries: *pick(&mut rng, &[16, 64, 256]),
            client_timeout_us: 1_000_000,
            pre_vote: rng.random_bool(0.7),
            check_quorum: rng.random_bool(0.7),
            max_message_entries: *pick(&mut rng, &[1, 2, 8, 64]),
            max_partition_us: 3_000_000,
            trace: false,
            check_leader_commits: true,
            budget: Budget::default(),
            configure: None,
            planted_state_machine_bug: None,
            planted_fsync_lies: false,
            server_loop: false,
            loop_batch_window_us: 0,
        };
        // A third of the seeds are a leader-churn storm: short, frequent
        // faults aimed at the leader, small append messages, more often
        // five voters. Elections then overlap with half-replicated logs of
        // several terms, where commit-rule and election bugs live.
        if rng.random_bool(0.33) {
            options.initial_voters = if rng.random_bool(0.5) { 3 } else { 5 };
            options.mean_fault_interval_us = *pick(&mut rng, &[20_000, 50_000, 100_000]);
            options.max_downtime_us = 300_000;
            options.max_partition_us = 400_000;
            options.max_message_entries = *pick(&mut rng, &[1, 2]);
            options.fault_weights.crash = rng.random_range(2..=4);
            options.fault_weights.partition = rng.random_range(2..=4);
            options.fault_weights.pause = rng.random_range(0..=1);
        }
        options
    }
}

impl SimOptions {
    /// The server-loop mode's run for `seed`: the settings of
    /// [`SimOptions::from_seed`], with every member the server's drive
    /// loop, its persistence and apply work run as timed events, and its
    /// snapshots taken, finished, sent, received and installed by the
    /// server's own steps on the member's crash-modelling filesystem
    /// (`--snapshot-count` is `compaction_threshold_entries`), with crashes
    /// armed inside those steps. Membership churn goes through the drive
    /// loop as the Cluster service's changes do (`server_membership.rs`).
    pub fn server_loop_from_seed(seed: u64) -> SimOptions {
        let mut options = SimOptions::from_seed(seed);
        options.server_loop = true;
        // Drawn from a generator of its own, so the rest of the run's
        // settings are the raft-core mode's for the same seed.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1009_b47c_4000_5eed);
        options.loop_batch_window_us = *pick(&mut rng, &[0, 200, 1_000, 5_000]);
        options
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, choices: &'a [T]) -> &'a T {
    &choices[rng.random_range(0..choices.len())]
}
