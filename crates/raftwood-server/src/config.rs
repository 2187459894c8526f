//! A member's settings. Where etcd has the same setting, the name and the
//! format are etcd's, so that an etcd operator's command line works.

use std::path::PathBuf;

use raftwood_kv::RequestLimits;

use crate::error::ConfigError;
use crate::url::PeerUrl;

/// Whether this member creates a cluster or joins one that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialClusterState {
    /// Bootstrap a new cluster from `initial_cluster`.
    #[default]
    New,
    /// Join an existing cluster (the member was added with `member add`).
    Existing,
}

impl std::str::FromStr for InitialClusterState {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "new" => Ok(InitialClusterState::New),
            "existing" => Ok(InitialClusterState::Existing),
            other => Err(ConfigError::Invalid(format!(
                "--initial-cluster-state must be \"new\" or \"existing\", not {other:?}"
            ))),
        }
    }
}

/// One entry of `--initial-cluster`: `name=http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's name (`--name` on that member).
    pub name: String,
    /// Where its peers reach it.
    pub peer_urls: Vec<PeerUrl>,
}

/// Parses etcd's `--initial-cluster` format: `a=http://h:1,b=http://h:2`;
/// a name may appear more than once to give several peer URLs.
pub fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, url)) = item.split_once('=') else {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster entry {item:?} is not name=url"
            )));
        };
        let url: PeerUrl = url.parse()?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(member) => member.peer_urls.push(url),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url],
            }),
        }
    }
    if members.is_empty() {
        return Err(ConfigError::Invalid("--initial-cluster is empty".into()));
    }
    Ok(members)
}

/// Everything a member needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Human-readable member name, unique in the cluster (`--name`).
    pub name: String,
    /// Where the raft log, the state machine and snapshots live (`--data-dir`).
    pub data_dir: PathBuf,
    /// Addresses the client (etcd gRPC) server binds (`--listen-client-urls`).
    pub listen_client_urls: Vec<PeerUrl>,
    /// Client addresses announced to others (`--advertise-client-urls`).
    pub advertise_client_urls: Vec<PeerUrl>,
    /// Addresses the peer server binds (`--listen-peer-urls`).
    pub listen_peer_urls: Vec<PeerUrl>,
    /// This member's peer addresses as the others know them
    /// (`--initial-advertise-peer-urls`).
    pub initial_advertise_peer_urls: Vec<PeerUrl>,
    /// The bootstrap membership (`--initial-cluster`).
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: InitialClusterState,
    /// Mixed into member and cluster ids so that two clusters with the
    /// same addresses are told apart (`--initial-cluster-token`).
    pub initial_cluster_token: String,
    /// Raft tick and heartbeat period (`--heartbeat-interval`).
    pub heartbeat_interval_ms: u64,
    /// Election timeout (`--election-timeout`); a multiple of the heartbeat.
    pub election_timeout_ms: u64,
    /// Applied entries between two snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Size of the state machine beyond which writes are refused
    /// (`--quota-backend-bytes`); 0 means etcd's default of 2 GiB.
    pub quota_backend_bytes: u64,
    /// Largest request accepted (`--max-request-bytes`).
    pub max_request_bytes: u64,
    /// Most compares, or operations of one branch, in one level of a txn
    /// (`--max-txn-ops`).
    pub max_txn_ops: u64,
    /// Every this many seconds, log where writes spent their time (log
    /// write, fsync, apply, propose -> commit; see `timings.rs`); 0: off.
    pub log_timings_seconds: u64,
    /// How often a watcher created with `progress_notify` hears the
    /// revision it is caught up to
    /// (`--experimental-watch-progress-notify-interval`; etcd: 10 minutes,
    /// at least 100 ms).
    pub watch_progress_notify_interval: std::time::Duration,
}

/// The shortest watch progress interval (etcd raises shorter ones to it).
pub const MIN_WATCH_PROGRESS_NOTIFY_INTERVAL: std::time::Duration =
    std::time::Duration::from_millis(100);

