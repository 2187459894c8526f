//! Debian's etcdctl (package etcd-client, 3.4) against `raftwood dev`: the
//! same commands an etcd user runs, with the output etcd gives.
//!
//! The test installs etcd-client with apt-get when etcdctl is missing and
//! fails loudly if it cannot; it never passes by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{DevCluster, free_ports};

fn ensure_etcdctl() {
    if Command::new("etcdctl").arg("version").output().is_ok() {
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "etcd-client"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        // The package index may be stale on a fresh machine.
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-q", "etcd-client"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("running apt-get");
        assert!(status.success(), "apt-get install etcd-client failed");
    }
    let output = Command::new("etcdctl").arg("version").output();
    assert!(
        matches!(output, Ok(ref o) if o.status.success()),
        "etcdctl is not runnable after installing etcd-client: {output:?}"
    );
}

/// A running `raftwood dev` whose leader accepts writes.
struct Cluster {
    dev: DevCluster,
    endpoints: Vec<String>,
}

fn start_dev(data_dir: &Path, client: &[u16], peer: &[u16]) -> Cluster {
    let dev = support::start_dev(data_dir, client, peer);
    assert!(
        dev.banner.contains("etcdctl --endpoints="),
        "{}",
        dev.banner
    );
    let endpoints = dev.urls();
    // Wait until a leader is elected and writes succeed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = etcdctl_raw(&endpoints[..1], &["put", "warmup", "1"], None);
        if output.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded within 30 s: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Cluster { dev, endpoints }
}

