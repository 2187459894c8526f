//! Walks a whole file — every bucket, nested ones included, every key —
//! depth first in key order, handing what it finds to a [`Visitor`]. One
//! record of reached pages spans the walk, so each page is read once and a
//! page shared between buckets is an error, as in bbolt's check.

use crate::bucket::Bucket;
use crate::cursor::{TreeWalk, Value};
use crate::error::{Error, Result};
use crate::page::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use crate::reader::Reader;
use crate::source::ReadAt;
use crate::visited::Visited;
use crate::writer::Writer;

/// Receives a file's contents in order: what a [`Writer`] takes, so a
/// writer is a visitor and a walk copies a file.
pub trait Visitor {
    /// A nested bucket starts; entries until the matching `end_bucket` are
    /// in it.
    fn begin_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()>;
    /// A key and its value in the innermost open bucket.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// The innermost open bucket ends.
    fn end_bucket(&mut self) -> Result<()>;
}

/// What a walk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkSummary {
    /// Buckets, the root bucket not counted.
    pub buckets: u64,
    /// Plain keys in all buckets.
    pub keys: u64,
    /// Pages of bucket trees reached (overflow pages included; meta,
    /// freelist and inline pages not).
    pub pages: u64,
}

impl<S: ReadAt> Reader<S> {
    /// Walks every bucket and key of the file into `visitor`. A plain key
    /// in the root bucket is an error: bbolt's API cannot make one, and
    /// etcd would not read such a file.
    pub fn walk(&self, visitor: &mut impl Visitor) -> Result<WalkSummary> {
        let mut visited = Visited::default();
        let mut summary = WalkSummary::default();
        walk_bucket(
            self,
            &self.root_bucket(),
            &mut visited,
            visitor,
            &mut summary,
        )?;
        summary.pages = visited.reached();
        Ok(summary)
    }
}

fn walk_bucket<S: ReadAt>(
    reader: &Reader<S>,
    bucket: &Bucket,
    visited: &mut Visited,
    visitor: &mut impl Visitor,
    summary: &mut WalkSummary,
) -> Result<()> {
    let mut walk = TreeWalk::new(bucket);
    while let Some(entry) = walk.next_entry(reader, visited)? {
        match entry.value {
            Value::Bucket(child) => {
                summary.buckets += 1;
                visitor.begin_bucket(&entry.key, child.sequence)?;
                walk_bucket(reader, &child, visited, visitor, summary)?;
                visitor.end_bucket()?;
            }
            Value::Data(_) if bucket.depth == 0 => {
                return Err(Error::BadBucketValue {
                    name: String::from_utf8_lossy(&entry.key).into_owned(),
                    detail: "a plain key in the root bucket",
                });
            }
            Value::Data(value) => {
                summary.keys += 1;
                visitor.put(&entry.key, &value)?;
            }
        }
    }
    Ok(())
}

impl<W: std::io::Write + std::io::Seek> Visitor for Writer<W> {
    fn begin_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()> {
        check_limits(name, &[])?;
        Writer::begin_bucket(self, name);
        self.set_sequence(sequence);
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_limits(key, value)?;
        Writer::put(self, key, value)
    }

    fn end_bucket(&mut self) -> Result<()> {
        Writer::end_bucket(self)
    }
}

/// A file read may hold what bbolt's put refuses; the writer asserts the
/// limits, so a copy checks them first.
fn check_limits(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::TooLarge {
            what: "key",
            len: key.len(),
        });
    }
    if value.len() > MAX_VALUE_SIZE {
        return Err(Error::TooLarge {
            what: "value",
            len: value.len(),
        });
    }
    Ok(())
}

/// A visitor that keeps nothing: [`Reader::walk`] with it checks a file.
#[derive(Debug, Default)]
pub struct NoVisitor;

impl Visitor for NoVisitor {
    fn begin_bucket(&mut self, _name: &[u8], _sequence: u64) -> Result<()> {
        Ok(())
    }

    fn put(&mut self, _key: &[u8], _value: &[u8]) -> Result<()> {
        Ok(())
    }

    fn end_bucket(&mut self) -> Result<()> {
        Ok(())
    }
}
