//! Files the writer makes read back to what was written: shapes that
//! exercise inline buckets, overflow pages, branch levels and nesting, and
//! random trees.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::Cursor as IoCursor;

use common::{Node, Tree, filler, read, write};
use proptest::prelude::*;
use raftwood_bbolt::{BucketRoot, Reader, SeekSource, Value, Writer, WriterOptions};

fn bucket(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Node {
    Node::Bucket(
        entries
            .into_iter()
            .map(|(k, v)| (k, Node::Data(v)))
            .collect(),
    )
}

fn numbered_key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// The flags of page `id` and of its first child when it is a branch page,
/// read straight from the bytes.
fn page_flags(file: &[u8], page_size: usize, id: u64) -> u16 {
    let at = id as usize * page_size;
    u16::from_le_bytes([file[at + 8], file[at + 9]])
}

fn first_child(file: &[u8], page_size: usize, id: u64) -> u64 {
    let at = id as usize * page_size + 16 + 8;
    u64::from_le_bytes(file[at..at + 8].try_into().unwrap())
}

#[test]
fn an_empty_database_is_four_pages_like_bbolts_own() {
    let file = write(&Tree::new(), WriterOptions::default());
    assert_eq!(file.len(), 4 * 4096);
    assert_eq!(read(file.as_slice()), Tree::new());
}

#[test]
fn small_buckets_are_inline_and_large_ones_are_not() {
    let mut root = Tree::new();
    root.insert(b"alarm".to_vec(), bucket([]));
    root.insert(
        b"cluster".to_vec(),
        bucket([(b"clusterVersion".to_vec(), b"3.4.0".to_vec())]),
    );
    root.insert(
        b"key".to_vec(),
        bucket((0..100).map(|i| (numbered_key(i), filler(i, 50)))),
    );
    let file = write(&root, WriterOptions::default());
    assert_eq!(read(file.as_slice()), root);

    let reader = Reader::open(file.as_slice()).unwrap();
    let alarm = reader.bucket(&[b"alarm"]).unwrap().unwrap();
    let cluster = reader.bucket(&[b"cluster"]).unwrap().unwrap();
    let key = reader.bucket(&[b"key"]).unwrap().unwrap();
    assert!(matches!(alarm.root, BucketRoot::Inline(_)));
    assert!(matches!(cluster.root, BucketRoot::Inline(_)));
    assert!(matches!(key.root, BucketRoot::Page(_)));
    assert_eq!(reader.bucket(&[b"missing"]).unwrap(), None);
}

#[test]
fn values_larger_than_a_page_span_overflow_pages() {
    let entries = vec![
        (b"a".to_vec(), Vec::new()),
        (b"b".to_vec(), filler(1, 4096)),
        (b"c".to_vec(), filler(2, 10_000)),
        (b"d".to_vec(), Vec::new()),
        (b"e".to_vec(), filler(3, 1 << 20)),
        (b"f".to_vec(), b"x".to_vec()),
    ];
    let mut root = Tree::new();
    root.insert(b"big".to_vec(), bucket(entries.clone()));
    let file = write(&root, WriterOptions::default());
    assert_eq!(read(file.as_slice()), root);

    let reader = Reader::open(file.as_slice()).unwrap();
    let big = reader.bucket(&[b"big"]).unwrap().unwrap();
    for (key, value) in entries {
        assert_eq!(reader.get(&big, &key).unwrap(), Some(Value::Data(value)));
    }
    assert_eq!(reader.get(&big, b"zz").unwrap(), None);
}

#[test]
fn thousands_of_keys_make_branch_pages_two_levels_deep() {
    let page_size = 1024;
    let options = WriterOptions {
        page_size,
        ..WriterOptions::default()
    };
    let count = 30_000;
    let mut root = Tree::new();
    root.insert(
        b"key".to_vec(),
        bucket((0..count).map(|i| (numbered_key(i), filler(i, i as usize % 7)))),
    );
    // One-byte keys, each a separate bucket, in the same file.
    root.insert(
        b"tiny".to_vec(),
        bucket((1..=255u8).map(|b| (vec![b], vec![b]))),
    );
    let file = write(&root, options);
    assert_eq!(read(file.as_slice()), root);

    let reader = Reader::open(file.as_slice()).unwrap();
    let key = reader.bucket(&[b"key"]).unwrap().unwrap();
    let BucketRoot::Page(root_page) = key.root else {
        panic!("a large bucket is not inline")
    };
    let branch = 0x01;
    assert_eq!(
        page_flags(&file, page_size, root_page),
        branch,
        "root is a branch"
    );
    let child = first_child(&file, page_size, root_page);
    assert_eq!(
        page_flags(&file, page_size, child),
        branch,
        "and so is its child"
    );
    for i in (0..count).step_by(997) {
        let expected = Value::Data(filler(i, i as usize % 7));
        assert_eq!(reader.get(&key, &numbered_key(i)).unwrap(), Some(expected));
    }
}

#[test]
fn nested_buckets_and_sequences_round_trip() {
    let mut writer = Writer::new(IoCursor::new(Vec::new())).unwrap();
    writer.begin_bucket(b"outer");
    writer.set_sequence(42);
    writer.put(b"a", b"1").unwrap();
    writer.begin_bucket(b"b-inner");
    writer.begin_bucket(b"deepest");
    writer.put(b"k", b"v").unwrap();
    writer.end_bucket().unwrap();
    writer.end_bucket().unwrap();
    writer.put(b"c", b"3").unwrap();
    writer.end_bucket().unwrap();
    let file = writer.finish().unwrap().into_inner();

    let mut inner = Tree::new();
    inner.insert(
        b"deepest".to_vec(),
        bucket([(b"k".to_vec(), b"v".to_vec())]),
    );
    let mut outer = Tree::new();
    outer.insert(b"a".to_vec(), Node::Data(b"1".to_vec()));
    outer.insert(b"b-inner".to_vec(), Node::Bucket(inner));
    outer.insert(b"c".to_vec(), Node::Data(b"3".to_vec()));
    let mut root = Tree::new();
    root.insert(b"outer".to_vec(), Node::Bucket(outer));
    assert_eq!(read(file.as_slice()), root);

    let reader = Reader::open(file.as_slice()).unwrap();
    assert_eq!(reader.bucket(&[b"outer"]).unwrap().unwrap().sequence, 42);
    let deepest = reader
        .bucket(&[b"outer", b"b-inner", b"deepest"])
        .unwrap()
        .unwrap();
    assert_eq!(deepest.depth, 3);
    assert_eq!(
        reader.bucket(&[b"outer", b"a"]).unwrap(),
        None,
        "a plain key is not a bucket"
    );
}

#[test]
fn bytes_after_the_data_are_left_alone() {
    let mut root = Tree::new();
    root.insert(b"key".to_vec(), bucket([(b"a".to_vec(), b"1".to_vec())]));
    let mut file = write(&root, WriterOptions::default());
    let data_len = file.len() as u64;
    file.extend_from_slice(&[0xAB; 32]);
    let reader = Reader::open(file.as_slice()).unwrap();
    assert_eq!(reader.data_len(), data_len);
    assert_eq!(reader.file_len(), data_len + 32);
    assert_eq!(read(file.as_slice()), root);
}

#[test]
fn files_and_seekable_readers_are_sources_too() {
    let mut root = Tree::new();
    root.insert(
        b"key".to_vec(),
        bucket((0..2000).map(|i| (numbered_key(i), filler(i, 30)))),
    );
    let file = write(&root, WriterOptions::default());
    assert_eq!(read(SeekSource::new(IoCursor::new(file.clone()))), root);
    let mut on_disk = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut on_disk, &file).unwrap();
    assert_eq!(read(std::fs::File::open(on_disk.path()).unwrap()), root);
}

