//! The roles a member plays (paper §5.1, plus pre-vote's pre-candidate).

use std::fmt;

/// What a member is doing in the current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows the leader of the current term, or waits for one.
    Follower,
    /// Asks whether it could win an election, without raising its term
    /// (thesis §9.6, pre-vote).
    PreCandidate,
    /// Has raised its term and asks for votes.
    Candidate,
    /// Replicates its log to everyone else.
    Leader,
}

impl fmt::Display for Role {
    /// Role names as in the seed document: "leader", "follower",
    /// "candidate" (and "pre-candidate").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        })
    }
}
