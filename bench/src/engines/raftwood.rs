//! raftwood-lsm adapter.

use std::path::Path;

use raftwood_lsm::{Db, Options, ReadOptions, WriteBatch, WriteOptions};

use crate::engine::{CommonConfig, Engine, EngineStats, Result};

pub struct Raftwood {
    db: Db,
    write_options: WriteOptions,
}

impl Raftwood {
    pub fn open(dir: &Path, config: &CommonConfig) -> Result<Raftwood> {
        let options = Options {
            // The block cache holds data, index and filter blocks: this is
            // the engine's whole cache budget.
            block_cache_size_bytes: config.cache_size_bytes,
            memtable_size_bytes: usize::try_from(config.memtable_size_bytes)?,
            wal_enabled: true,
            ..Options::default()
        };
        let db = Db::open(dir, options)?;
        Ok(Raftwood {
            db,
            write_options: WriteOptions { sync: config.sync },
        })
    }
}

impl Engine for Raftwood {
    fn name(&self) -> &'static str {
        "raftwood"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put(key, value, self.write_options)?)
    }

    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        Ok(self.db.write(batch, self.write_options)?)
    }

    fn get(&self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        Ok(self.db.get(key)?.map(|v| visit(&v)).is_some())
    }

    fn seek_and_scan(&self, start: &[u8], count: usize, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<usize> {
        let mut cursor = self.db.iter(ReadOptions::default())?;
        cursor.seek(start)?;
        let mut read = 0;
        while read < count && cursor.valid() {
            visit(cursor.key(), cursor.value());
            read += 1;
            cursor.next()?;
        }
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        Ok(self.db.flush()?)
    }

    fn stats(&self) -> Option<EngineStats> {
        let stats = self.db.stats();
        Some(EngineStats {
            write_amplification: Some(stats.write_amplification()),
            level_sizes_bytes: stats.levels.iter().map(|l| l.size_bytes).collect(),
            level_files: stats.levels.iter().map(|l| l.files).collect(),
            summary: format!(
                "user={} MB wal={} MB flush={} MB compaction_written={} MB compaction_read={} MB \
                 flushes={} compactions={} trivial_moves={} stalls={} slowdowns={} \
                 write_groups={} writes={} cache_hits={} cache_misses={} cache_used={} MiB cache_metadata={} MiB",
                stats.user_bytes_written >> 20,
                stats.wal_bytes_written >> 20,
                stats.flush_bytes_written >> 20,
                stats.compaction_bytes_written >> 20,
                stats.compaction_bytes_read >> 20,
                stats.flushes,
                stats.compactions,
                stats.trivial_moves,
                stats.write_stalls,
                stats.write_slowdowns,
                stats.write_groups,
                stats.writes,
                stats.block_cache_hits,
                stats.block_cache_misses,
                stats.block_cache_usage_bytes >> 20,
                stats.block_cache_metadata_bytes >> 20,
            ),
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.db.close()?)
    }
}
