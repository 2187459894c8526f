//! The raftwood command: `serve` runs one member, `dev` a local
//! three-member cluster.

mod bench;
mod dev;
mod go_duration;
mod serve_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::dev::DevArgs;
use crate::serve_args::ServeArgs;

/// The server allocates and frees small buffers at a high rate on several
/// threads at once (request and response messages, log entries, memtable
/// keys): under `put, 100 clients` glibc's malloc and free were about a
/// sixth of the CPU. mimalloc's per-thread free lists make them cheaper
/// (measured in docs/benchmarks.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// raftwood: a distributed, strongly consistent key-value store speaking
/// etcd's v3 API.
#[derive(Debug, Parser)]
#[command(name = "raftwood", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one member (flags as etcd's).
    Serve(Box<ServeArgs>),
    /// Run a three-member cluster on loopback, data under ./raftwood-data.
    Dev(DevArgs),
    /// Load generator for etcd's v3 API (raftwood or etcd), after etcd's `benchmark`.
    Bench(Box<bench::BenchArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAFTWOOD_LOG")
                // Warnings, and the timings a user asked for with
                // --log-timings-seconds.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,raftwood::timings=info")
                }),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs redirected to a file stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raftwood: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Bench(args) => bench::run(*args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("raftwood: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.to_config().map_err(|e| e.to_string())?;
    let name = config.name.clone();
    let mut node = raftwood_server::start(config)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "raftwood: member {name} ({:x}) serving clients on {}",
        node.context.member_id,
        node.client_addresses
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            eprintln!("raftwood: stopping");
            match node.shutdown().await {
                None => Ok(()),
                Some(failure) => Err(failure),
            }
        }
        reason = node.wait_failed() => {
            let removed = node.context.status.borrow().removed;
            let failure = node.shutdown().await;
            if removed {
                // As etcd: a removed member exits cleanly, so that a
                // supervisor does not restart it into a cluster that will
                // refuse it.
                eprintln!("raftwood: the member has been permanently removed from the cluster");
                eprintln!("raftwood: the data-dir used by this member must be removed");
                return Ok(());
            }
            Err(format!("member stopped: {}", failure.unwrap_or(reason)))
        }
    }
}
