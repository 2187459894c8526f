//! `raftwood dev`: three members on loopback in one process, with their
//! data under one directory, for trying raftwood out and for tests.

use std::path::PathBuf;

use clap::Args;
use raftwood_server::config::{InitialClusterState, parse_initial_cluster};
use raftwood_server::url::PeerUrl;
use raftwood_server::{RunningNode, ServerConfig};

/// Flags of `raftwood dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Where the members keep their data (one subdirectory each).
    #[arg(long = "data-dir", default_value = "raftwood-data")]
    pub data_dir: PathBuf,
    /// The three client ports (etcd's Procfile uses the same).
    #[arg(long = "client-ports", value_delimiter = ',', default_values_t = [2379u16, 22379, 32379])]
    pub client_ports: Vec<u16>,
    /// The three peer ports.
    #[arg(long = "peer-ports", value_delimiter = ',', default_values_t = [12380u16, 22380, 32380])]
    pub peer_ports: Vec<u16>,
    /// Heartbeat interval in milliseconds.
    #[arg(long = "heartbeat-interval", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Election timeout in milliseconds.
    #[arg(long = "election-timeout", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Log where writes spend their time (log write, fsync, apply,
    /// propose -> commit) every this many seconds, per member; 0 is off.
    #[arg(long = "log-timings-seconds", default_value_t = 0)]
    pub log_timings_seconds: u64,
}

/// The three members' settings.
pub fn member_configs(args: &DevArgs) -> Result<Vec<ServerConfig>, String> {
    if args.client_ports.len() != 3 || args.peer_ports.len() != 3 {
        return Err("--client-ports and --peer-ports each take three ports".into());
    }
    let names = ["infra1", "infra2", "infra3"];
    let initial_cluster = names
        .iter()
        .zip(&args.peer_ports)
        .map(|(name, port)| format!("{name}={}", PeerUrl::localhost(*port)))
        .collect::<Vec<_>>()
        .join(",");
    let initial_cluster = parse_initial_cluster(&initial_cluster).map_err(|e| e.to_string())?;
    let mut configs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut config = ServerConfig::new(name, args.data_dir.join(name));
        let client = PeerUrl::localhost(args.client_ports[i]);
        let peer = PeerUrl::localhost(args.peer_ports[i]);
        config.listen_client_urls = vec![client.clone()];
        config.advertise_client_urls = vec![client];
        config.listen_peer_urls = vec![peer.clone()];
        config.initial_advertise_peer_urls = vec![peer];
        config.initial_cluster = initial_cluster.clone();
        config.initial_cluster_state = InitialClusterState::New;
        config.initial_cluster_token = "raftwood-dev".into();
        config.heartbeat_interval_ms = args.heartbeat_interval;
        config.election_timeout_ms = args.election_timeout;
        config.log_timings_seconds = args.log_timings_seconds;
        config.validate().map_err(|e| e.to_string())?;
        configs.push(config);
    }
    Ok(configs)
}

/// Starts the cluster, prints how to reach it, runs until Ctrl-C.
pub async fn run(args: DevArgs) -> Result<(), String> {
    let configs = member_configs(&args)?;
    let mut nodes: Vec<RunningNode> = Vec::new();
    for config in configs.iter().cloned() {
        let name = config.name.clone();
        match raftwood_server::start(config).await {
            Ok(node) => nodes.push(node),
            Err(error) => {
                for node in nodes {
                    node.shutdown().await;
                }
                return Err(format!("starting {name}: {error}"));
            }
        }
    }
    let endpoints = configs
        .iter()
        .map(|c| raftwood_server::config::join_urls(&c.advertise_client_urls))
        .collect::<Vec<_>>()
        .join(",");
    say("raftwood dev: a three-member cluster on loopback");
    for config in &configs {
        say(&format!(
            "  {}  client {}  peer {}  data {}",
            config.name,
            raftwood_server::config::join_urls(&config.advertise_client_urls),
            raftwood_server::config::join_urls(&config.initial_advertise_peer_urls),
            config.data_dir.display()
        ));
    }
    say("");
    say("Talk to it with etcdctl (Debian package etcd-client):");
    say(&format!(
        "  ETCDCTL_API=3 etcdctl --endpoints={endpoints} put hello world"
    ));
    say(&format!(
        "  ETCDCTL_API=3 etcdctl --endpoints={endpoints} get hello"
    ));
    say(&format!(
        "  ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table"
    ));
    say("Ctrl-C stops the cluster; running `raftwood dev` again reuses the data.");

    let failed = {
        let watches: Vec<_> = nodes.iter().map(|n| n.context.status.clone()).collect();
        async move {
            let mut watches = watches;
            loop {
                for watch in &watches {
                    if watch.borrow().failed {
                        return;
                    }
                }
                let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
                if futures_select_all(changes).await.is_err() {
                    return;
                }
            }
        }
    };
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        () = failed => Err("a member stopped after a storage failure".to_string()),
    };
    say("raftwood dev: stopping");
    for node in nodes {
        if let Some(failure) = node.shutdown().await {
            eprintln!("raftwood dev: {failure}");
        }
    }
    outcome
}

/// Waits for the first of several futures.
async fn futures_select_all<F, T>(futures: impl Iterator<Item = F>) -> T
where
    F: std::future::Future<Output = T> + Unpin,
{
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(value) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(value);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Prints a line to stdout. A closed stdout (the reader went away, as when
/// piped into `head`) must not bring the cluster down, so errors are
/// ignored — `println!` would panic.
fn say(line: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
