//! Raft scenarios as data: every `tests/scenarios/*.txt` file is a script of
//! commands for the in-memory cluster (`support::cluster`), each followed by
//! the transcript it must produce. The language is described in
//! `tests/scenarios/README.md`.
//!
//! A file is a sequence of blocks:
//!
//! ```text
//! # comment lines (kept as they are)
//! command arg key=value
//! ----
//! expected output, one or more lines
//! <blank line>
//! ```
//!
//! With `RAFTWOOD_REWRITE=1` the expected outputs are replaced by the actual
//! ones (review the diff before committing). A mismatch names the file, the
//! line of the command, and shows expected and actual output.
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftwood_raft::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition, ConfState, Config, Message,
    MessageBody, NodeId, ReadOnlyMode, RejectHint, Role, SnapshotMeta,
};
use support::cluster::{Bootstrap, Cluster, Delivery, Event};
use support::format;

/// One command of a scenario file with its expected output.
#[derive(Debug)]
struct Block {
    /// Comment and blank lines before the command, kept for rewriting.
    prefix: Vec<String>,
    /// 1-based line number of the command.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// Splits a scenario file into blocks; anything after the last block that
/// is not a command (trailing comments) is returned separately.
fn parse_file(path: &Path, text: &str) -> (Vec<Block>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut prefix = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            prefix.push(line.to_owned());
            i += 1;
            continue;
        }
        let command_line = i + 1;
        let command = line.trim().to_owned();
        i += 1;
        assert!(
            i < lines.len() && lines[i] == "----",
            "{}:{command_line}: command `{command}` must be followed by a `----` line",
            path.display()
        );
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push(lines[i].to_owned());
            i += 1;
        }
        // The blank line that ends the block.
        i += 1;
        blocks.push(Block {
            prefix: std::mem::take(&mut prefix),
            line: command_line,
            command,
            expected,
        });
    }
    (blocks, prefix)
}

/// Splits a command line into tokens: whitespace separates them except
/// inside parentheses or double quotes.
fn tokenize(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if c.is_whitespace() && depth == 0 && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// A command's arguments: positional ones, and `key=value` ones.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    named: BTreeMap<String, String>,
}

impl Args {
    fn parse(tokens: &[String]) -> Args {
        let mut args = Args::default();
        for token in tokens {
            let split = token
                .find('=')
                .filter(|&at| !token[..at].contains(['(', '"']));
            match split {
                Some(at) => {
                    args.named
                        .insert(token[..at].to_owned(), token[at + 1..].to_owned());
                }
                None => args.positional.push(token.clone()),
            }
        }
        args
    }

    fn ids(&self) -> Vec<NodeId> {
        self.positional.iter().map(|p| parse_id(p)).collect()
    }

    fn id(&self, position: usize) -> NodeId {
        parse_id(
            self.positional
                .get(position)
                .unwrap_or_else(|| panic!("missing node id argument {position}")),
        )
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.named.get(name).map(|v| match v.as_str() {
            "true" => true,
            "false" => false,
            other => panic!("{name}={other}: expected true or false"),
        })
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.named.get(name).map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a number"))
        })
    }
}

fn parse_id(text: &str) -> NodeId {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a node id"))
}

/// `(1,2 3)` or `1` as a list of ids.
fn parse_id_list(text: &str) -> Vec<NodeId> {
    text.trim_matches(|c| c == '(' || c == ')')
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(parse_id)
        .collect()
}

/// Removes surrounding double quotes, if any.
fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// The interpreter: a cluster plus what it remembers between commands.
struct Interpreter {
    cluster: Cluster,
    /// Each node's role line after the previous command, to report changes.
    roles: BTreeMap<NodeId, String>,
}

impl Interpreter {
    fn new() -> Interpreter {
        Interpreter {
            cluster: Cluster::new(),
            roles: BTreeMap::new(),
        }
    }