#[test]
fn the_newer_meta_page_carries_the_writers_txid() {
    let options = WriterOptions {
        txid: 7,
        ..WriterOptions::default()
    };
    let file = write(&Tree::new(), options);
    let reader = Reader::open(file.as_slice()).unwrap();
    assert_eq!(reader.meta().txid, 7);
    assert_eq!(
        reader.meta_page(),
        1,
        "bbolt writes txid t's meta to page t % 2"
    );
}

#[test]
#[should_panic(expected = "strictly increase")]
fn keys_out_of_order_are_a_caller_bug() {
    let mut writer = Writer::new(IoCursor::new(Vec::new())).unwrap();
    writer.begin_bucket(b"key");
    writer.put(b"b", b"").unwrap();
    writer.put(b"a", b"").unwrap();
}

#[test]
#[should_panic(expected = "root bucket holds only buckets")]
fn a_put_outside_a_bucket_is_a_caller_bug() {
    let mut writer = Writer::new(IoCursor::new(Vec::new())).unwrap();
    writer.put(b"a", b"").unwrap();
}

fn arb_tree(depth: u32) -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..9000),
    ]
    .prop_map(Node::Data);
    let node = leaf.prop_recursive(depth, 400, 40, |inner| {
        proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..12), inner, 0..40)
            .prop_map(Node::Bucket)
    });
    proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..12), node, 0..8)
        .prop_map(|root| {
            // The root bucket holds only buckets.
            root.into_iter()
                .map(|(k, n)| match n {
                    Node::Data(v) => (
                        k,
                        Node::Bucket(std::iter::once((b"v".to_vec(), Node::Data(v))).collect()),
                    ),
                    bucket => (k, bucket),
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_trees_round_trip(
        root in arb_tree(3),
        page_size in prop_oneof![Just(1024usize), Just(4096)],
        fill_percent in prop_oneof![Just(0.5f64), Just(1.0)],
    ) {
        let options = WriterOptions { page_size, fill_percent, txid: 1 };
        let file = write(&root, options);
        prop_assert_eq!(read(file.as_slice()), root);
    }
}
