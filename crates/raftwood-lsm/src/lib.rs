//! raftwood-lsm: an embeddable, crash-safe LSM-tree storage engine.
//!
//! See `docs/lsm.md` for a guided tour and `ARCHITECTURE.md` for the codemap.

pub mod error;
pub mod fs;
pub mod iterator;
pub mod key;
pub mod log;
pub mod options;

pub use error::{Error, Result};
pub use options::{Compression, Options, TableOptions, WalRecovery, WriteOptions};
