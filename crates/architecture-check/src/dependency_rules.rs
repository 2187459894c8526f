//! Rules about which crates may depend on which, checked over the resolved
//! graph from `cargo metadata` (normal and build dependencies, transitively;
//! dev-dependencies are for tests and may use anything).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cargo_metadata::{DependencyKind, Metadata, PackageId};

use crate::Violation;

/// Crates that bring an async runtime or networking.
const ASYNC_AND_NETWORK: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures",
    "futures-util",
    "futures-executor",
    "mio",
    "socket2",
    "hyper",
    "tonic",
    "reqwest",
    "h2",
    "axum",
];

/// Crates whose purpose is filesystem access.
const FILESYSTEM: &[&str] = &["tempfile", "fs2", "fs-err", "memmap2", "walkdir", "fs4"];

/// A crate that must not (transitively) depend on any of `forbidden`.
#[derive(Debug, Clone)]
pub struct DependencyRule {
    /// The workspace crate the rule constrains.
    pub crate_name: &'static str,
    /// The rule in words, as printed on violation.
    pub description: &'static str,
    /// Exact package names that must not appear among its dependencies.
    pub forbidden: Vec<&'static str>,
    /// Package-name prefixes that must not appear (e.g. other raftwood crates).
    pub forbidden_prefixes: Vec<&'static str>,
    /// Packages the crate may use whose own dependencies are not followed:
    /// what they bring in is governed by their own rule (and, for the
    /// simulator, by a source rule on how it uses them).
    pub not_through: Vec<&'static str>,
}

/// The dependency invariants of ARCHITECTURE.md.
pub fn dependency_rules() -> Vec<DependencyRule> {
    let mut raft_forbidden: Vec<&'static str> = ASYNC_AND_NETWORK.to_vec();
    raft_forbidden.extend_from_slice(FILESYSTEM);
    vec![
        DependencyRule {
            crate_name: "raftwood-raft",
            description: "the raft core depends on no async runtime, no networking, no filesystem crate and no other raftwood crate",
            forbidden: raft_forbidden,
            forbidden_prefixes: vec!["raftwood-"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-lsm",
            description: "the storage engine depends on no other raftwood crate, no async runtime and no networking",
            forbidden: ASYNC_AND_NETWORK.to_vec(),
            forbidden_prefixes: vec!["raftwood-"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-bbolt",
            description: "the bbolt file format crate depends on no other raftwood crate, no async runtime and no networking: a library on its own",
            forbidden: ASYNC_AND_NETWORK.to_vec(),
            forbidden_prefixes: vec!["raftwood-"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-kv",
            description: "the state machine knows nothing of raft, the server, async runtimes or the network",
            forbidden: ASYNC_AND_NETWORK.to_vec(),
            forbidden_prefixes: vec!["raftwood-raft", "raftwood-server", "raftwood-sim"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-log",
            description: "the raft log store does its I/O through the storage engine's filesystem seam: no async runtime, no networking, no state machine or server",
            forbidden: ASYNC_AND_NETWORK.to_vec(),
            forbidden_prefixes: vec!["raftwood-kv", "raftwood-server", "raftwood-sim"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-server",
            description: "the server is driven by the binary and the simulator, never the other way round",
            forbidden: vec![],
            forbidden_prefixes: vec!["raftwood-sim"],
            not_through: vec![],
        },
        DependencyRule {
            crate_name: "raftwood-sim",
            description: "the simulator drives the cores and the server's drive loop deterministically: no async runtime, no networking of its own (the server and tokio's channel types are used, not followed; the source rule forbids running either)",
            forbidden: ASYNC_AND_NETWORK
                .iter()
                .copied()
                .filter(|name| *name != "tokio")
                .collect(),
            forbidden_prefixes: vec![],
            not_through: vec!["raftwood-server", "tokio"],
        },
    ]
}

/// Checks every rule whose crate is a workspace member. A rule naming a crate
/// that does not exist yet is not a violation (crates appear as their issues
/// land); the returned list says which rules were applied.
pub fn check_dependencies(
    metadata: &Metadata,
    rules: &[DependencyRule],
) -> (Vec<Violation>, Vec<&'static str>) {
    let packages: BTreeMap<&PackageId, &cargo_metadata::Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let Some(resolve) = &metadata.resolve else {
        return (
            vec![Violation {
                crate_name: "<workspace>".into(),
                rule: "cargo metadata must include the resolved graph".into(),
                found: "no resolve section".into(),
            }],
            Vec::new(),
        );
    };
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();

    let mut violations = Vec::new();
    let mut applied = Vec::new();
    for rule in rules {
        let Some(root) = metadata.workspace_members.iter().find(|id| {
            packages
                .get(id)
                .is_some_and(|p| p.name.as_str() == rule.crate_name)
        }) else {
            continue;
        };
        applied.push(rule.crate_name);

        // Breadth-first over non-dev edges, remembering how each package was
        // reached so the violation can print the whole path.
        let mut parent: BTreeMap<&PackageId, &PackageId> = BTreeMap::new();
        let mut seen: BTreeSet<&PackageId> = BTreeSet::from([root]);
        let mut queue = VecDeque::from([root]);
        while let Some(id) = queue.pop_front() {
            let Some(node) = nodes.get(id) else { continue };
            for dep in &node.deps {
                let runtime_edge = dep
                    .dep_kinds
                    .iter()
                    .any(|k| k.kind != DependencyKind::Development);
                if !runtime_edge || !seen.insert(&dep.pkg) {
                    continue;
                }
                let followed = packages
                    .get(&dep.pkg)
                    .is_none_or(|p| !rule.not_through.contains(&p.name.as_str()));
                parent.insert(&dep.pkg, id);
                if followed {
                    queue.push_back(&dep.pkg);
                }
            }
        }

        for id in seen.iter().filter(|id| **id != root) {
            let Some(package) = packages.get(id) else {
                continue;
            };
            let name = package.name.as_str();
            let forbidden = rule.forbidden.contains(&name)
                || rule.forbidden_prefixes.iter().any(|p| name.starts_with(p));
            if forbidden {
                let mut path = vec![name.to_string()];
                let mut cursor = *id;
                while let Some(up) = parent.get(cursor) {
                    if let Some(p) = packages.get(up) {
                        path.push(p.name.to_string());
                    }
                    cursor = up;
                }
                path.reverse();
                violations.push(Violation {
                    crate_name: rule.crate_name.to_string(),
                    rule: rule.description.to_string(),
                    found: format!("depends on {name} via {}", path.join(" -> ")),
                });
            }
        }
    }
    (violations, applied)
}