impl ServerConfig {
    /// Settings for a single member named `name` with etcd's defaults.
    pub fn new(name: &str, data_dir: PathBuf) -> ServerConfig {
        let peer: PeerUrl = PeerUrl::localhost(2380);
        let client: PeerUrl = PeerUrl::localhost(2379);
        ServerConfig {
            name: name.to_string(),
            data_dir,
            listen_client_urls: vec![client.clone()],
            advertise_client_urls: vec![client],
            listen_peer_urls: vec![peer.clone()],
            initial_advertise_peer_urls: vec![peer.clone()],
            initial_cluster: vec![InitialMember {
                name: name.to_string(),
                peer_urls: vec![peer],
            }],
            initial_cluster_state: InitialClusterState::New,
            initial_cluster_token: "etcd-cluster".into(),
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: 100_000,
            quota_backend_bytes: 0,
            max_request_bytes: 1_572_864,
            max_txn_ops: 128,
            log_timings_seconds: 0,
            watch_progress_notify_interval: std::time::Duration::from_secs(600),
        }
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Invalid("--name must not be empty".into()));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "--heartbeat-interval must be at least 1 ms".into(),
            ));
        }
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms {
            // etcd's rule: an election timeout shorter than five heartbeats
            // makes spurious elections likely.
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout_ms, self.heartbeat_interval_ms
            )));
        }
        if self.watch_progress_notify_interval < MIN_WATCH_PROGRESS_NOTIFY_INTERVAL {
            return Err(ConfigError::Invalid(format!(
                "--experimental-watch-progress-notify-interval must be at least {:?}",
                MIN_WATCH_PROGRESS_NOTIFY_INTERVAL
            )));
        }
        if self.listen_client_urls.is_empty() || self.listen_peer_urls.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one client and one peer URL must be listened on".into(),
            ));
        }
        let Some(me) = self.initial_cluster.iter().find(|m| m.name == self.name) else {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        };
        if me.peer_urls != self.initial_advertise_peer_urls {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster has {}={} but --initial-advertise-peer-urls is {}",
                self.name,
                join_urls(&me.peer_urls),
                join_urls(&self.initial_advertise_peer_urls)
            )));
        }
        let mut names: Vec<&str> = self
            .initial_cluster
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.initial_cluster.len() {
            return Err(ConfigError::Invalid(
                "--initial-cluster names a member twice".into(),
            ));
        }
        Ok(())
    }

    /// Ticks in one election timeout.
    pub fn election_timeout_ticks(&self) -> u32 {
        let ticks = self.election_timeout_ms / self.heartbeat_interval_ms.max(1);
        u32::try_from(ticks).unwrap_or(u32::MAX).max(2)
    }

    /// How long a client request may wait for raft before "request timed
    /// out" (etcd: 5 s plus twice the election timeout).
    pub fn request_timeout_ms(&self) -> u64 {
        5_000 + 2 * self.election_timeout_ms
    }

    /// Ticks a proposal forwarded to the leader may wait to be applied
    /// here: the request timeout less two ticks, so that it gets as long
    /// as a write on the leader, and the drive loop still answers "request
    /// timed out, possibly due to previous leader failure" just before the
    /// gRPC layer's own deadline fires (a deadline registered between two
    /// ticks expires one tick early at most).
    pub fn forward_timeout_ticks(&self) -> u64 {
        let tick_ms = self.heartbeat_interval_ms.max(1);
        (self.request_timeout_ms() / tick_ms)
            .saturating_sub(2)
            .max(1)
    }

    /// The limits every request is checked against before it is proposed.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_txn_ops: usize::try_from(self.max_txn_ops).unwrap_or(usize::MAX),
            max_request_bytes: usize::try_from(self.max_request_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The most a snapshot received from the leader may hold: twice the
    /// backend quota (a state machine within the quota, with room for the
    /// engine's own space amplification). A larger transfer is refused, so
    /// that a broken or hostile sender cannot fill the disk.
    pub fn max_snapshot_bytes(&self) -> u64 {
        self.effective_quota_backend_bytes().saturating_mul(2)
    }

    /// The quota in effect (etcd's default when 0 is given).
    pub fn effective_quota_backend_bytes(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            2 * 1024 * 1024 * 1024
        } else {
            self.quota_backend_bytes
        }
    }
}

/// `a,b,c` as etcd prints URL lists.
pub fn join_urls(urls: &[PeerUrl]) -> String {
    urls.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcds_initial_cluster_format() {
        let members =
            parse_initial_cluster("a=http://127.0.0.1:2380,b=http://127.0.0.1:2381").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].name, "b");
        assert_eq!(members[1].peer_urls[0].port(), 2381);
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("").is_err());
        assert!(parse_initial_cluster("a=ftp://x:1").is_err());
    }

    #[test]
    fn a_forwarded_write_times_out_just_before_the_request_timeout() {
        let mut config = ServerConfig::new("a", PathBuf::from("/tmp/x"));
        // etcd's defaults: 100 ms ticks, 1 s election timeout.
        assert_eq!(config.request_timeout_ms(), 7_000);
        assert_eq!(config.forward_timeout_ticks(), 68);
        config.heartbeat_interval_ms = 20;
        config.election_timeout_ms = 200;
        assert_eq!(config.request_timeout_ms(), 5_400);
        assert_eq!(config.forward_timeout_ticks() * 20, 5_360);
    }

    #[test]
    fn refuses_a_name_missing_from_the_initial_cluster() {
        let mut config = ServerConfig::new("a", PathBuf::from("/tmp/x"));
        config.name = "z".into();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("couldn't find local name"), "{message}");
    }

    #[test]
    fn refuses_an_election_timeout_below_five_heartbeats() {
        let mut config = ServerConfig::new("a", PathBuf::from("/tmp/x"));
        config.election_timeout_ms = 300;
        assert!(config.validate().is_err());
        config.election_timeout_ms = 500;
        config.validate().unwrap();
        assert_eq!(config.election_timeout_ticks(), 5);
    }
}