    /// Runs one command line and returns its output lines.
    fn run(&mut self, command: &str) -> Vec<String> {
        let tokens = tokenize(command);
        let Some((name, rest)) = tokens.split_first() else {
            return Vec::new();
        };
        let args = Args::parse(rest);
        let mut out = Vec::new();
        match name.as_str() {
            "add-nodes" => self.add_nodes(&args, &mut out),
            "campaign" => {
                let id = self.checked(args.id(0));
                if !self.cluster.campaign(id) {
                    out.push(format!("{id} did not campaign"));
                }
            }
            "tick-election" => {
                let id = self.checked(args.id(0));
                let ticks = self.cluster.node(id).config.election_timeout_ticks;
                self.cluster.tick(id, ticks);
            }
            "tick-heartbeat" => {
                let id = self.checked(args.id(0));
                let ticks = self.cluster.node(id).config.heartbeat_interval_ticks;
                self.cluster.tick(id, ticks);
            }
            "tick" => {
                let id = self.checked(args.id(0));
                let ticks = args.positional.get(1).map_or(1, |n| n.parse().unwrap());
                self.cluster.tick(id, ticks);
            }
            "process-ready" => {
                for id in args.ids() {
                    let id = self.checked(id);
                    match self.cluster.process_ready(id) {
                        Ok(effects) if effects.is_empty() => {
                            out.push(format!("> {id} ready: nothing"))
                        }
                        Ok(effects) => {
                            out.push(format!("> {id} ready"));
                            out.extend(format::effects(&effects, "  "));
                        }
                        Err(error) => out.push(format!("> {id} error: {error}")),
                    }
                }
            }
            "persist" => {
                let all = args.flag("all").unwrap_or(false);
                for id in args.ids() {
                    let id = self.checked(id);
                    loop {
                        match self.cluster.persist(id) {
                            Ok(Some(request)) => {
                                out.push(format!("> {id} persisted #{}", request.ticket.0))
                            }
                            Ok(None) => {
                                out.push(format!("> {id} nothing to persist"));
                                break;
                            }
                            Err(error) => out.push(format!("> {id} error: {error}")),
                        }
                        if !all || self.cluster.pending_persist_count(id) == 0 {
                            break;
                        }
                    }
                }
            }
            "deliver-msgs" => {
                let drop = args.flag("drop").unwrap_or(false);
                for id in args.ids() {
                    let id = self.checked(id);
                    if let Some(position) = args.number("only") {
                        // 1-based position in the queue; the rest stay.
                        let position = usize::try_from(position).unwrap() - 1;
                        let delivered = self.cluster.deliver_one(id, position);
                        deliveries(id, &delivered.into_iter().collect::<Vec<_>>(), &mut out);
                    } else if drop {
                        let dropped = self.cluster.drop_in_flight(id);
                        if !dropped.is_empty() {
                            out.push(format!("> {id} dropping"));
                            out.extend(dropped.iter().map(|m| format!("  {}", format::message(m))));
                        }
                    } else {
                        deliveries(id, &self.cluster.deliver(id), &mut out);
                    }
                }
            }
            "stabilize" => {
                let ids: Vec<NodeId> = args.ids().into_iter().map(|id| self.checked(id)).collect();
                let mut lines = Vec::new();
                let result = self.cluster.stabilize(&ids, 200, &mut |event| match event {
                    Event::Ready(id, effects) => {
                        lines.push(format!("> {id} ready"));
                        lines.extend(format::effects(&effects, "  "));
                    }
                    Event::Persisted(id, request) => {
                        lines.push(format!("> {id} persisted #{}", request.ticket.0))
                    }
                    Event::Delivered(id, list) => deliveries(id, &list, &mut lines),
                    Event::Error(id, error) => lines.push(format!("> {id} error: {error}")),
                });
                // `quiet=true` is for setting a scene already covered by
                // another scenario: only state changes are printed.
                if !args.flag("quiet").unwrap_or(false) {
                    out.extend(lines);
                }
                if let Err(error) = result {
                    out.push(format!("stabilize: {error}"));
                }
            }
            "propose" => {
                let id = self.checked(args.id(0));
                let data = unquote(args.positional.get(1).map_or("", String::as_str)).to_owned();
                match self.cluster.raft_mut(id).propose(Bytes::from(data)) {
                    Ok(position) => {
                        out.push(format!("proposed at {}/{}", position.term, position.index))
                    }
                    Err(error) => out.push(format!("error: {error}")),
                }
            }
            "propose-conf-change" => {
                let id = self.checked(args.id(0));
                let change = parse_conf_change(&args);
                match self.cluster.raft_mut(id).propose_conf_change(change) {
                    Ok(position) => {
                        out.push(format!("proposed at {}/{}", position.term, position.index))
                    }
                    Err(error) => out.push(format!("error: {error}")),
                }
            }
            "read-index" => {
                let id = self.checked(args.id(0));
                let context = unquote(args.positional.get(1).map_or("", String::as_str)).to_owned();
                if let Err(error) = self.cluster.raft_mut(id).read_index(Bytes::from(context)) {
                    out.push(format!("error: {error}"));
                }
            }
            "transfer-leader" => {
                let from = self.checked(args.id(0));
                let to = args.id(1);
                if let Err(error) = self.cluster.raft_mut(from).transfer_leader(to) {
                    out.push(format!("error: {error}"));
                }
            }
            "duplicate-msgs" => {
                for id in args.ids() {
                    self.cluster.duplicate_in_flight(self.checked(id));
                }
            }
            "partition" => {
                let groups: Vec<Vec<NodeId>> =
                    args.positional.iter().map(|g| parse_id_list(g)).collect();
                self.cluster.partition(&groups);
            }
            "heal" => self.cluster.heal(),
            "drop" => {
                let (from, to) = (args.id(0), args.id(1));
                self.cluster.drop_link(from, to);
                if args.flag("both").unwrap_or(false) {
                    self.cluster.drop_link(to, from);
                }
            }
            "restart" => {
                let id = self.checked(args.id(0));
                match self.cluster.restart(id) {
                    Ok(()) => {
                        let disk = self.cluster.disk(id);
                        out.push(format!(
                            "{id} restarted from disk: HardState({}) Snapshot:{} Entries:{}",
                            format::hard_state(&disk.hard_state),
                            format::snapshot(&disk.snapshot),
                            format::entries(&disk.entries)
                        ));
                    }
                    Err(error) => out.push(format!("error: {error}")),
                }
            }
            "compact" => {
                let id = self.checked(args.id(0));
                let index = args
                    .positional
                    .get(1)
                    .map(|i| i.parse().unwrap())
                    .unwrap_or_else(|| panic!("compact <id> <index>"));
                match self.cluster.compact(id, index) {
                    Ok(meta) => out.push(format!(
                        "{id} compacted: Snapshot:{}",
                        format::snapshot(&meta)
                    )),
                    Err(error) => out.push(format!("error: {error}")),
                }
            }
            "report-unreachable" => {
                let leader = self.checked(args.id(0));
                self.cluster.raft_mut(leader).report_unreachable(args.id(1));
            }
            "status" => {
                let id = self.checked(args.id(0));
                self.status(id, &mut out);
            }
            "raft-log" => {
                let id = self.checked(args.id(0));
                self.raft_log(id, &mut out);
            }
            "raft-state" => {
                for id in self.cluster.ids() {
                    out.push(format::node_state(self.cluster.raft(id)));
                }
            }
            "applied" => {
                let id = self.checked(args.id(0));
                let applied = self.cluster.applied(id);
                if applied.is_empty() {
                    out.push("nothing applied".to_owned());
                }
                out.extend(applied.iter().map(format::entry));
            }
            "disk" => {
                let id = self.checked(args.id(0));
                let disk = self.cluster.disk(id);
                out.push(format!(
                    "HardState({})",
                    format::hard_state(&disk.hard_state)
                ));
                out.push(format!(
                    "Snapshot:{} Data:{}",
                    format::snapshot(&disk.snapshot),
                    format::entries(&disk.snapshot_data)
                ));
                out.push(format!("Entries:{}", format::entries(&disk.entries)));
            }
            "inject" => {
                let message = parse_message(&args);
                out.push(format!("injected {}", format::message(&message)));
                self.cluster.inject(message);
            }
            other => panic!("unknown command `{other}`"),
        }
        self.report_changes(&mut out);
        out
    }

