//! raftwood-bbolt: writes and reads bbolt (BoltDB) database files — the
//! format of etcd v3 snapshots — streaming in both directions.
//!
//! The format is described byte by byte in `docs/bbolt-format.md`; facts
//! (layout, flags, magic, version, checksum) follow bbolt v1.3.6, the
//! version etcd 3.4 uses. Nothing here depends on the rest of raftwood.
//!
//! Writing takes buckets and keys in order and sends pages to the sink as
//! they fill, so a multi-gigabyte snapshot needs memory for one page per
//! tree level, not for the database:
//!
//! ```
//! use std::io::Cursor as IoCursor;
//! use raftwood_bbolt::{Reader, Value, Writer};
//! # fn main() -> raftwood_bbolt::Result<()> {
//! let mut writer = Writer::new(IoCursor::new(Vec::new()))?;
//! writer.begin_bucket(b"key");
//! writer.put(b"a", b"1")?;
//! writer.put(b"b", b"2")?;
//! writer.end_bucket()?;
//! let file = writer.finish()?.into_inner();
//!
//! let reader = Reader::open(file)?;
//! let bucket = reader.bucket(&[b"key"])?.expect("written above");
//! let entries: Vec<_> = reader.cursor(&bucket).collect::<Result<_, _>>()?;
//! assert_eq!(entries[1].key, b"b");
//! assert_eq!(entries[1].value, Value::Data(b"2".to_vec()));
//! # Ok(()) }
//! ```
//!
//! Reading validates the meta pages as bbolt does and reads pages on demand
//! through [`ReadAt`] (a file, bytes, or any `Read + Seek`). Every
//! malformed input is an [`Error`]: no panic, no unbounded loop. Bytes after
//! the pages the meta page accounts for — etcd's SHA-256 trailer — are not
//! read; [`Reader::data_len`] says where they start.

mod bucket;
mod checksum;
mod cursor;
mod error;
mod freelist;
mod meta;
mod page;
mod page_builder;
mod page_sink;
mod reader;
mod source;
mod tree_builder;
mod visited;
mod walk;
mod writer;

pub use bucket::{Bucket, BucketRoot};
pub use cursor::{Cursor, Entry, MAX_BUCKET_DEPTH, Value};
pub use error::{Error, Result};
pub use meta::{MAGIC, Meta, NO_FREELIST, VERSION};
pub use page::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
pub use reader::Reader;
pub use source::{ReadAt, SeekSource};
pub use walk::{NoVisitor, Visitor, WalkSummary};
pub use writer::{Writer, WriterOptions};
