//! Leveled compaction: a pure picker decides *what* to compact from an
//! immutable [`Version`](crate::version::Version); a job carries it out.

mod job;
mod picker;

pub use job::{CompactionOutcome, run_compaction};
pub use picker::{CompactionConfig, CompactionTask, level_scores, pick_compaction, pick_range};
