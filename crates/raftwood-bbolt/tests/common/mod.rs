//! A model of a bbolt file's contents — nested maps — with helpers to write
//! it through the crate's writer and read it back through its reader.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::collections::BTreeMap;
use std::io::Cursor as IoCursor;

use raftwood_bbolt::{ReadAt, Reader, Result, Visitor, Writer, WriterOptions};

/// A bucket's contents: keys to values or nested buckets.
pub type Tree = BTreeMap<Vec<u8>, Node>;

/// A value or a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Data(Vec<u8>),
    Bucket(Tree),
}

/// Writes `root` (whose entries must all be buckets) into a new file.
pub fn write(root: &Tree, options: WriterOptions) -> Vec<u8> {
    let mut writer = Writer::with_options(IoCursor::new(Vec::new()), options).unwrap();
    write_entries(&mut writer, root);
    writer.finish().unwrap().into_inner()
}

fn write_entries(writer: &mut Writer<IoCursor<Vec<u8>>>, tree: &Tree) {
    for (key, node) in tree {
        match node {
            Node::Data(value) => writer.put(key, value).unwrap(),
            Node::Bucket(child) => {
                writer.begin_bucket(key);
                write_entries(writer, child);
                writer.end_bucket().unwrap();
            }
        }
    }
}

/// Rebuilds the model from a walk.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    stack: Vec<(Vec<u8>, Tree)>,
    root: Tree,
}

impl ModelBuilder {
    /// The model read so far.
    pub fn into_root(self) -> Tree {
        self.root
    }

    fn current(&mut self) -> &mut Tree {
        match self.stack.last_mut() {
            Some((_, tree)) => tree,
            None => &mut self.root,
        }
    }
}

impl Visitor for ModelBuilder {
    fn begin_bucket(&mut self, name: &[u8], _sequence: u64) -> Result<()> {
        self.stack.push((name.to_vec(), Tree::new()));
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.current()
            .insert(key.to_vec(), Node::Data(value.to_vec()));
        Ok(())
    }

    fn end_bucket(&mut self) -> Result<()> {
        let (name, tree) = self.stack.pop().unwrap();
        self.current().insert(name, Node::Bucket(tree));
        Ok(())
    }
}

/// Reads the whole file back into a model, checking on the way that every
/// page below the high-water mark is the two metas, the freelist, or
/// reached exactly once (what bbolt's `tx.Check` demands).
pub fn read<S: ReadAt>(source: S) -> Tree {
    let reader = Reader::open(source).unwrap();
    let mut model = ModelBuilder::default();
    let summary = reader.walk(&mut model).unwrap();
    let free = reader.free_pages().unwrap().unwrap_or_default();
    assert_eq!(
        summary.pages + 3 + free.len() as u64,
        reader.meta().high_water,
        "every page is in use or free"
    );
    model.root
}

/// A deterministic byte string of `len` bytes.
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
