//! Open [`Table`] readers, cached by file number so that a hot table is
//! opened (footer, properties, range tombstones read) once.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::cache::BlockCache;
use crate::error::Result;
use crate::filename;
use crate::fs::FileSystem;
use crate::sstable::Table;
use crate::version::FileMetadata;

/// A weak link from a file's metadata to its open reader: while the table
/// cache holds the reader, a read reaches it with one atomic increment
/// instead of a cache lookup (one per probed table per read). Weak, so the
/// table cache alone decides how many tables stay open. Copies start empty,
/// and the slot takes no part in comparing metadata.
#[derive(Default)]
pub struct ReaderSlot(RwLock<Weak<Table>>);

impl ReaderSlot {
    /// The reader, if one was recorded and is still open.
    pub fn get(&self) -> Option<Arc<Table>> {
        self.0.read().upgrade()
    }

    /// Records `table` as the reader.
    pub fn set(&self, table: &Arc<Table>) {
        *self.0.write() = Arc::downgrade(table);
    }
}

impl Clone for ReaderSlot {
    fn clone(&self) -> Self {
        ReaderSlot::default()
    }
}

impl PartialEq for ReaderSlot {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ReaderSlot {}

impl std::fmt::Debug for ReaderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderSlot")
    }
}

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
        if let Some(table) = file.reader.get() {
            return Ok(table);
        }
        let table = self.tables.get_or_insert_with(&file.number, || {
            let path = filename::table_path(&self.dir, file.number);
            let handle = self.fs.open_random_access(&path)?;
            Ok(Arc::new(Table::open(
                handle,
                file.number,
                Arc::clone(&self.block_cache),
            )?))
        })?;
        // Keyed by number both here and in the slot: a mix-up would serve
        // another table's blocks.
        debug_assert_eq!(table.file_number(), file.number);
        file.reader.set(&table);
        Ok(table)
    }

    /// Forgets a deleted table.
    pub fn evict(&self, number: u64) {
        self.tables.remove(&number);
        self.block_cache.remove_table_metadata(number);
    }

    /// The shared block cache.
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.block_cache
    }
}
