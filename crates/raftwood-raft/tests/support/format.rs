//! Compact, stable text for transcripts. Every rendering is one line (or one
//! line per item) and depends only on the value, so transcripts diff well.
//!
//! Conventions: an entry or log position is `term/index`; a configuration is
//! `Voters:(1,2,3)` followed by the parts that are not empty; a message is
//! `from->to Kind Term:t` followed by its fields.

use std::collections::BTreeSet;
use std::fmt::Write;

use bytes::Bytes;
use raftwood_raft::{
    ConfChange, ConfChangeKind, ConfChangeTransition, ConfState, Effects, Entry, EntryPayload,
    HardState, Message, MessageBody, NodeId, PersistRequest, RaftNode, Role, SnapshotMeta,
};

/// `(1,2,3)`.
pub fn ids(ids: &BTreeSet<NodeId>) -> String {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!("({})", list.join(","))
}

/// `Voters:(1,2,3)`, then ` Outgoing:(..)`, ` Learners:(..)`,
/// ` LearnersNext:(..)`, ` AutoLeave` when they apply.
pub fn conf_state(conf: &ConfState) -> String {
    let mut out = format!("Voters:{}", ids(&conf.voters));
    if !conf.voters_outgoing.is_empty() {
        write!(out, " Outgoing:{}", ids(&conf.voters_outgoing)).ok();
    }
    if !conf.learners.is_empty() {
        write!(out, " Learners:{}", ids(&conf.learners)).ok();
    }
    if !conf.learners_next.is_empty() {
        write!(out, " LearnersNext:{}", ids(&conf.learners_next)).ok();
    }
    if conf.auto_leave {
        out.push_str(" AutoLeave");
    }
    out
}

/// Bytes as a quoted string if printable, else as hex.
pub fn data(bytes: &Bytes) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    }
}

/// A heartbeat's read context: the core's round numbers are 8-byte
/// big-endian integers, shown as `#n`.
fn read_context(context: &Bytes) -> String {
    match <[u8; 8]>::try_from(context.as_ref()) {
        Ok(raw) => format!("#{}", u64::from_be_bytes(raw)),
        Err(_) => data(context),
    }
}

/// `v2 l3 r4` plus the transition when it is not `auto`; `leave-joint` for
/// the empty change.
pub fn conf_change(change: &ConfChange) -> String {
    if change.is_leave_joint() {
        return "leave-joint".to_owned();
    }
    let mut parts: Vec<String> = change
        .changes
        .iter()
        .map(|single| {
            let kind = match single.kind {
                ConfChangeKind::AddVoter => "v",
                ConfChangeKind::AddLearner => "l",
                ConfChangeKind::RemoveNode => "r",
            };
            format!("{kind}{}", single.node_id)
        })
        .collect();
    match change.transition {
        ConfChangeTransition::Auto => {}
        ConfChangeTransition::JointImplicit => parts.push("implicit".to_owned()),
        ConfChangeTransition::JointExplicit => parts.push("explicit".to_owned()),
    }
    parts.join(" ")
}

/// `1/4 "foo"`, `1/1 Empty`, `2/5 Conf(v2 l3)`.
pub fn entry(entry: &Entry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Empty => "Empty".to_owned(),
        EntryPayload::Command(bytes) => data(bytes),
        EntryPayload::ConfChange(change) => format!("Conf({})", conf_change(change)),
    };
    format!("{}/{} {payload}", entry.term, entry.index)
}

/// `[1/4 "foo", 1/5 "bar"]`.
pub fn entries(entries: &[Entry]) -> String {
    let list: Vec<String> = entries.iter().map(entry).collect();
    format!("[{}]", list.join(", "))
}

/// `Term:1 Vote:2 Commit:3` (`Vote:-` when none).
pub fn hard_state(hard_state: &HardState) -> String {
    let vote = hard_state
        .vote
        .map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "Term:{} Vote:{vote} Commit:{}",
        hard_state.term, hard_state.commit
    )
}

/// `1/10 Voters:(1,2,3)`.
pub fn snapshot(snapshot: &SnapshotMeta) -> String {
    format!(
        "{}/{} {}",
        snapshot.term,
        snapshot.index,
        conf_state(&snapshot.conf_state)
    )
}