    /// Panics on an id the scenario never added (a typo in the script).
    fn checked(&self, id: NodeId) -> NodeId {
        assert!(self.cluster.contains(id), "node {id} does not exist");
        id
    }

    /// Appends a line for every node whose role, term or leader changed
    /// during the command, and every new safety violation.
    fn report_changes(&mut self, out: &mut Vec<String>) {
        for id in self.cluster.ids() {
            let now = format::role_line(self.cluster.raft(id));
            if let Some(before) = self.roles.insert(id, now.clone())
                && before != now
            {
                out.push(format!("~ {id}: {before} => {now}"));
            }
        }
        for violation in self.cluster.take_violations() {
            out.push(format!("VIOLATION: {violation}"));
        }
    }

    fn add_nodes(&mut self, args: &Args, out: &mut Vec<String>) {
        let count = args.id(0);
        let first = self.cluster.ids().last().map_or(1, |last| last + 1);
        let voters = args
            .named
            .get("voters")
            .map(|v| parse_id_list(v))
            .unwrap_or_default();
        let learners = args
            .named
            .get("learners")
            .map(|v| parse_id_list(v))
            .unwrap_or_default();
        let joining = args.flag("joining").unwrap_or(false);
        let index = args.number("index").unwrap_or(1);
        for id in first..first + count {
            let mut config = Config::new(id);
            // Scenarios opt into pre-vote and check-quorum explicitly, so a
            // transcript shows only the mechanisms it is about.
            config.pre_vote = args.flag("prevote").unwrap_or(false);
            config.check_quorum = args.flag("checkquorum").unwrap_or(false);
            if let Some(mode) = args.named.get("read-only") {
                config.read_only_mode = match mode.as_str() {
                    "safe" => ReadOnlyMode::Safe,
                    "lease" => ReadOnlyMode::LeaseBased,
                    other => panic!("read-only={other}: expected safe or lease"),
                };
            }
            if let Some(n) = args.number("max-inflight") {
                config.max_inflight_messages = usize::try_from(n).unwrap();
            }
            if let Some(n) = args.number("max-inflight-bytes") {
                config.max_inflight_bytes = n;
            }
            if let Some(n) = args.number("max-uncommitted-bytes") {
                config.max_uncommitted_bytes = n;
            }
            if let Some(n) = args.number("max-msg-entries") {
                config.max_message_entries = usize::try_from(n).unwrap();
            }
            if let Some(n) = args.number("max-msg-bytes") {
                config.max_message_bytes = n;
            }
            if let Some(n) = args.number("election") {
                config.election_timeout_ticks = u32::try_from(n).unwrap();
            }
            if let Some(n) = args.number("heartbeat") {
                config.heartbeat_interval_ticks = u32::try_from(n).unwrap();
            }
            let bootstrap = if joining {
                Bootstrap::Joining
            } else {
                let mut conf_state = ConfState::with_voters(voters.iter().copied());
                conf_state.learners = learners.iter().copied().collect();
                Bootstrap::Member { conf_state, index }
            };
            match self.cluster.add_node(config, bootstrap) {
                Ok(()) => {
                    out.push(format::node_state(self.cluster.raft(id)));
                    self.roles
                        .insert(id, format::role_line(self.cluster.raft(id)));
                }
                Err(error) => out.push(format!("error: {error}")),
            }
        }
    }

