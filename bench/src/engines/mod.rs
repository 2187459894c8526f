//! One adapter per engine.

use std::path::Path;

use crate::engine::{CommonConfig, Engine, Result};

pub mod fjall;
pub mod raftwood;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod sled;

/// Engines this build can run.
pub fn available() -> &'static [&'static str] {
    if cfg!(feature = "rocksdb") {
        &["raftwood", "fjall", "sled", "rocksdb"]
    } else {
        &["raftwood", "fjall", "sled"]
    }
}

/// Opens `name` in `dir` (a fresh directory).
pub fn open(name: &str, dir: &Path, config: &CommonConfig) -> Result<Box<dyn Engine>> {
    Ok(match name {
        "raftwood" => Box::new(raftwood::Raftwood::open(dir, config)?),
        "fjall" => Box::new(fjall::Fjall::open(dir, config)?),
        "sled" => Box::new(sled::Sled::open(dir, config)?),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Box::new(rocksdb::Rocks::open(dir, config)?),
        #[cfg(not(feature = "rocksdb"))]
        "rocksdb" => return Err("this build has no RocksDB: rebuild with `--features rocksdb`".into()),
        other => return Err(format!("unknown engine {other:?}; known: {:?}", available()).into()),
    })
}
