//! `raftwood serve`'s flags: etcd's names and formats, so that an etcd
//! operator's command line works unchanged, plus an optional TOML file
//! whose keys are the same names (flags win over the file).

use std::path::{Path, PathBuf};

use clap::Args;
use raftwood_server::config::{InitialClusterState, parse_initial_cluster};
use raftwood_server::url::parse_urls;
use raftwood_server::{ConfigError, ServerConfig};

/// Flags of `raftwood serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (keys as the flag names,
    /// e.g. `initial-cluster = "..."`); flags win.
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long)]
    pub name: Option<String>,
    /// Path to the data directory.
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(long = "listen-client-urls")]
    pub listen_client_urls: Option<String>,
    /// Client URLs to advertise to the rest of the cluster.
    #[arg(long = "advertise-client-urls")]
    pub advertise_client_urls: Option<String>,
    /// URLs to listen on for peer traffic.
    #[arg(long = "listen-peer-urls")]
    pub listen_peer_urls: Option<String>,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long = "initial-advertise-peer-urls")]
    pub initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration for bootstrapping: name=url,...
    #[arg(long = "initial-cluster")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state: new or existing.
    #[arg(long = "initial-cluster-state")]
    pub initial_cluster_state: Option<String>,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long = "initial-cluster-token")]
    pub initial_cluster_token: Option<String>,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long = "heartbeat-interval")]
    pub heartbeat_interval: Option<u64>,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long = "election-timeout")]
    pub election_timeout: Option<u64>,
    /// Number of committed transactions to trigger a snapshot.
    #[arg(long = "snapshot-count")]
    pub snapshot_count: Option<u64>,
    /// Raise alarms when backend size exceeds the given quota (0 = default).
    #[arg(long = "quota-backend-bytes")]
    pub quota_backend_bytes: Option<u64>,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long = "max-request-bytes")]
    pub max_request_bytes: Option<u64>,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops")]
    pub max_txn_ops: Option<u64>,
    /// Log where writes spend their time (log write, fsync, apply,
    /// propose -> commit) every this many seconds; 0 (default) is off.
    /// raftwood's own flag, not etcd's.
    #[arg(long = "log-timings-seconds")]
    pub log_timings_seconds: Option<u64>,
    /// Duration of periodic watch progress notifications (Go's duration
    /// syntax, as etcd: 10m, 1m30s, 500ms).
    #[arg(long = "experimental-watch-progress-notify-interval")]
    pub experimental_watch_progress_notify_interval: Option<String>,
}

/// The settings file: the same names as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileSettings {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<String>,
    advertise_client_urls: Option<String>,
    listen_peer_urls: Option<String>,
    initial_advertise_peer_urls: Option<String>,
    initial_cluster: Option<String>,
    initial_cluster_state: Option<String>,
    initial_cluster_token: Option<String>,
    heartbeat_interval: Option<u64>,
    election_timeout: Option<u64>,
    snapshot_count: Option<u64>,
    quota_backend_bytes: Option<u64>,
    max_request_bytes: Option<u64>,
    max_txn_ops: Option<u64>,
    log_timings_seconds: Option<u64>,
    experimental_watch_progress_notify_interval: Option<String>,
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("reading {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
}

