//! Open [`Table`] readers, cached by file number so that a hot table is
//! opened (footer, properties, range tombstones read) once.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::Result;
use crate::filename;
use crate::fs::FileSystem;
use crate::sstable::Table;
use crate::version::FileMetadata;

/// A bounded cache of open tables.
pub struct TableCache {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    block_cache: Arc<BlockCache>,
    tables: quick_cache::sync::Cache<u64, Arc<Table>>,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("dir", &self.dir)
            .field("open_tables", &self.tables.len())
            .finish()
    }
}

impl TableCache {
    /// A cache holding at most `max_open_tables` readers.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        block_cache: Arc<BlockCache>,
        max_open_tables: usize,
    ) -> Self {
        TableCache {
            fs,
            dir,
            block_cache,
            tables: quick_cache::sync::Cache::new(max_open_tables.max(16)),
        }
    }

    /// The reader of `file`, opening it if needed.
    pub fn get(&self, file: &FileMetadata) -> Result<Arc<Table>> {
        self.tables.get_or_insert_with(&file.number, || {
            let path = filename::table_path(&self.dir, file.number);
            let handle = self.fs.open_random_access(&path)?;
            Ok(Arc::new(Table::open(
                handle,
                file.number,
                Arc::clone(&self.block_cache),
            )?))
        })
    }

    /// Forgets a deleted table.
    pub fn evict(&self, number: u64) {
        self.tables.remove(&number);
    }

    /// The shared block cache.
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.block_cache
    }
}
