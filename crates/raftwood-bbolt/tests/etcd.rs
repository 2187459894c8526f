//! Against the real thing: a snapshot etcd 3.4.23 wrote (the fixture, made
//! by tests/fixtures/make-etcd-snapshot.sh) reads completely, and a file
//! this crate writes is one etcd's own tools accept — `etcdctl snapshot
//! status` (bbolt's integrity check and a walk of every bucket) and
//! `etcdctl snapshot restore`, then etcd 3.4.23 serving from it.
//!
//! The tests install Debian's etcd-server and etcd-client with apt-get when
//! etcd or etcdctl is missing, and fail loudly if they cannot; they never
//! pass by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{Cursor as IoCursor, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ModelBuilder, Node, Tree};
use raftwood_bbolt::{BucketRoot, NO_FREELIST, Reader, Value, Writer};

const SHA256_LEN: usize = 32;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/etcd-3.4.23.snapshot")
}

fn fixture() -> Vec<u8> {
    std::fs::read(fixture_path()).unwrap()
}

/// Installs etcd and etcdctl once per test binary (tests run in parallel;
/// apt-get takes a lock).
fn ensure_etcd_tools() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_etcd_tools);
}

fn install_etcd_tools() {
    let runs = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let present = || runs("etcd", "--version") && runs("etcdctl", "version");
    if present() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "etcd-server", "etcd-client"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !matches!(install(), Ok(s) if s.success()) {
        // The package index may be stale on a fresh machine.
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        assert!(
            install().expect("running apt-get").success(),
            "apt-get install etcd-server etcd-client failed"
        );
    }
    assert!(
        present(),
        "etcd or etcdctl is not runnable after installing them"
    );
}

fn etcdctl(args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .expect("running etcdctl")
}

/// What `etcdctl snapshot status -w json` reports.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    hash: u64,
    revision: u64,
    total_key: u64,
    total_size: u64,
}