    fn status(&self, id: NodeId, out: &mut Vec<String>) {
        let raft = self.cluster.raft(id);
        if raft.role() != Role::Leader {
            out.push(format!("{id} is not the leader ({})", raft.role()));
            return;
        }
        for (member, progress) in raft.tracker().progress_map() {
            out.push(format!("{member}: {progress}"));
        }
        if let Some(transferee) = raft.lead_transferee() {
            out.push(format!("transferring leadership to {transferee}"));
        }
        if raft.pending_read_count() > 0 {
            out.push(format!("pending reads: {}", raft.pending_read_count()));
        }
    }

    fn raft_log(&self, id: NodeId, out: &mut Vec<String>) {
        let log = self.cluster.raft(id).log();
        let mut header = String::new();
        if log.snapshot().index > 0 {
            write!(header, "snapshot:{} ", format::snapshot(log.snapshot())).unwrap();
        }
        write!(
            header,
            "last:{}/{} committed:{} persisted:{} applied:{}",
            log.last_term(),
            log.last_index(),
            log.committed(),
            log.persisted(),
            log.applied()
        )
        .unwrap();
        out.push(header);
        out.extend(self.cluster.log_entries(id).iter().map(format::entry));
    }
}

/// Lines for messages delivered to `id`.
fn deliveries(id: NodeId, list: &[Delivery], out: &mut Vec<String>) {
    if list.is_empty() {
        return;
    }
    out.push(format!("> {id} receiving"));
    for delivery in list {
        match delivery {
            Delivery::Stepped(message, result) => {
                out.push(format!("  {}", format::message(message)));
                if let Err(error) = result {
                    out.push(format!("    error: {error}"));
                }
            }
            Delivery::Dropped(message) => {
                out.push(format!("  dropped: {}", format::message(message)))
            }
        }
    }
}

