//! The member's two worker threads beside the drive loop: persistence
//! (the raft log's writes and fsyncs) and apply (the state machine, its
//! snapshots). Both take work from the loop on a channel and report to it
//! the same way, as events on the loop's queue; a storage error ends the
//! thread with [`crate::driver::LoopEvent::Fatal`] (fail-stop).

mod apply;
mod persist;

pub use apply::{
    ApplyContext, ApplySnapshots, MembershipPublisher, apply_batch, run_apply, stop_event,
};
pub use persist::run_persistence;
