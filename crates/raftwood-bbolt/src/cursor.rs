//! Iterates a bucket's entries in key order, reading one page per tree
//! level at a time. Every page is reached at most once per walk and keys
//! must strictly increase, so a malformed tree ends the iteration with an
//! error rather than a loop.

use crate::bucket::Bucket;
use crate::error::{Error, Result};
use crate::page::{BUCKET_LEAF_FLAG, Page};
use crate::reader::Reader;
use crate::source::ReadAt;
use crate::visited::Visited;

/// How deep buckets may nest before the reader refuses to follow (etcd uses
/// one level; bbolt has no limit, but a walk must end).
pub const MAX_BUCKET_DEPTH: usize = 64;

/// A value in a bucket: data, or a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain value.
    Data(Vec<u8>),
    /// A nested bucket (the element carries bbolt's bucket flag).
    Bucket(Bucket),
}

/// One entry of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key (or the nested bucket's name).
    pub key: Vec<u8>,
    /// What it holds.
    pub value: Value,
}

impl Entry {
    /// The entry of leaf element `index` of `page`, in a bucket at nesting
    /// `depth`.
    pub(crate) fn from_leaf(page: &Page, index: usize, depth: usize) -> Result<Entry> {
        let element = page.leaf_element(index)?;
        if element.key.is_empty() {
            return Err(Error::EmptyKey {
                page: page.id,
                index,
            });
        }
        let value = if element.flags & BUCKET_LEAF_FLAG != 0 {
            if depth + 1 > MAX_BUCKET_DEPTH {
                return Err(Error::BucketsTooDeep {
                    max: MAX_BUCKET_DEPTH,
                });
            }
            Value::Bucket(Bucket::decode(element.key, element.value, depth + 1)?)
        } else {
            Value::Data(element.value.to_vec())
        };
        Ok(Entry {
            key: element.key.to_vec(),
            value,
        })
    }
}

/// A page on the path from the root to the current leaf, and the next
/// element to visit in it.
#[derive(Debug)]
struct Frame {
    page: Page,
    next: usize,
}

/// The iteration state over one bucket's tree; the pages it has reached are
/// recorded in a [`Visited`] the caller owns, so one record can span many
/// buckets (a whole-file walk).
#[derive(Debug)]
pub(crate) struct TreeWalk {
    bucket: Option<Bucket>,
    depth: usize,
    stack: Vec<Frame>,
    /// Empty before the first key (keys are never empty).
    last_key: Vec<u8>,
}

impl TreeWalk {
    /// A walk over `bucket`, not started.
    pub(crate) fn new(bucket: &Bucket) -> TreeWalk {
        TreeWalk {
            bucket: Some(bucket.clone()),
            depth: bucket.depth,
            stack: Vec::new(),
            last_key: Vec::new(),
        }
    }

    /// The next entry, or `None` at the end.
    pub(crate) fn next_entry<S: ReadAt>(
        &mut self,
        reader: &Reader<S>,
        visited: &mut Visited,
    ) -> Result<Option<Entry>> {
        if let Some(bucket) = self.bucket.take() {
            let root = reader.root_page(&bucket)?;
            mark(reader, visited, &root)?;
            if root.count() == 0 && !root.is_leaf() {
                return Err(Error::EmptyPage {
                    page: root.id,
                    kind: "branch",
                });
            }
            self.stack.push(Frame {
                page: root,
                next: 0,
            });
        }
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            if frame.next >= frame.page.count() {
                self.stack.pop();
                continue;
            }
            let index = frame.next;
            frame.next += 1;
            if frame.page.is_leaf() {
                let entry = Entry::from_leaf(&frame.page, index, self.depth)?;
                if entry.key.as_slice() <= self.last_key.as_slice() {
                    return Err(Error::KeysOutOfOrder {
                        page: frame.page.id,
                    });
                }
                self.last_key.clone_from(&entry.key);
                return Ok(Some(entry));
            }
            let child = frame.page.branch_element(index)?.child;
            let page = reader.read_tree_page(child)?;
            mark(reader, visited, &page)?;
            if page.count() == 0 {
                let kind = if page.is_leaf() { "leaf" } else { "branch" };
                return Err(Error::EmptyPage { page: child, kind });
            }
            self.stack.push(Frame { page, next: 0 });
        }
    }
}

/// Records that `page` (not an inline page) and its overflow were reached.
fn mark<S: ReadAt>(reader: &Reader<S>, visited: &mut Visited, page: &Page) -> Result<()> {
    if page.id == 0 {
        // Inline pages live inside their parent's leaf, not in the file.
        return Ok(());
    }
    let span = u64::from(page.header().overflow) + 1;
    visited.mark(page.id, span, reader.meta().high_water)
}

/// An iterator over a bucket's entries in key order. After an error it
/// yields nothing more.
#[derive(Debug)]
pub struct Cursor<'r, S> {
    reader: &'r Reader<S>,
    walk: TreeWalk,
    visited: Visited,
    failed: bool,
}

impl<'r, S: ReadAt> Cursor<'r, S> {
    pub(crate) fn new(reader: &'r Reader<S>, bucket: &Bucket) -> Cursor<'r, S> {
        Cursor {
            reader,
            walk: TreeWalk::new(bucket),
            visited: Visited::default(),
            failed: false,
        }
    }
}

impl<S: ReadAt> Iterator for Cursor<'_, S> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self
            .walk
            .next_entry(self.reader, &mut self.visited)
            .transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}
