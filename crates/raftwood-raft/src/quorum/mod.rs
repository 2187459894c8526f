//! The quorum math: which index a set of voters has committed and who won an
//! election, for a simple majority and for a joint configuration.
//!
//! Raft decides everything by majority: a candidate needs votes from a
//! majority to lead (paper §5.2), and an entry is committed once a majority
//! stores it (paper §5.3; the "only entries of the current term commit by
//! counting" restriction of §5.4.2 is the caller's, not this module's).
//! During a membership change the configuration is joint and every decision
//! needs a majority of *both* the old and the new voters (thesis §4.3).
//!
//! These are pure functions over sets of node ids: the caller says what each
//! voter acknowledged through a closure, so the same math serves commit
//! indexes, elections and check-quorum.

mod joint;
mod majority;

pub use joint::JointConfig;
pub use majority::MajorityConfig;

/// The outcome of counting votes, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VoteResult {
    /// Neither outcome is certain yet: the missing votes could still decide
    /// it either way.
    Pending,
    /// A quorum granted the vote.
    Won,
    /// Enough voters refused that a quorum can no longer be reached.
    Lost,
}

impl std::fmt::Display for VoteResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VoteResult::Pending => "VotePending",
            VoteResult::Won => "VoteWon",
            VoteResult::Lost => "VoteLost",
        })
    }
}
