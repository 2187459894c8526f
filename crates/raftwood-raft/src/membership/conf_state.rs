//! The membership as persisted: who votes, who learns, and whether a joint
//! configuration is in force (thesis §4.3).

use std::collections::BTreeSet;

use crate::ids::NodeId;

/// A configuration, as recorded in snapshots and reported to the caller.
///
/// Invariants (checked by [`ConfState::validate`]): learners and voters are
/// disjoint; `learners_next` are all outgoing voters (they become learners
/// when the joint configuration is left); `voters_outgoing` is empty unless
/// the configuration is joint; `auto_leave` only when joint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Voters of the incoming (or only) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration; non-empty exactly when joint.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Outgoing voters that become learners when the joint configuration is
    /// left (a voter demoted to learner cannot be both at once).
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
}

impl ConfState {
    /// A simple configuration of voters only (how a cluster is bootstrapped).
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        ConfState {
            voters: voters.into_iter().collect(),
            ..ConfState::default()
        }
    }

    /// Whether a joint configuration is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Every member named by the configuration.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters
            .iter()
            .chain(&self.learners)
            .chain(&self.voters_outgoing)
            .chain(&self.learners_next)
            .copied()
            .collect()
    }

    /// Checks the invariants documented on the type; a configuration read
    /// from a snapshot or built by a caller must pass before it is used.
    pub fn validate(&self) -> Result<(), String> {
        if self.members().contains(&0) {
            return Err("node id 0 is reserved".to_owned());
        }
        if let Some(id) = self.learners.intersection(&self.voters).next() {
            return Err(format!("{id} is both a voter and a learner"));
        }
        if let Some(id) = self.learners.intersection(&self.voters_outgoing).next() {
            return Err(format!("{id} is both an outgoing voter and a learner"));
        }
        if let Some(id) = self.learners_next.difference(&self.voters_outgoing).next() {
            return Err(format!("{id} is a next learner but not an outgoing voter"));
        }
        if let Some(id) = self.learners_next.intersection(&self.voters).next() {
            return Err(format!("{id} is both a voter and a next learner"));
        }
        if self.voters.is_empty() && !self.members().is_empty() {
            return Err("a configuration with members has no voters".to_owned());
        }
        if !self.is_joint() && self.auto_leave {
            return Err("auto_leave set outside a joint configuration".to_owned());
        }
        Ok(())
    }
}