/// `propose-conf-change <id> [transition=auto|implicit|explicit] v2 l3 r4`;
/// no single changes means "leave the joint configuration".
fn parse_conf_change(args: &Args) -> ConfChange {
    let transition = match args.named.get("transition").map(String::as_str) {
        None | Some("auto") => ConfChangeTransition::Auto,
        Some("implicit") => ConfChangeTransition::JointImplicit,
        Some("explicit") => ConfChangeTransition::JointExplicit,
        Some(other) => panic!("transition={other}: expected auto, implicit or explicit"),
    };
    let changes = args.positional[1..]
        .iter()
        .map(|token| {
            let (kind, id) = token.split_at(1);
            let kind = match kind {
                "v" => ConfChangeKind::AddVoter,
                "l" => ConfChangeKind::AddLearner,
                "r" => ConfChangeKind::RemoveNode,
                other => panic!("`{other}{id}`: a change is v<id>, l<id> or r<id>"),
            };
            ConfChangeSingle {
                kind,
                node_id: parse_id(id),
            }
        })
        .collect();
    ConfChange {
        transition,
        changes,
        context: Bytes::new(),
    }
}

/// `inject from=9 to=1 term=3 type=heartbeat [commit=] [index=] [log-term=]
/// [reject=true] [hint-index=] [hint-term=]` builds a message to put on the
/// wire as if `from` had sent it.
fn parse_message(args: &Args) -> Message {
    let number = |name: &str| args.number(name).unwrap_or(0);
    let reject = args.flag("reject").unwrap_or(false);
    let kind = args
        .named
        .get("type")
        .unwrap_or_else(|| panic!("inject needs type="));
    let body = match kind.as_str() {
        "heartbeat" => MessageBody::Heartbeat {
            commit: number("commit"),
            read_context: None,
        },
        "app" => MessageBody::AppendRequest {
            prev_log_index: number("index"),
            prev_log_term: number("log-term"),
            entries: Vec::new(),
            commit: number("commit"),
        },
        "app-resp" => MessageBody::AppendResponse {
            index: number("index"),
            reject: reject.then(|| RejectHint {
                index: number("hint-index"),
                term: number("hint-term"),
            }),
        },
        "vote" => MessageBody::VoteRequest {
            last_log_index: number("index"),
            last_log_term: number("log-term"),
            leadership_transfer: false,
        },
        "vote-resp" => MessageBody::VoteResponse { reject },
        "prevote" => MessageBody::PreVoteRequest {
            last_log_index: number("index"),
            last_log_term: number("log-term"),
        },
        "heartbeat-resp" => MessageBody::HeartbeatResponse { read_context: None },
        "timeout-now" => MessageBody::TimeoutNow,
        "snap" => MessageBody::InstallSnapshot {
            snapshot: SnapshotMeta {
                index: number("index"),
                term: number("log-term"),
                conf_state: ConfState::with_voters(
                    args.named
                        .get("voters")
                        .map(|v| parse_id_list(v))
                        .unwrap_or_default(),
                ),
            },
        },
        other => panic!("inject type={other}: unknown"),
    };
    Message {
        from: number("from"),
        to: number("to"),
        term: number("term"),
        body,
    }
}

