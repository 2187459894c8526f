//! Rules about what source files may mention, for invariants that the
//! dependency graph cannot see (the standard library is not a dependency).

use std::path::{Path, PathBuf};

use crate::Violation;

/// Within `crate_dir/src` (or only its `only_dirs`, if any are named), no
/// file outside `allowed_dirs` may contain any of the `forbidden` strings
/// (outside comments).
#[derive(Debug, Clone)]
pub struct SourceRule {
    /// The crate (folder under `crates/`) the rule applies to.
    pub crate_name: &'static str,
    /// The rule in words.
    pub description: &'static str,
    /// Text that must not appear in code.
    pub forbidden: Vec<&'static str>,
    /// Paths relative to `src/` where the text is allowed (the seam itself).
    pub allowed_dirs: Vec<&'static str>,
    /// Paths relative to `src/` the rule is limited to; empty: all of it.
    pub only_dirs: Vec<&'static str>,
}

/// The source invariants of ARCHITECTURE.md.
pub fn source_rules() -> Vec<SourceRule> {
    vec![
        SourceRule {
            crate_name: "raftwood-raft",
            description: "the raft core does no I/O, reads no clock and starts no thread: time enters as tick(), randomness from a seeded generator",
            forbidden: vec![
                "std::fs",
                "std::net",
                "std::thread",
                "std::time::Instant",
                "std::time::SystemTime",
                "Instant::now",
                "SystemTime::now",
                "thread_rng",
                "rand::rng()",
                "std::process",
            ],
            allowed_dirs: vec![],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-lsm",
            description: "the storage engine reaches the disk only through its FileSystem seam (src/fs/), and never the network",
            forbidden: vec!["std::fs", "std::net", "std::os::unix::fs"],
            allowed_dirs: vec!["fs"],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-bbolt",
            description: "the bbolt file format crate reads and writes through the sources and sinks it is given, never the network",
            forbidden: vec!["std::net"],
            allowed_dirs: vec![],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-log",
            description: "the raft log store reaches the disk only through the storage engine's FileSystem seam, so the crash-modelling filesystem can test it",
            forbidden: vec!["std::fs", "std::net", "std::os::unix::fs"],
            allowed_dirs: vec![],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-sim",
            description: "the simulator is deterministic: no wall clock, no global randomness, no real I/O inside a simulated run",
            forbidden: vec![
                "std::net",
                "Instant::now",
                "SystemTime::now",
                "thread_rng",
                "rand::rng()",
                // The server's drive loop is run step by step, never on a
                // runtime or a socket.
                "tokio::runtime",
                "tokio::spawn",
                "tokio::task",
                "tokio::time",
                "tokio::net",
                "block_on",
                ".await",
                "raftwood_server::node",
                "raftwood_server::grpc",
                "PeerTransport",
                "run_persistence",
                "run_apply",
            ],
            allowed_dirs: vec!["bin"],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-server",
            description: "a member reaches its files only through the storage engine's FileSystem seam (bootstrap, the threads, snapshots, the transport's reassembly), so the crash-modelling filesystem can cut power inside any step",
            forbidden: vec!["std::fs", "tokio::fs", "std::os::unix::fs"],
            allowed_dirs: vec![],
            only_dirs: vec![],
        },
        SourceRule {
            crate_name: "raftwood-server",
            description: "the drive loop (src/driver/) does no I/O of its own: no disk, no socket, no thread, no clock; its effects leave through its seams (LogStorage, MessageSink, SnapshotFiles, the worker channels) and time arrives as ticks, so the simulator can drive it",
            forbidden: vec![
                "std::fs",
                "tokio::fs",
                "std::net",
                "tokio::net",
                "std::thread",
                "tokio::spawn",
                "tokio::task",
                "Instant::now",
                "SystemTime::now",
                "std::process",
            ],
            allowed_dirs: vec![],
            only_dirs: vec!["driver"],
        },
    ]
}

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks the rules against `crates_dir/<crate>/src`. Crates that do not
/// exist yet are skipped; the names of the checked ones are returned.
pub fn check_sources(
    crates_dir: &Path,
    rules: &[SourceRule],
) -> std::io::Result<(Vec<Violation>, Vec<&'static str>)> {
    let mut violations = Vec::new();
    let mut applied = Vec::new();
    for rule in rules {
        let src = crates_dir.join(rule.crate_name).join("src");
        if !src.is_dir() {
            continue;
        }
        applied.push(rule.crate_name);
        let mut files = Vec::new();
        rust_files(&src, &mut files)?;
        files.sort();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap_or(&file);
            let in_scope =
                rule.only_dirs.is_empty() || rule.only_dirs.iter().any(|d| relative.starts_with(d));
            if !in_scope {
                continue;
            }
            let allowed = rule
                .allowed_dirs
                .iter()
                .any(|dir| relative.starts_with(dir));
            if allowed {
                continue;
            }
            let text = std::fs::read_to_string(&file)?;
            for (line_number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for needle in &rule.forbidden {
                    if code.contains(needle) {
                        violations.push(Violation {
                            crate_name: rule.crate_name.to_string(),
                            rule: rule.description.to_string(),
                            found: format!(
                                "{}:{} uses `{needle}`",
                                file.display(),
                                line_number + 1
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok((violations, applied))
}
