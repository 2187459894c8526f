//! sled 0.34 adapter.

use std::path::Path;

use crate::engine::{CommonConfig, Engine, Result};

pub struct Sled {
    db: sled::Db,
    sync: bool,
}

impl Sled {
    pub fn open(dir: &Path, config: &CommonConfig) -> Result<Sled> {
        // `cache_capacity` is sled's page cache, its only cache.
        // `flush_every_ms` keeps its default (500 ms): a background thread
        // writes and fsyncs the log buffer periodically.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_size_bytes)
            .flush_every_ms(Some(500))
            .open()?;
        Ok(Sled { db, sync: config.sync })
    }
}

impl Engine for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.insert(key, value)?;
        if self.sync {
            self.db.flush()?;
        }
        Ok(())
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in pairs {
            batch.insert(*key, *value);
        }
        self.db.apply_batch(batch)?;
        if self.sync {
            self.db.flush()?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        Ok(self.db.get(key)?.map(|v| visit(&v)).is_some())
    }

    fn seek_and_scan(&self, start: &[u8], count: usize, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<usize> {
        let mut read = 0;
        for entry in self.db.range(start..).take(count) {
            let (key, value) = entry?;
            visit(&key, &value);
            read += 1;
        }
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.flush()?;
        drop(self.db);
        Ok(())
    }
}
