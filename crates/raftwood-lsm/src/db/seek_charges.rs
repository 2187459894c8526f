//! [`SeekCharges`]: what a cursor's seek costs the level-0 tables it had to
//! search besides others, and the wake-up for the compaction thread once
//! those seeks have earned a compaction (see
//! [`ReadCost`](crate::version::ReadCost)).

use std::sync::{Arc, Weak};

use super::DbInner;
use crate::version::FileMetadata;

/// Level-0 files a cursor positions itself in on every seek, held only
/// when the cursor has at least one other table source (a lone table costs
/// a seek nothing a compaction could save).
pub(crate) struct SeekCharges {
    level0_files: Vec<Arc<FileMetadata>>,
    db: Weak<DbInner>,
}

impl SeekCharges {
    /// Charges for `level0_files` if a cursor over them and
    /// `other_table_sources` further table sources (levels 1+) seeks.
    /// `None` when there is nothing to charge.
    pub(crate) fn new(
        level0_files: Vec<Arc<FileMetadata>>,
        other_table_sources: usize,
        db: &Arc<DbInner>,
    ) -> Option<SeekCharges> {
        let table_sources = level0_files.len() + other_table_sources;
        (!level0_files.is_empty() && table_sources >= 2).then(|| SeekCharges {
            level0_files,
            db: Arc::downgrade(db),
        })
    }

    /// Charges one seek to every level-0 file; wakes the compaction thread
    /// if that used up a file's budget.
    pub(crate) fn charge_one_seek(&self) {
        let mut exhausted = false;
        for file in &self.level0_files {
            exhausted |= file.charge_seek();
        }
        if exhausted && let Some(db) = self.db.upgrade() {
            db.wake_compaction_for_reads();
        }
    }
}

impl std::fmt::Debug for SeekCharges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekCharges")
            .field("level0_files", &self.level0_files.len())
            .finish()
    }
}
