#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! A member that runs out of file descriptors waits for them instead of
//! spinning. Its listener stays readable while connections wait in the
//! backlog, so an accept loop that retries a failed accept at once burns
//! a core (and starves the member's ticks) until descriptors come back.
//! The member here is a real `raftwood serve` under `prlimit`, because the
//! descriptor limit is per process.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftwood_server::proto::etcdserverpb::RangeRequest;
use raftwood_server::proto::etcdserverpb::kv_client::KvClient;

/// The member's descriptor limit: enough to start, few enough to run out.
const DESCRIPTOR_LIMIT: u64 = 256;

/// A `raftwood serve` of one member, killed on drop.
struct Member {
    child: Child,
    client_port: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_member(data_dir: &Path) -> Member {
    let ports = support::free_ports(2);
    let client = format!("http://127.0.0.1:{}", ports[0]);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let child = Command::new("prlimit")
        .arg(format!("--nofile={DESCRIPTOR_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_raftwood"))
        .args(["serve", "--name", "a", "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("a={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs raftwood serve");
    Member {
        child,
        client_port: ports[0],
    }
}

/// True once a Range through the member's client port succeeds.
async fn serves(port: u16) -> bool {
    let Ok(mut client) = KvClient::connect(format!("http://127.0.0.1:{port}")).await else {
        return false;
    };
    let range = RangeRequest {
        key: b"k".to_vec(),
        serializable: true,
        ..RangeRequest::default()
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), client.range(range)).await;
    matches!(answer, Ok(Ok(_)))
}

async fn wait_until_it_serves(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while !serves(port).await {
        assert!(
            Instant::now() < deadline,
            "the member did not serve in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The CPU time `pid` has used (user and system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 14th and 15th fields of the line, in clock ticks.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Linux reports these in USER_HZ, 100 per second on every platform.
    Duration::from_millis(ticks * 10)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_out_of_descriptors_waits_for_them_and_then_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let member = start_member(dir.path());
    let pid = member.child.id();
    wait_until_it_serves(member.client_port, Duration::from_secs(30)).await;

    // More connections than the member has descriptors left: it accepts
    // until it runs out, the rest wait in the listener's backlog.
    let spare = DESCRIPTOR_LIMIT as usize - open_descriptors(pid);
    let connections: Vec<TcpStream> = (0..spare + 64)
        .map(|_| TcpStream::connect(("127.0.0.1", member.client_port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        open_descriptors(pid),
        DESCRIPTOR_LIMIT as usize,
        "the member ran out of descriptors"
    );

    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_time(pid) - before;
    // Spinning on accept uses all of a core (3 s here); waiting, almost none.
    assert!(
        used < Duration::from_millis(600),
        "the member used {used:?} of CPU in 3 s while out of descriptors"
    );

    drop(connections);
    wait_until_it_serves(member.client_port, Duration::from_secs(10)).await;
}
