//! fjall 3.x adapter: one database with one keyspace.

use std::path::Path;

use fjall::config::PinningPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::{CommonConfig, Engine, Result};

pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
    sync: bool,
}

impl Fjall {
    pub fn open(dir: &Path, config: &CommonConfig) -> Result<Fjall> {
        // `cache_size` is fjall's single block cache (data, index and filter
        // blocks). `manual_journal_persist` stays false (the default): each
        // write is handed to the OS, like raftwood's WAL append.
        let db = Database::builder(dir)
            .cache_size(config.cache_size_bytes)
            .manual_journal_persist(false)
            .open()?;
        let memtable_size_bytes = config.memtable_size_bytes;
        // fjall pins L0/L1 index blocks and L0 filter blocks in its table
        // readers by default, outside the cache budget. Pinning is turned
        // off so that every index and filter block is charged to the same
        // `--cache-mb` budget as in raftwood (and RocksDB with
        // cache_index_and_filter_blocks). Everything else (filter bits per
        // level, per-level compression) keeps fjall's defaults.
        let keyspace = db.keyspace("bench", move || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(memtable_size_bytes)
                .index_block_pinning_policy(PinningPolicy::all(false))
                .filter_block_pinning_policy(PinningPolicy::all(false))
        })?;
        Ok(Fjall {
            db,
            keyspace,
            sync: config.sync,
        })
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.keyspace.insert(key, value)?;
        if self.sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = self.db.batch();
        if self.sync {
            batch = batch.durability(Some(PersistMode::SyncData));
        }
        for (key, value) in pairs {
            batch.insert(&self.keyspace, *key, *value);
        }
        Ok(batch.commit()?)
    }

    fn get(&self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        Ok(self.keyspace.get(key)?.map(|v| visit(&v)).is_some())
    }

    fn seek_and_scan(&self, start: &[u8], count: usize, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<usize> {
        let mut read = 0;
        for guard in self.keyspace.range(start..).take(count) {
            let (key, value) = guard.into_inner()?;
            visit(&key, &value);
            read += 1;
        }
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        // Seals the active memtable and waits until it is written as a table.
        self.keyspace.rotate_memtable_and_wait()?;
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        drop(self.keyspace);
        drop(self.db);
        Ok(())
    }
}
