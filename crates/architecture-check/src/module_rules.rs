//! Rules about how the modules inside one crate may refer to each other:
//! no cycles between sibling modules, and named modules that must not
//! reach each other. `cargo metadata` sees only crates, so the module
//! graph is read from the source: every `crate::`, `super::` and `self::`
//! path outside comments is an edge from the file's module to the module
//! it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::Violation;

/// The sibling modules under `parent` in one crate: they must form no
/// cycle, and none of `isolated` may refer to another of `isolated`.
#[derive(Debug, Clone)]
pub struct ModuleRule {
    /// The crate (folder under `crates/`) the rule applies to.
    pub crate_name: &'static str,
    /// The rule in words.
    pub description: &'static str,
    /// The module whose children are checked: `[]` for the crate's
    /// top-level modules, `["grpc"]` for `grpc`'s.
    pub parent: Vec<&'static str>,
    /// Children of `parent` that may not refer to one another at all.
    pub isolated: Vec<&'static str>,
}

/// The module invariants of ARCHITECTURE.md.
pub fn module_rules() -> Vec<ModuleRule> {
    vec![
        ModuleRule {
            crate_name: "raftwood-server",
            description: "the server's top-level modules form no cycle: each layer can be read without the ones that use it",
            parent: vec![],
            isolated: vec![],
        },
        ModuleRule {
            crate_name: "raftwood-server",
            description: "each gRPC service is written over grpc::member alone: no service imports another, and grpc's modules form no cycle",
            parent: vec!["grpc"],
            isolated: vec!["kv", "lease", "watch", "maintenance", "cluster"],
        },
    ]
}

/// A module's path from the crate root: `grpc/lease/mod.rs` is
/// `["grpc", "lease"]`, `lib.rs` is `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_string();
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem);
        }
    }
    parts
}

/// The absolute module paths that `code` (one line of the file at
/// `module`) names through `crate::`, `super::` or `self::`. A group
/// `super::{a, b::c}` names each member.
fn referenced_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut start = 0;
    while start < code.len() {
        let rest = &code[start..];
        let Some(offset) = ["crate::", "super::", "self::"]
            .iter()
            .filter_map(|root| rest.find(root))
            .min()
        else {
            break;
        };
        let at = start + offset;
        let preceded_by_ident = at > 0
            && (bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        let (path, consumed) = parse_path(&code[at..]);
        start = at + consumed.max(1);
        if preceded_by_ident {
            continue;
        }
        found.extend(
            path.into_iter()
                .filter_map(|segments| resolve(&segments, module)),
        );
    }
    found
}

/// Reads `a::b::{c, d::e}` at the start of `text`: the paths it names
/// (segments as written) and how many bytes it took.
fn parse_path(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut position = 0;
    loop {
        let rest = &text[position..];
        let length = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if length == 0 {
            break;
        }
        segments.push(rest[..length].to_string());
        position += length;
        if !text[position..].starts_with("::") {
            return (vec![segments], position);
        }
        position += 2;
        if text[position..].starts_with('{') {
            let Some(close) = text[position..].find('}') else {
                return (vec![segments], position);
            };
            let group = &text[position + 1..position + close];
            let paths = group
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty() && *item != "self")
                .map(|item| {
                    let mut path = segments.clone();
                    path.extend(
                        item.split("::")
                            .map(|s| s.split_whitespace().next().unwrap_or("").to_string()),
                    );
                    path
                })
                .collect();
            return (paths, position + close + 1);
        }
    }
    (vec![segments], position)
}

/// `segments` (starting with `crate`, `super` or `self`) as a path from
/// the crate root, seen from `module`.
fn resolve(segments: &[String], module: &[String]) -> Option<Vec<String>> {
    let (first, rest) = segments.split_first()?;
    let mut path: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module.split_last()?.1.to_vec(),
        _ => return None,
    };
    for segment in rest {
        if segment == "super" {
            path.pop()?;
        } else {
            path.push(segment.clone());
        }
    }
    Some(path)
}