/// One mismatch, for the failure report.
struct Mismatch {
    file: PathBuf,
    line: usize,
    command: String,
    expected: Vec<String>,
    actual: Vec<String>,
}

/// Runs one scenario file; returns its mismatches and, in rewrite mode,
/// rewrites it.
fn run_file(path: &Path, rewrite: bool) -> Vec<Mismatch> {
    let text = std::fs::read_to_string(path).unwrap();
    let (blocks, trailer) = parse_file(path, &text);
    let mut interpreter = Interpreter::new();
    let mut mismatches = Vec::new();
    let mut rewritten = String::new();
    for block in &blocks {
        let actual = interpreter.run(&block.command);
        for line in &actual {
            assert!(
                !line.is_empty(),
                "the interpreter printed a blank line for `{}`",
                block.command
            );
        }
        if actual != block.expected {
            mismatches.push(Mismatch {
                file: path.to_owned(),
                line: block.line,
                command: block.command.clone(),
                expected: block.expected.clone(),
                actual: actual.clone(),
            });
        }
        for line in &block.prefix {
            rewritten.push_str(line);
            rewritten.push('\n');
        }
        rewritten.push_str(&block.command);
        rewritten.push_str("\n----\n");
        for line in &actual {
            rewritten.push_str(line);
            rewritten.push('\n');
        }
        rewritten.push('\n');
    }
    for line in &trailer {
        rewritten.push_str(line);
        rewritten.push('\n');
    }
    if rewrite && rewritten != text {
        std::fs::write(path, rewritten).unwrap();
    }
    mismatches
}

/// A diff-like view: lines only in the expectation start with `-`, lines
/// only in the actual output with `+`, common lines with a space (a simple
/// longest-common-subsequence alignment).
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            writeln!(out, "  {}", expected[i]).unwrap();
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            writeln!(out, "+ {}", actual[j]).unwrap();
            j += 1;
        } else {
            writeln!(out, "- {}", expected[i]).unwrap();
            i += 1;
        }
    }
    out
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn scenarios() {
    let rewrite = std::env::var("RAFTWOOD_REWRITE").is_ok_and(|v| v == "1");
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenario files found");
    let mut report = String::new();
    let mut failed_files = 0;
    for file in &files {
        let mismatches = run_file(file, rewrite);
        if mismatches.is_empty() || rewrite {
            continue;
        }
        failed_files += 1;
        for mismatch in mismatches {
            writeln!(
                report,
                "\n{}:{}: `{}`\n--- expected / +++ actual\n{}",
                mismatch.file.display(),
                mismatch.line,
                mismatch.command,
                diff(&mismatch.expected, &mismatch.actual)
            )
            .unwrap();
        }
    }
    assert!(
        failed_files == 0,
        "{failed_files} of {} scenario files differ (rerun with RAFTWOOD_REWRITE=1 to accept):{report}",
        files.len()
    );
}

#[test]
fn the_interpreter_reads_what_it_writes() {
    // The tokenizer keeps parenthesised groups and quoted data together.
    assert_eq!(
        tokenize(r#"partition (1) (2 3) voters=(1, 2) "a b""#),
        vec!["partition", "(1)", "(2 3)", "voters=(1, 2)", "\"a b\""]
    );
    assert_eq!(parse_id_list("(1, 2 3)"), vec![1, 2, 3]);
    let (blocks, trailer) = parse_file(
        Path::new("x"),
        "# c\n\ncmd 1\n----\nout\n\ncmd 2\n----\n\n# end\n",
    );
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].prefix, vec!["# c", ""]);
    assert_eq!(blocks[0].expected, vec!["out"]);
    assert!(blocks[1].expected.is_empty());
    assert_eq!(trailer, vec!["# end"]);
    let diffed = diff(
        &["a".to_owned(), "b".to_owned()],
        &["a".to_owned(), "c".to_owned()],
    );
    assert_eq!(diffed, "  a\n+ c\n- b\n");
}
