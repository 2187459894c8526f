//! Requests to change the membership, as carried in log entries.

use bytes::Bytes;

use crate::ids::NodeId;

/// A membership change: one or more single changes, applied either directly
/// (at most one voter changes) or through a joint configuration.
///
/// A change with no `changes` is the request to leave the current joint
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfChange {
    /// How the change is carried out.
    pub transition: ConfChangeTransition,
    /// The single changes, applied in order.
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque to Raft (the server puts the new member's address here).
    pub context: Bytes,
}

/// How a change moves to the new configuration (thesis §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeTransition {
    /// Directly if the change is a single one (thesis §4.1, one server at a
    /// time), otherwise through a joint configuration left automatically.
    Auto,
    /// Always through a joint configuration, left automatically once it is
    /// committed.
    JointImplicit,
    /// Always through a joint configuration, left only when the caller
    /// proposes an empty change.
    JointExplicit,
}

/// One member added, removed, or changed between voter and learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfChangeSingle {
    /// What happens to the member.
    pub kind: ConfChangeKind,
    /// The member.
    pub node_id: NodeId,
}

/// What a single change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// Make the member a voter (adding it, or promoting a learner).
    AddVoter,
    /// Make the member a learner (adding it, or demoting a voter).
    AddLearner,
    /// Remove the member, voter or learner.
    RemoveNode,
}

impl ConfChange {
    /// A direct change of one member.
    pub fn single(kind: ConfChangeKind, node_id: NodeId) -> ConfChange {
        ConfChange {
            transition: ConfChangeTransition::Auto,
            changes: vec![ConfChangeSingle { kind, node_id }],
            context: Bytes::new(),
        }
    }

    /// The request to leave a joint configuration.
    pub fn leave_joint() -> ConfChange {
        ConfChange {
            transition: ConfChangeTransition::Auto,
            changes: Vec::new(),
            context: Bytes::new(),
        }
    }

    /// Whether this is the request to leave a joint configuration.
    pub fn is_leave_joint(&self) -> bool {
        self.changes.is_empty()
    }

    /// If this change enters a joint configuration, whether it is left
    /// automatically. `None` for a direct change or a leave request.
    pub fn enters_joint(&self) -> Option<bool> {
        match self.transition {
            _ if self.changes.is_empty() => None,
            ConfChangeTransition::Auto if self.changes.len() == 1 => None,
            ConfChangeTransition::Auto | ConfChangeTransition::JointImplicit => Some(true),
            ConfChangeTransition::JointExplicit => Some(false),
        }
    }

    /// Rough size for the uncommitted-bytes budget and message limits.
    pub fn encoded_size_hint_bytes(&self) -> u64 {
        (self.changes.len() as u64) * 9 + 1 + self.context.len() as u64
    }
}
