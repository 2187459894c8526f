//! Snapshots: the state machine's checkpoint plus the log position and
//! membership it stands for — one home for their whole lifecycle, every
//! step on the storage seam (`raftwood_lsm::fs::FileSystem`), so the
//! crash-modelling filesystem can cut power inside any of them.
//!
//! - **take** (`take.rs`, on the apply thread): when the applied index has
//!   moved `--snapshot-count` entries past the last snapshot, checkpoint
//!   the state machine into `snap/<index>.tmp`;
//! - **finish** or **discard** (`store.rs`, on the persistence thread,
//!   through `driver::SnapshotFiles`): once the raft core compacts its log
//!   to it, write its meta and give it its final name, then let the log
//!   drop the entries it covers; or delete it;
//! - **send** and **receive**: streamed as chunks to a follower that needs
//!   entries the leader no longer has (`docs/peer-protocol.md`;
//!   `transport/snapshot_send.rs`, `transport/snapshot_receive.rs`);
//! - **install** (`install.rs`, on the apply thread): the received
//!   checkpoint becomes the live state machine, and only then is the raft
//!   core told;
//! - **keep** (`keep.rs`): the live state machine kept as the snapshot its
//!   log starts at, when the member has none (bootstrap, install, a
//!   restart after an interrupted install), so that it can send one.

mod install;
mod keep;
pub mod meta_file;
mod store;
mod take;

pub use install::{install, installed_snapshot};
pub use keep::{keep_live_store, keep_live_store_if_missing};
pub use meta_file::{META_FILE, decode as decode_meta, encode as encode_meta};
pub use store::SnapshotStore;
pub use take::{Checkpoint, TakenSnapshot, checkpoint_due, take};
