//! raftwood-lsm: an embeddable, crash-safe LSM-tree storage engine.
//!
//! ```no_run
//! use raftwood_lsm::{Db, Options, WriteOptions};
//! # fn main() -> raftwood_lsm::Result<()> {
//! let db = Db::open("/tmp/example-db", Options::default())?;
//! db.put(b"hello", b"world", WriteOptions { sync: true })?;
//! assert_eq!(db.get(b"hello")?, Some(b"world".to_vec()));
//! for entry in db.range(Some(b"a"), Some(b"z"))? {
//!     let (key, value) = entry?;
//!     println!("{key:?} = {value:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! See `docs/lsm.md` for a guided tour and `ARCHITECTURE.md` for the codemap.
//!
//! The public face is the items re-exported here and two modules: [`fs`]
//! (the storage seam every file goes through) and [`length`]. The format
//! modules ([`key`], [`log`], [`memtable`], [`sstable`], [`version`]) are
//! public for the fuzz targets (`fuzz/`), the corruption tests and the
//! examples that read formats directly; everything else is internal.

mod batch;
mod cache;
mod compaction;
mod db;
mod error;
mod filename;
pub mod fs;
mod iterator;
pub mod key;
pub mod length;
pub mod log;
pub mod memtable;
mod options;
mod snapshot;
pub mod sstable;
mod stats;
pub mod version;

pub use batch::WriteBatch;
pub use db::{Db, ReadOptions};
pub use error::{Error, Result};
pub use iterator::{DbIterator, RangeIter};
pub use options::{
    Compression, LevelTableOptions, Options, TableOptions, WalRecovery, WriteOptions,
};
pub use snapshot::Snapshot;
pub use stats::Stats;
