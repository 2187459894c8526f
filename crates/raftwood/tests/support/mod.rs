//! Starting `raftwood dev` for the binary's integration tests.

#![allow(dead_code, reason = "each test binary uses part of the support module")]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `count` ports free at the time of asking.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A running `raftwood dev`, killed on drop.
pub struct DevCluster {
    pub child: Child,
    pub client_ports: Vec<u16>,
    /// Everything printed before the cluster said how to stop it.
    pub banner: String,
}

impl DevCluster {
    /// The client URLs, `http://127.0.0.1:port`.
    pub fn urls(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
    }

    /// The client addresses, `127.0.0.1:port,...`.
    pub fn addresses(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `raftwood dev` on the given ports and waits for its banner.
pub fn start_dev(data_dir: &Path, client: &[u16], peer: &[u16]) -> DevCluster {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftwood"))
        .arg("dev")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--client-ports")
        .arg(join(client))
        .arg("--peer-ports")
        .arg(join(peer))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = String::new();
    loop {
        let line = lines
            .next()
            .expect("raftwood dev exited before printing its banner")
            .unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    DevCluster {
        child,
        client_ports: client.to_vec(),
        banner,
    }
}
