//! The state a member must persist before it answers anyone (paper Figure 2,
//! "Persistent state on all servers").

use crate::ids::{Index, NodeId, Term};

/// Term, vote and commit index: persisted before any message that depends on
/// them is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this member has seen.
    pub term: Term,
    /// Whom this member voted for in `term`, if anyone. Invariant: at most
    /// one vote per term, and a vote is never forgotten within its term.
    pub vote: Option<NodeId>,
    /// The highest index known committed. Persisting it is an optimisation
    /// (a restarted member can apply without waiting for the leader); it
    /// never decreases.
    pub commit: Index,
}