impl ServeArgs {
    /// The member's settings: etcd's defaults, then the file, then flags.
    pub fn to_config(&self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config_file {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let name = self
            .name
            .clone()
            .or(file.name)
            .unwrap_or_else(|| "default".to_string());
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(format!("{name}.raftwood")));
        let mut config = ServerConfig::new(&name, data_dir);
        let listen_client_urls = self.listen_client_urls.clone().or(file.listen_client_urls);
        let advertise_client_urls = self
            .advertise_client_urls
            .clone()
            .or(file.advertise_client_urls);
        // As etcd: a member that listens on chosen addresses must say where
        // clients reach it (its default, localhost, would send relayed
        // requests and clients' discovery to the wrong place).
        if listen_client_urls.is_some() && advertise_client_urls.is_none() {
            return Err(ConfigError::Invalid(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .into(),
            ));
        }
        if let Some(urls) = listen_client_urls {
            config.listen_client_urls = parse_urls(&urls)?;
        }
        if let Some(urls) = advertise_client_urls {
            config.advertise_client_urls = parse_urls(&urls)?;
        }
        if let Some(urls) = self.listen_peer_urls.clone().or(file.listen_peer_urls) {
            config.listen_peer_urls = parse_urls(&urls)?;
        }
        if let Some(urls) = self
            .initial_advertise_peer_urls
            .clone()
            .or(file.initial_advertise_peer_urls)
        {
            config.initial_advertise_peer_urls = parse_urls(&urls)?;
        }
        match self.initial_cluster.clone().or(file.initial_cluster) {
            Some(cluster) => config.initial_cluster = parse_initial_cluster(&cluster)?,
            None => {
                // etcd's default: this member alone, at its advertised URLs.
                config.initial_cluster = parse_initial_cluster(&format!(
                    "{name}={}",
                    raftwood_server::config::join_urls(&config.initial_advertise_peer_urls)
                ))?;
            }
        }
        if let Some(state) = self
            .initial_cluster_state
            .clone()
            .or(file.initial_cluster_state)
        {
            config.initial_cluster_state = state.parse::<InitialClusterState>()?;
        }
        if let Some(token) = self
            .initial_cluster_token
            .clone()
            .or(file.initial_cluster_token)
        {
            config.initial_cluster_token = token;
        }
        if let Some(ms) = self.heartbeat_interval.or(file.heartbeat_interval) {
            config.heartbeat_interval_ms = ms;
        }
        if let Some(ms) = self.election_timeout.or(file.election_timeout) {
            config.election_timeout_ms = ms;
        }
        if let Some(count) = self.snapshot_count.or(file.snapshot_count) {
            config.snapshot_count = count;
        }
        if let Some(bytes) = self.quota_backend_bytes.or(file.quota_backend_bytes) {
            config.quota_backend_bytes = bytes;
        }
        if let Some(bytes) = self.max_request_bytes.or(file.max_request_bytes) {
            config.max_request_bytes = bytes;
        }
        if let Some(ops) = self.max_txn_ops.or(file.max_txn_ops) {
            config.max_txn_ops = ops;
        }
        if let Some(seconds) = self.log_timings_seconds.or(file.log_timings_seconds) {
            config.log_timings_seconds = seconds;
        }
        if let Some(text) = self
            .experimental_watch_progress_notify_interval
            .clone()
            .or(file.experimental_watch_progress_notify_interval)
        {
            let interval = crate::go_duration::parse(&text).map_err(|e| {
                ConfigError::Invalid(format!(
                    "--experimental-watch-progress-notify-interval {text:?}: {e}"
                ))
            })?;
            // etcd raises a shorter interval to its minimum, with a warning.
            let minimum = raftwood_server::config::MIN_WATCH_PROGRESS_NOTIFY_INTERVAL;
            if interval < minimum {
                tracing::warn!(
                    ?minimum,
                    "adjusting watch progress notify interval to minimum period"
                );
            }
            config.watch_progress_notify_interval = interval.max(minimum);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("raftwood.toml");
        std::fs::write(
            &file,
            "name = \"a\"\nelection-timeout = 2000\nheartbeat-interval = 200\n\
             initial-cluster = \"a=http://127.0.0.1:2380\"\nlog-timings-seconds = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config_file: Some(file.clone()),
            heartbeat_interval: Some(100),
            ..ServeArgs::default()
        };
        let config = args.to_config().unwrap();
        assert_eq!(config.name, "a");
        assert_eq!(config.election_timeout_ms, 2000);
        assert_eq!(config.heartbeat_interval_ms, 100);
        assert_eq!(config.log_timings_seconds, 5);
        assert_eq!(config.data_dir, PathBuf::from("a.raftwood"));

        std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
        let error = args.to_config().unwrap_err().to_string();
        assert!(error.contains("nmae"), "{error}");
    }

    #[test]
    fn listening_on_chosen_client_urls_without_advertising_them_is_refused_as_etcd_does() {
        let args = ServeArgs {
            name: Some("a".into()),
            listen_client_urls: Some("http://127.0.0.1:2379,http://127.0.0.1:2479".into()),
            ..ServeArgs::default()
        };
        let error = args.to_config().unwrap_err().to_string();
        assert!(
            error.contains(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
            ),
            "{error}"
        );
        let advertised = ServeArgs {
            advertise_client_urls: Some("http://127.0.0.1:2379".into()),
            ..args
        };
        assert!(advertised.to_config().is_ok());
    }

    #[test]
    fn etcd_command_lines_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::try_parse_from([
            "raftwood",
            "--name",
            "infra1",
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--advertise-client-urls",
            "http://127.0.0.1:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:12380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:12380",
            "--initial-cluster-token",
            "etcd-cluster-1",
            "--initial-cluster",
            "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380",
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
        ])
        .unwrap();
        let config = cli.serve.to_config().unwrap();
        assert_eq!(config.initial_cluster.len(), 2);
        assert_eq!(config.initial_cluster_token, "etcd-cluster-1");
    }
}
