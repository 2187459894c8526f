//! The three numbers every Raft message is made of.

/// Identifies a member of the cluster. Zero is never a valid id: it means
/// "nobody" wherever an `Option<NodeId>` would be awkward on the wire.
pub type NodeId = u64;

/// A Raft term: a logical clock that only grows. Each term has at most one
/// leader (paper §5.1).
pub type Term = u64;

/// A position in the replicated log. Index 0 is the empty prefix: the first
/// real entry has index 1.
pub type Index = u64;
