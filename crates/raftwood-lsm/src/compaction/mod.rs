//! Leveled compaction: a pure picker decides *what* to compact from an
//! immutable [`Version`](crate::version::Version); a job carries it out.

mod job;
mod picker;

pub use job::run_compaction;
pub use picker::{CompactionConfig, CompactionTask, pick_compaction, pick_range};
