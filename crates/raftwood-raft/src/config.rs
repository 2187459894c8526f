//! A member's settings. Time is counted in ticks: the caller decides how long
//! a tick is (a server ticks every heartbeat interval / N milliseconds).

use crate::error::Error;
use crate::ids::NodeId;

/// How linearizable reads are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyMode {
    /// ReadIndex (thesis §6.4): the leader confirms it is still leader with a
    /// heartbeat round before answering. Safe under any clock behaviour.
    Safe,
    /// Lease-based (thesis §6.4.1): the leader answers at once while it has
    /// heard from a quorum within the election timeout. Requires
    /// check-quorum, and is only as safe as the members' clocks are bounded
    /// in drift.
    LeaseBased,
}

/// Settings of one member.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's id (never 0).
    pub id: NodeId,
    /// A follower that hears nothing from a leader for a random number of
    /// ticks in `[election_timeout_ticks, 2 * election_timeout_ticks)`
    /// starts an election (paper §5.2).
    pub election_timeout_ticks: u32,
    /// A leader sends heartbeats every this many ticks. Invariant:
    /// `heartbeat_interval_ticks < election_timeout_ticks`.
    pub heartbeat_interval_ticks: u32,
    /// Run a pre-vote round before raising the term (thesis §9.6), so that a
    /// member that was partitioned away does not disrupt the cluster when it
    /// comes back.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout
    /// steps down (thesis §6.2); followers that heard from a leader within
    /// the timeout ignore vote requests.
    pub check_quorum: bool,
    /// How read_index is served.
    pub read_only_mode: ReadOnlyMode,
    /// An append message carries at most this many payload bytes (at least
    /// one entry, however large).
    pub max_message_bytes: u64,
    /// An append message carries at most this many entries.
    pub max_message_entries: usize,
    /// At most this many append messages in flight to one follower in
    /// replicate state (pipelining window).
    pub max_inflight_messages: usize,
    /// At most this many payload bytes in flight to one follower; 0 means
    /// no byte limit.
    pub max_inflight_bytes: u64,
    /// A leader refuses proposals once this many payload bytes are
    /// appended but not committed; 0 means no limit. Bounds memory when
    /// followers are slow.
    pub max_uncommitted_bytes: u64,
    /// Seed of the member's random generator (the election timeout draw).
    /// Two members with the same seed draw the same timeouts; give each its
    /// own.
    pub seed: u64,
    /// A deliberate safety bug, for proving that the simulator finds it
    /// (test-only feature `planted-bugs`). `None`: correct behaviour.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

/// The bugs `Config::planted_bug` can plant. Reach the variants through
/// the `Config::PLANTED_*` constants (the crate root does not re-export
/// this type).
#[cfg(feature = "planted-bugs")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The leader commits an entry of a previous term once a quorum holds
    /// it (paper §5.4.2, Figure 8): the entry can still be overwritten.
    CommitPreviousTermByCounting,
    /// A member grants its vote to every up-to-date candidate in a term,
    /// not only the first: two leaders in one term.
    VoteTwiceInOneTerm,
    /// The leader counts its own new entries towards the commit quorum as
    /// soon as it appends them, before they are durable.
    LeaderCountsEntriesBeforePersist,
    /// A follower acknowledges appended entries before they are durable.
    FollowerAcksBeforePersist,
    /// The leader appends every forwarded batch it receives, without the
    /// batch-id check: a duplicated `ProposeRequest` commits one client's
    /// command twice.
    AppendDuplicateForwardedBatches,
}

#[cfg(feature = "planted-bugs")]
impl Config {
    /// See [`PlantedBug::CommitPreviousTermByCounting`].
    pub const PLANTED_COMMIT_PREVIOUS_TERM_BY_COUNTING: PlantedBug =
        PlantedBug::CommitPreviousTermByCounting;
    /// See [`PlantedBug::VoteTwiceInOneTerm`].
    pub const PLANTED_VOTE_TWICE_IN_ONE_TERM: PlantedBug = PlantedBug::VoteTwiceInOneTerm;
    /// See [`PlantedBug::LeaderCountsEntriesBeforePersist`].
    pub const PLANTED_LEADER_COUNTS_ENTRIES_BEFORE_PERSIST: PlantedBug =
        PlantedBug::LeaderCountsEntriesBeforePersist;
    /// See [`PlantedBug::FollowerAcksBeforePersist`].
    pub const PLANTED_FOLLOWER_ACKS_BEFORE_PERSIST: PlantedBug =
        PlantedBug::FollowerAcksBeforePersist;
    /// See [`PlantedBug::AppendDuplicateForwardedBatches`].
    pub const PLANTED_APPEND_DUPLICATE_FORWARDED_BATCHES: PlantedBug =
        PlantedBug::AppendDuplicateForwardedBatches;

    /// Whether `bug` is planted.
    pub(crate) fn has_planted_bug(&self, bug: PlantedBug) -> bool {
        self.planted_bug == Some(bug)
    }
}

impl Config {
    /// Settings as etcd ships them (election 10 ticks, heartbeat 1 tick),
    /// with pre-vote and check-quorum on.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            read_only_mode: ReadOnlyMode::Safe,
            max_message_bytes: 1024 * 1024,
            max_message_entries: 4096,
            max_inflight_messages: 256,
            max_inflight_bytes: 0,
            max_uncommitted_bytes: 1 << 30,
            seed: id,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: &str| Err(Error::InvalidConfig(reason.to_owned()));
        if self.id == 0 {
            return invalid("id must not be 0");
        }
        if self.heartbeat_interval_ticks == 0 {
            return invalid("heartbeat_interval_ticks must be at least 1");
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return invalid("election_timeout_ticks must be greater than heartbeat_interval_ticks");
        }
        if self.max_inflight_messages == 0 {
            return invalid("max_inflight_messages must be at least 1");
        }
        if self.max_message_entries == 0 {
            return invalid("max_message_entries must be at least 1");
        }
        if self.read_only_mode == ReadOnlyMode::LeaseBased && !self.check_quorum {
            return invalid("lease-based reads require check_quorum");
        }
        Ok(())
    }
}
