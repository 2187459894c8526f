//! Snapshots as the core sees them: only the point they stand for. The data
//! itself is the state machine's business and is streamed by the server.

use crate::ids::{Index, Term};
use crate::membership::ConfState;

/// The position a snapshot replaces the log up to, and the membership at
/// that position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: Index,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The configuration in force after applying everything up to `index`.
    pub conf_state: ConfState,
}
