//! Proposals waiting for their entry to be applied, by log index.
//!
//! The drive loop registers a waiter right after the core accepts a
//! proposal, before it takes the effects that could commit it, so the
//! apply thread always finds the waiter of an entry it applies.

use std::collections::HashMap;

use raftwood_kv::ApplyOutcome;
use raftwood_raft::{Index, Term};
use tokio::sync::oneshot;

/// Why a proposal has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This member does not lead; `leader` does, if known.
    #[error("not the leader")]
    NotLeader {
        /// The leader, if known.
        leader: Option<u64>,
    },
    /// The entry was overwritten by a new leader's log: it was never
    /// committed and never will be.
    #[error("leader changed")]
    LeaderChanged,
    /// Too many bytes are waiting to commit, or a leadership transfer is
    /// under way; retry.
    #[error("too many requests")]
    Busy,
    /// The member is shutting down.
    #[error("stopped")]
    Stopped,
}

/// The result a proposer receives.
pub type ProposeResult = Result<ApplyOutcome, ProposeError>;

struct Waiter {
    term: Term,
    reply: oneshot::Sender<ProposeResult>,
}

/// Waiters by index.
#[derive(Default)]
pub struct Waiters {
    by_index: HashMap<Index, Waiter>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("count", &self.by_index.len())
            .finish()
    }
}

impl Waiters {
    /// Registers the proposer of the entry at `index` proposed in `term`.
    pub fn register(&mut self, index: Index, term: Term, reply: oneshot::Sender<ProposeResult>) {
        self.by_index.insert(index, Waiter { term, reply });
    }

    /// The entry at `index` was applied with `term`: its proposer (if any)
    /// gets the outcome if the entry is the one it proposed, or learns
    /// that its proposal was lost.
    pub fn complete(&mut self, index: Index, term: Term, outcome: impl FnOnce() -> ApplyOutcome) {
        if let Some(waiter) = self.by_index.remove(&index) {
            let result = if waiter.term == term {
                Ok(outcome())
            } else {
                Err(ProposeError::LeaderChanged)
            };
            let _ = waiter.reply.send(result);
        }
    }

    /// Every waiter learns the member stopped.
    pub fn stop(&mut self) {
        for (_, waiter) in self.by_index.drain() {
            let _ = waiter.reply.send(Err(ProposeError::Stopped));
        }
    }
}