/// Edges between the children of `parent`: child -> children it names.
fn child_graph(src: &Path, parent: &[&str]) -> std::io::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    crate::source_rules::rust_files(src, &mut files)?;
    let parent: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
    let child_of = |path: &[String]| -> Option<String> {
        (path.len() > parent.len() && path[..parent.len()] == parent[..])
            .then(|| path[parent.len()].clone())
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_path(file.strip_prefix(src).unwrap_or(&file));
        let Some(from) = child_of(&module) else {
            continue;
        };
        graph.entry(from.clone()).or_default();
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for target in referenced_paths(code, &module) {
                if let Some(to) = child_of(&target)
                    && to != from
                {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Only modules that exist are nodes (a path may name an item).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    Ok(graph)
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

/// Checks the rules against `crates_dir/<crate>/src`. Crates that do not
/// exist are skipped; the names of the checked ones are returned (once
/// per rule).
pub fn check_modules(
    crates_dir: &Path,
    rules: &[ModuleRule],
) -> std::io::Result<(Vec<Violation>, Vec<&'static str>)> {
    let mut violations = Vec::new();
    let mut applied = Vec::new();
    for rule in rules {
        let src = crates_dir.join(rule.crate_name).join("src");
        if !src.is_dir() {
            continue;
        }
        applied.push(rule.crate_name);
        let graph = child_graph(&src, &rule.parent)?;
        let violation = |found: String| Violation {
            crate_name: rule.crate_name.to_string(),
            rule: rule.description.to_string(),
            found,
        };
        if let Some(cycle) = find_cycle(&graph) {
            violations.push(violation(format!("module cycle {}", cycle.join(" -> "))));
        }
        for from in &rule.isolated {
            for to in graph.get(*from).into_iter().flatten() {
                if rule.isolated.contains(&to.as_str()) {
                    violations.push(violation(format!("{from} imports {to}")));
                }
            }
        }
    }
    Ok((violations, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Vec<String> {
        module_path(Path::new(path))
    }

    fn names(paths: Vec<Vec<String>>) -> Vec<String> {
        paths.into_iter().map(|p| p.join("::")).collect()
    }

    #[test]
    fn a_files_module_path_drops_mod_and_lib() {
        assert_eq!(module("grpc/lease/mod.rs"), vec!["grpc", "lease"]);
        assert_eq!(
            module("grpc/lease/clock.rs"),
            vec!["grpc", "lease", "clock"]
        );
        assert_eq!(module("lib.rs"), Vec::<String>::new());
    }

    #[test]
    fn paths_resolve_from_the_files_module() {
        let kv = module("grpc/kv.rs");
        assert_eq!(
            names(referenced_paths(
                "use super::member::{MemberHandle, status};",
                &kv
            )),
            vec!["grpc::member::MemberHandle", "grpc::member::status"]
        );
        assert_eq!(
            names(referenced_paths("use crate::driver::LoopEvent;", &kv)),
            vec!["driver::LoopEvent"]
        );
        let lease = module("grpc/lease/mod.rs");
        assert_eq!(
            names(referenced_paths("use self::clock::LeaseClock;", &lease)),
            vec!["grpc::lease::clock::LeaseClock"]
        );
        assert_eq!(
            names(referenced_paths(
                "x(super::super::member::status::stopped())",
                &module("grpc/lease/relay.rs")
            )),
            vec!["grpc::member::status::stopped"]
        );
        // `raftwood_kv::crate_like` and `my_super::x` are not paths of this crate.
        assert!(referenced_paths("use raftwood_kv::self_test;", &kv).is_empty());
        assert!(referenced_paths("my_super::x()", &kv).is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_a_tree_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (from, to) in edges {
                graph
                    .entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
                graph.entry(to.to_string()).or_default();
            }
            graph
        };
        assert_eq!(
            find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
            None
        );
        assert_eq!(
            find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "b")])),
            Some(vec!["b".to_string(), "c".to_string(), "b".to_string()])
        );
    }
}