fn etcdctl_raw(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn etcdctl(endpoints: &[String], args: &[&str]) -> String {
    let output = etcdctl_raw(endpoints, args, None);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn etcdctl_works_against_raftwood_dev_and_data_survives_a_restart() {
    ensure_etcdctl();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (client, peer) = ports.split_at(3);
    let cluster = start_dev(dir.path(), client, peer);
    let all = cluster.endpoints.clone();
    let one = |i: usize| vec![all[i].clone()];

    // Writes through every member (followers forward to the leader), and
    // reads of each from every member (linearizable by default).
    for i in 0..3 {
        assert_eq!(
            etcdctl(&one(i), &["put", &format!("k{i}"), &format!("v{i}")]),
            "OK\n"
        );
    }
    for i in 0..3 {
        assert_eq!(
            etcdctl(&one(i), &["get", "k0", "k3"]),
            "k0\nv0\nk1\nv1\nk2\nv2\n",
            "member {i}"
        );
    }
    assert_eq!(
        etcdctl(&one(1), &["get", "k", "--prefix", "--keys-only"]),
        "k0\n\nk1\n\nk2\n\n"
    );
    assert_eq!(
        etcdctl(
            &one(2),
            &[
                "get",
                "k",
                "--prefix",
                "--limit=1",
                "--sort-by=KEY",
                "--order=DESCEND"
            ]
        ),
        "k2\nv2\n"
    );
    assert_eq!(
        etcdctl(&one(2), &["get", "k1", "--consistency=s"]),
        "k1\nv1\n"
    );

    // Revisions: an overwrite, then a read of the past.
    let json = etcdctl(&one(0), &["put", "k1", "v1b", "-w", "json"]);
    let revision: i64 = json
        .split("\"revision\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {json}"));
    assert_eq!(etcdctl(&one(1), &["get", "k1"]), "k1\nv1b\n");
    assert_eq!(
        etcdctl(&one(1), &["get", "k1", &format!("--rev={}", revision - 1)]),
        "k1\nv1\n"
    );

    // Delete, with the count etcd prints.
    assert_eq!(etcdctl(&one(2), &["del", "k2"]), "1\n");
    assert_eq!(etcdctl(&one(0), &["get", "k2"]), "");

    // A transaction, read from stdin in etcdctl's interactive format.
    let txn = etcdctl_raw(
        &one(1),
        &["txn"],
        Some("value(\"k0\") = \"v0\"\n\nput k0 swapped\n\nput k0 not-swapped\n\n"),
    );
    assert!(
        txn.status.success(),
        "{}",
        String::from_utf8_lossy(&txn.stderr)
    );
    assert_eq!(String::from_utf8(txn.stdout).unwrap(), "SUCCESS\n\nOK\n");
    assert_eq!(etcdctl(&one(0), &["get", "k0"]), "k0\nswapped\n");

    // Compaction, and etcd's error for reading below it.
    assert_eq!(
        etcdctl(&one(0), &["compaction", &revision.to_string()]),
        format!("compacted revision {revision}\n")
    );
    let old = etcdctl_raw(
        &one(1),
        &["get", "k1", &format!("--rev={}", revision - 1)],
        None,
    );
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );

    // Cluster view: every member listed.
    let members = etcdctl(&one(0), &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    for name in ["infra1", "infra2", "infra3"] {
        assert!(members.contains(name), "{members}");
    }
    // Per-endpoint commands (etcdctl dials each endpoint with an authority
    // of "http://host:port"): one leader, every member healthy.
    let status = etcdctl(&all, &["endpoint", "status"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    assert_eq!(
        status.matches(", true, false,").count(),
        1,
        "exactly one leader: {status}"
    );
    // etcdctl 3.4 prints health to stderr (as it does against etcd).
    let health = etcdctl_raw(&all, &["endpoint", "health"], None);
    let health_text = String::from_utf8_lossy(&health.stderr);
    assert!(health.status.success(), "{health_text}");
    assert_eq!(
        health_text.matches("is healthy").count(),
        3,
        "{health_text}"
    );
    let hashes = etcdctl(&all, &["endpoint", "hashkv"]);
    assert_eq!(hashes.lines().count(), 3, "{hashes}");
    // At a past revision too, and the same on every member (etcd's hash:
    // see raftwood-kv's tests/hash_kv.rs for the comparison with etcd).
    let put = etcdctl(&one(0), &["put", "hashed", "x", "-w", "json"]);
    let revision = put
        .split("\"revision\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no revision in {put}"))
        .to_owned();
    etcdctl(&one(0), &["put", "hashed", "y"]);
    let hash_args = ["endpoint", "hashkv", &format!("--rev={revision}")];
    // A follower that has not applied the revision yet answers "future
    // revision", as etcd's would.
    wait_until("every member applied the revision", || {
        etcdctl_raw(&all, &hash_args, None).status.success()
    });
    let at_two = etcdctl(&all, &hash_args);
    let values: Vec<&str> = at_two
        .lines()
        .map(|line| line.rsplit(", ").next().unwrap_or_default())
        .collect();
    assert_eq!(values.len(), 3, "{at_two}");
    assert!(values.iter().all(|v| *v == values[0]), "{at_two}");
    assert!(values[0].parse::<u32>().is_ok(), "{at_two}");

    // Defragment, one member at a time, as etcdctl reports it from etcd.
    let defragmented = etcdctl(&one(2), &["defrag"]);
    assert_eq!(
        defragmented,
        format!("Finished defragmenting etcd member[{}]\n", one(2)[0])
    );

    // Leases: grant, attach, time-to-live with keys, keep-alive, revoke.
    let granted = etcdctl(&one(1), &["lease", "grant", "100"]);
    let lease_id = granted
        .strip_prefix("lease ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected grant output {granted:?}"))
        .to_string();
    assert_eq!(
        granted,
        format!("lease {lease_id} granted with TTL(100s)\n")
    );
    assert_eq!(
        etcdctl(
            &one(0),
            &["put", "lk", "lv", &format!("--lease={lease_id}")]
        ),
        "OK\n"
    );
    let ttl = etcdctl(&one(2), &["lease", "timetolive", &lease_id, "--keys"]);
    assert!(
        ttl.starts_with(&format!(
            "lease {lease_id} granted with TTL(100s), remaining("
        )) && ttl.ends_with("s), attached keys([lk])\n"),
        "{ttl}"
    );
    let kept = etcdctl(&one(2), &["lease", "keep-alive", "--once", &lease_id]);
    assert_eq!(kept, format!("lease {lease_id} keepalived with TTL(100)\n"));
    assert_eq!(
        etcdctl(&one(1), &["lease", "revoke", &lease_id]),
        format!("lease {lease_id} revoked\n")
    );
    assert_eq!(etcdctl(&one(0), &["get", "lk"]), "");

    // Watch: etcdctl prints each event as type, key, value.
    let mut watcher = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", all[2]))
        .args(["watch", "w", "--prefix"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    // The watch is in place once etcdctl is connected; retry the put until
    // its event shows up, so a slow start cannot make the test flaky.
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while printed.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "etcdctl watch printed {printed:?}"
        );
        if printed.is_empty() {
            etcdctl(&one(0), &["put", "w1", "watched"]);
        }
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(300)) {
            printed.push(line);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(&printed[..3], ["PUT", "w1", "watched"], "{printed:?}");

    // Restart: everything acknowledged is still there.
    drop(cluster);
    let cluster = start_dev(dir.path(), client, peer);
    assert_eq!(
        etcdctl(&cluster.endpoints, &["get", "k", "--prefix"]),
        "k0\nswapped\nk1\nv1b\n"
    );
    assert_eq!(etcdctl(&cluster.endpoints, &["get", "w1"]), "w1\nwatched\n");

    // Ctrl-C stops `raftwood dev` cleanly (exit status 0, promptly).
    let mut cluster = cluster;
    let pid = cluster.dev.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = cluster.dev.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "raftwood dev did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "raftwood dev exited with {status}");
}

/// The last line etcdctl printed on stderr: etcd's error text, after the
/// client's retry warnings (as `tests/fixtures/etcd-3.4-membership.txt`
/// shows etcd's own answers).
fn etcdctl_error(endpoints: &[String], args: &[&str]) -> String {
    let output = etcdctl_raw(endpoints, args, None);
    assert_eq!(
        output.status.code(),
        Some(1),
        "etcdctl {args:?} did not fail with 1"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    stderr.lines().last().unwrap_or_default().to_owned()
}

/// `member list`'s line for each member, by id.
fn member_lines(endpoints: &[String]) -> Vec<String> {
    etcdctl(endpoints, &["member", "list"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn etcdctl_adds_promotes_and_removes_a_member_as_with_etcd() {
    ensure_etcdctl();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let cluster = start_dev(&dir.path().join("dev"), &ports[0..3], &ports[3..6]);
    let endpoints = cluster.endpoints.clone();
    let (d_client, d_peer) = (ports[6], ports[7]);

    // Three started voters, in etcd's line format, sorted by id.
    let started = |line: &str| {
        let fields: Vec<&str> = line.split(", ").collect();
        fields.len() == 6 && fields[1] == "started" && fields[5] == "false"
    };
    wait_until("every member published its name", || {
        let lines = member_lines(&endpoints);
        lines.len() == 3 && lines.iter().all(|l| started(l))
    });

    // The learner is added; etcdctl prints etcd's lines for starting it.
    let d_url = format!("http://127.0.0.1:{d_peer}");
    let added = etcdctl(
        &endpoints,
        &[
            "member",
            "add",
            "d",
            &format!("--peer-urls={d_url}"),
            "--learner",
        ],
    );
    let lines: Vec<&str> = added.lines().collect();
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        (words[0], words[2], words[3], words[4]),
        ("Member", "added", "to", "cluster"),
        "{added}"
    );
    let d_id = words[1].to_owned();
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "ETCD_NAME=\"d\"");
    let initial_cluster = lines[3]
        .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap();
    assert!(initial_cluster.contains(&format!("d={d_url}")), "{added}");
    assert_eq!(
        lines[4],
        format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{d_url}\"")
    );
    assert_eq!(lines[5], "ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    assert!(
        member_lines(&endpoints).contains(&format!("{d_id}, unstarted, , {d_url}, , true")),
        "the unstarted learner as etcd prints it"
    );

    // etcd's refusals, word for word.
    let spare = format!("--peer-urls=http://127.0.0.1:{}", ports[5] + 1000);
    for (args, text) in [
        (
            vec!["member", "add", "e", spare.as_str(), "--learner"],
            "too many learner members in cluster",
        ),
        (
            vec!["member", "add", "x", &format!("--peer-urls={d_url}")],
            "Peer URLs already exists",
        ),
        (
            vec!["member", "promote", &d_id],
            "can only promote a learner member which is in sync with leader",
        ),
        (vec!["member", "remove", "1234"], "member not found"),
        (
            vec!["member", "update", "1234", spare.as_str()],
            "member not found",
        ),
    ] {
        assert_eq!(
            etcdctl_error(&endpoints, &args),
            format!("Error: etcdserver: {text}"),
            "{args:?}"
        );
    }

    // d starts as etcdctl said, catches up, publishes its name.
    let mut d = Command::new(env!("CARGO_BIN_EXE_raftwood"))
        .args(["serve", "--name", "d", "--data-dir"])
        .arg(dir.path().join("d"))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{d_client}"))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{d_client}"
        ))
        .arg(format!("--listen-peer-urls={d_url}"))
        .arg(format!("--initial-advertise-peer-urls={d_url}"))
        .arg(format!("--initial-cluster={initial_cluster}"))
        .arg("--initial-cluster-state=existing")
        .arg("--initial-cluster-token=raftwood-dev")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("d started", || {
        member_lines(&endpoints).contains(&format!(
            "{d_id}, started, d, {d_url}, http://127.0.0.1:{d_client}, true"
        ))
    });
    // On the learner alone, as etcd: a write refused, a serializable read
    // served (the fixture's "via learner d" blocks).
    let d_only = [format!("http://127.0.0.1:{d_client}")];
    assert_eq!(
        etcdctl_error(&d_only, &["put", "foo", "bar"]),
        "Error: etcdserver: rpc not supported for learner"
    );
    assert_eq!(etcdctl(&d_only, &["get", "foo", "--consistency=s"]), "");
    let mut promoted = String::new();
    wait_until("d promoted", || {
        let output = etcdctl_raw(&endpoints, &["member", "promote", &d_id], None);
        promoted = String::from_utf8_lossy(&output.stdout).into_owned();
        output.status.success()
    });
    assert!(
        promoted.starts_with(&format!("Member {d_id} promoted in cluster ")),
        "{promoted}"
    );
    let d_endpoint = vec![format!("http://127.0.0.1:{d_client}")];
    etcdctl(&d_endpoint, &["put", "via-d", "yes"]);
    assert_eq!(
        etcdctl(&endpoints, &["get", "via-d", "--print-value-only"]),
        "yes\n"
    );

    // Removed, d exits by itself with status 0 and etcd's words.
    let removed = etcdctl(&endpoints, &["member", "remove", &d_id]);
    assert!(
        removed.starts_with(&format!("Member {d_id} removed from cluster ")),
        "{removed}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = d.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = d.kill();
            panic!("the removed member did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut d.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        stderr.contains("permanently removed from the cluster"),
        "{stderr}"
    );
    assert_eq!(member_lines(&endpoints).len(), 3);
    drop(cluster);
}