fn snapshot_status(path: &Path) -> Status {
    let output = etcdctl(&["snapshot", "status", path.to_str().unwrap(), "-w", "json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "etcdctl snapshot status failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Status {
        hash: json_number(&stdout, "hash"),
        revision: json_number(&stdout, "revision"),
        total_key: json_number(&stdout, "totalKey"),
        total_size: json_number(&stdout, "totalSize"),
    }
}

/// The number after `"field":` in a flat JSON object.
fn json_number(json: &str, field: &str) -> u64 {
    let start = json
        .find(&format!("\"{field}\":"))
        .unwrap_or_else(|| panic!("no {field} in {json}"))
        + field.len()
        + 3;
    json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// What etcdctl's status computes, from this crate's reading: the CRC-32C
/// of every top-level bucket name followed by its keys and values, the
/// key count over all buckets, the main revision of the last key in "key".
fn status_of(model: &Tree, data_len: u64) -> Status {
    let mut hash = 0;
    let (mut revision, mut total_key) = (0, 0);
    for (name, node) in model {
        hash = crc32c::crc32c_append(hash, name);
        let Node::Bucket(bucket) = node else {
            panic!("a plain key at the root")
        };
        for (key, value) in bucket {
            let Node::Data(value) = value else {
                panic!("etcd nests no buckets")
            };
            hash = crc32c::crc32c_append(crc32c::crc32c_append(hash, key), value);
            total_key += 1;
            if name == b"key" {
                revision = u64::from_be_bytes(key[..8].try_into().unwrap());
            }
        }
    }
    Status {
        hash: u64::from(hash),
        revision,
        total_key,
        total_size: data_len,
    }
}

fn read_model(file: &[u8]) -> (Tree, u64) {
    let reader = Reader::open(file).unwrap();
    let mut model = ModelBuilder::default();
    reader.walk(&mut model).unwrap();
    (model.into_root(), reader.data_len())
}

fn sha256(bytes: &[u8]) -> [u8; SHA256_LEN] {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let hex = String::from_utf8(output.stdout).unwrap();
    let mut digest = [0; SHA256_LEN];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    digest
}

/// Copies the fixture through the reader into the writer, and appends
/// etcd's SHA-256 trailer, as `etcdctl snapshot save` does.
fn rewrite_fixture() -> Vec<u8> {
    let original = fixture();
    let reader = Reader::open(original.as_slice()).unwrap();
    let mut writer = Writer::new(IoCursor::new(Vec::new())).unwrap();
    reader.walk(&mut writer).unwrap();
    let mut file = writer.finish().unwrap().into_inner();
    let digest = sha256(&file);
    file.extend_from_slice(&digest);
    file
}

#[test]
fn every_bucket_of_an_etcd_snapshot_reads() {
    let file = fixture();
    let reader = Reader::open(file.as_slice()).unwrap();
    assert_eq!(reader.page_size(), 4096);
    assert_eq!(
        reader.meta().freelist,
        NO_FREELIST,
        "etcd 3.4 keeps no freelist on disk"
    );
    assert_eq!(
        reader.data_len() as usize + SHA256_LEN,
        file.len(),
        "bbolt data, then the trailer"
    );
    let data_len = reader.data_len() as usize;
    assert_eq!(
        sha256(&file[..data_len]),
        file[data_len..],
        "the trailer is the data's SHA-256"
    );

    let (model, _) = read_model(&file);
    let names: Vec<&[u8]> = model.keys().map(Vec::as_slice).collect();
    let expected: [&[u8]; 10] = [
        b"alarm",
        b"auth",
        b"authRoles",
        b"authUsers",
        b"cluster",
        b"key",
        b"lease",
        b"members",
        b"members_removed",
        b"meta",
    ];
    assert_eq!(names, expected);
    let bucket = |name: &[u8]| match &model[name] {
        Node::Bucket(bucket) => bucket,
        Node::Data(_) => panic!("not a bucket"),
    };
    assert_eq!(bucket(b"lease").len(), 1, "the one lease granted");
    assert_eq!(bucket(b"members").len(), 1, "one member");
    assert!(bucket(b"meta").contains_key(b"consistent_index".as_slice()));
    assert!(bucket(b"meta").contains_key(b"finishedCompactRev".as_slice()));
    let large = vec![b'L'; 10_000];
    let holds_large =
        |value: &Node| matches!(value, Node::Data(v) if v.windows(large.len()).any(|w| w == large));
    assert!(
        bucket(b"key").values().any(holds_large),
        "the 10,000-byte value spans overflow pages"
    );
}

#[test]
fn this_crates_reading_agrees_with_etcdctl_snapshot_status() {
    ensure_etcd_tools();
    let (model, data_len) = read_model(&fixture());
    assert_eq!(
        status_of(&model, data_len),
        snapshot_status(&fixture_path())
    );
}

#[test]
fn etcdctl_accepts_a_snapshot_this_crate_wrote() {
    ensure_etcd_tools();
    let dir = tempfile::tempdir().unwrap();
    let rewritten = dir.path().join("rewritten.snapshot");
    let file = rewrite_fixture();
    std::fs::write(&rewritten, &file).unwrap();

    let original = snapshot_status(&fixture_path());
    let status = snapshot_status(&rewritten);
    eprintln!("etcdctl snapshot status of the rewritten file: {status:?} (original {original:?})");
    assert_eq!(status.revision, original.revision);
    assert_eq!(status.total_key, original.total_key);
    assert_eq!(
        status.hash, original.hash,
        "same buckets, keys and values in the same order"
    );
    let (model, data_len) = read_model(&file);
    assert_eq!(status, status_of(&model, data_len));
}

/// A running etcd, killed on drop.
struct Etcd {
    child: Child,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn start_etcd(data_dir: &Path, client: u16, peer: u16, log: &Path) -> Etcd {
    let endpoint = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args([
            "--name",
            "restored",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .args([
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("restored={peer_url}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting etcd");
    let etcd = Etcd { child, endpoint };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&["--endpoints", &etcd.endpoint, "endpoint", "health"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    etcd
}

fn get(etcd: &Etcd, key: &str) -> String {
    let output = etcdctl(&[
        "--endpoints",
        &etcd.endpoint,
        "get",
        key,
        "--print-value-only",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn etcd_restores_and_serves_a_snapshot_this_crate_wrote() {
    ensure_etcd_tools();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("rewritten.snapshot");
    std::fs::write(&snapshot, rewrite_fixture()).unwrap();
    let data_dir = dir.path().join("data");
    let (client, peer) = free_ports();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let restore = etcdctl(&[
        "snapshot",
        "restore",
        snapshot.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--name",
        "restored",
        "--initial-cluster",
        &format!("restored={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ]);
    assert!(
        restore.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restore.stderr)
    );

    let etcd = start_etcd(&data_dir, client, peer, &dir.path().join("etcd.log"));
    assert_eq!(get(&etcd, "/fixture/key-100"), "value-100");
    assert_eq!(get(&etcd, "/fixture/key-025"), "overwritten-025");
    assert_eq!(
        get(&etcd, "/fixture/key-005"),
        "",
        "deleted before the snapshot"
    );
    assert_eq!(get(&etcd, "/fixture/large"), "L".repeat(10_000));
    assert!(get(&etcd, "/fixture/leased").starts_with("held by lease"));
    let leases = etcdctl(&["--endpoints", &etcd.endpoint, "lease", "list"]);
    assert!(
        String::from_utf8_lossy(&leases.stdout).contains("found 1 leases"),
        "{leases:?}"
    );
    // The restored store takes writes (bbolt opened our file read-write).
    let put = etcdctl(&[
        "--endpoints",
        &etcd.endpoint,
        "put",
        "/after/restore",
        "yes",
    ]);
    assert!(put.status.success());
    assert_eq!(get(&etcd, "/after/restore"), "yes");
}

/// Which top-level buckets a file keeps inline.
fn inline_buckets(file: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let reader = Reader::open(file).unwrap();
    reader
        .cursor(&reader.root_bucket())
        .map(|entry| {
            let entry = entry.unwrap();
            let Value::Bucket(bucket) = entry.value else {
                panic!("a plain key at the root")
            };
            (entry.key, matches!(bucket.root, BucketRoot::Inline(_)))
        })
        .collect()
}

#[test]
fn the_writer_inlines_exactly_the_buckets_etcd_inlined() {
    let original = inline_buckets(&fixture());
    assert!(
        original.iter().filter(|(_, inline)| *inline).count() >= 8,
        "{original:?}"
    );
    assert_eq!(inline_buckets(&rewrite_fixture()), original);
}