/// One line per message, e.g.
/// `1->2 App Term:1 Log:1/3 Commit:2 Entries:[1/4 "foo"]`.
pub fn message(message: &Message) -> String {
    let mut out = format!(
        "{}->{} {} Term:{}",
        message.from,
        message.to,
        message.body.kind_name(),
        message.term
    );
    let rejected = |reject: bool| if reject { " Rejected" } else { "" };
    match &message.body {
        MessageBody::PreVoteRequest {
            last_log_index,
            last_log_term,
        } => {
            write!(out, " Log:{last_log_term}/{last_log_index}").ok();
        }
        MessageBody::VoteRequest {
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => {
            write!(out, " Log:{last_log_term}/{last_log_index}").ok();
            if *leadership_transfer {
                out.push_str(" Transfer");
            }
        }
        MessageBody::PreVoteResponse { reject } | MessageBody::VoteResponse { reject } => {
            out.push_str(rejected(*reject))
        }
        MessageBody::AppendRequest {
            prev_log_index,
            prev_log_term,
            entries: list,
            commit,
        } => {
            write!(out, " Log:{prev_log_term}/{prev_log_index} Commit:{commit}").ok();
            if !list.is_empty() {
                write!(out, " Entries:{}", entries(list)).ok();
            }
        }
        MessageBody::AppendResponse { index, reject } => match reject {
            None => write!(out, " Index:{index}").unwrap_or(()),
            Some(hint) => write!(
                out,
                " Rejected Index:{index} Hint:{}/{}",
                hint.term, hint.index
            )
            .unwrap_or(()),
        },
        MessageBody::Heartbeat {
            commit,
            read_context: context,
        } => {
            write!(out, " Commit:{commit}").ok();
            if let Some(context) = context {
                write!(out, " Read:{}", read_context(context)).ok();
            }
        }
        MessageBody::HeartbeatResponse {
            read_context: context,
        } => {
            if let Some(context) = context {
                write!(out, " Read:{}", read_context(context)).ok();
            }
        }
        MessageBody::InstallSnapshot { snapshot: meta } => {
            write!(out, " Snapshot:{}", snapshot(meta)).ok();
        }
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndexRequest { context } => {
            write!(out, " Context:{}", data(context)).ok();
        }
        MessageBody::ReadIndexResponse { context, index } => {
            let index = index.map_or_else(|| "none".to_owned(), |i| i.to_string());
            write!(out, " Context:{} Index:{index}", data(context)).ok();
        }
        MessageBody::ProposeRequest { batch_id, commands } => {
            let commands: Vec<String> = commands.iter().map(data).collect();
            write!(out, " Batch:{batch_id} Commands:[{}]", commands.join(" ")).ok();
        }
    }
    out
}

/// `Persist#2 HardState(Term:1 Vote:1 Commit:0) Snapshot:.. Entries:[..]`,
/// listing only the parts present.
pub fn persist_request(request: &PersistRequest) -> String {
    let mut out = format!("Persist#{}", request.ticket.0);
    if let Some(hs) = &request.hard_state {
        write!(out, " HardState({})", hard_state(hs)).ok();
    }
    if let Some(meta) = &request.snapshot {
        write!(out, " Snapshot:{}", snapshot(meta)).ok();
    }
    if !request.entries.is_empty() {
        write!(out, " Entries:{}", entries(&request.entries)).ok();
    }
    out
}

/// The lines of a batch of effects, each indented by `indent`: the persist
/// request, then messages, applied entries, read states and failed reads.
pub fn effects(effects: &Effects, indent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(request) = &effects.persist {
        lines.push(format!("{indent}{}", persist_request(request)));
    }
    for m in &effects.messages {
        lines.push(format!("{indent}{}", message(m)));
    }
    if !effects.apply.is_empty() {
        lines.push(format!("{indent}Apply:{}", entries(&effects.apply)));
    }
    for read in &effects.read_states {
        lines.push(format!(
            "{indent}ReadState Context:{} Index:{}",
            data(&read.context),
            read.index
        ));
    }
    for context in &effects.failed_reads {
        lines.push(format!("{indent}FailedRead Context:{}", data(context)));
    }
    lines
}

/// `leader term:2 leader:1` — what a node is doing.
pub fn role_line(raft: &RaftNode) -> String {
    let leader = raft
        .leader()
        .map_or_else(|| "-".to_owned(), |l| l.to_string());
    format!("{} term:{} leader:{leader}", raft.role(), raft.term())
}

/// One line of `raft-state`: role, term, vote, leader, commit, applied,
/// last log position, configuration.
pub fn node_state(raft: &RaftNode) -> String {
    let log = raft.log();
    let vote = raft
        .vote()
        .map_or_else(|| "-".to_owned(), |v| v.to_string());
    let leader = raft
        .leader()
        .map_or_else(|| "-".to_owned(), |l| l.to_string());
    let role = match raft.role() {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    };
    format!(
        "{}: {role} term:{} vote:{vote} leader:{leader} commit:{} applied:{} last:{}/{} {}",
        raft.id(),
        raft.term(),
        log.committed(),
        log.applied(),
        log.last_term(),
        log.last_index(),
        conf_state(&raft.conf_state())
    )
}
