//! Malformed files: every kind of damage the reader names is a typed error,
//! and no damage at all — truncation anywhere, any byte changed, meta
//! fields rewritten with a valid checksum — makes it panic or loop.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{Node, Tree, filler, write};
use raftwood_bbolt::{BucketRoot, Error, NoVisitor, Reader, Result, Value, WriterOptions};

const PAGE: usize = 1024;

/// A file with inline buckets, a bucket two branch levels deep, overflow
/// values and a nested bucket, in 1 KiB pages (so it stays small).
fn sample() -> Vec<u8> {
    let mut root = Tree::new();
    let key: Tree = (0..400u64)
        .map(|i| {
            (
                format!("k{i:05}").into_bytes(),
                Node::Data(filler(i, (i % 5) as usize * 3)),
            )
        })
        .collect();
    root.insert(b"key".to_vec(), Node::Bucket(key));
    let mut big = Tree::new();
    big.insert(b"a".to_vec(), Node::Data(filler(1, 3000)));
    big.insert(b"b".to_vec(), Node::Data(Vec::new()));
    let nested: Tree = [(b"x".to_vec(), Node::Data(b"y".to_vec()))]
        .into_iter()
        .collect();
    big.insert(b"c".to_vec(), Node::Bucket(nested));
    root.insert(b"big".to_vec(), Node::Bucket(big));
    root.insert(
        b"meta".to_vec(),
        Node::Bucket(
            [(b"m".to_vec(), Node::Data(b"1".to_vec()))]
                .into_iter()
                .collect(),
        ),
    );
    write(
        &root,
        WriterOptions {
            page_size: PAGE,
            ..WriterOptions::default()
        },
    )
}

/// Everything a caller might do with a file; the first error.
fn read_everything(file: &[u8]) -> Result<()> {
    let reader = Reader::open(file)?;
    reader.walk(&mut NoVisitor)?;
    reader.free_pages()?;
    let root = reader.root_bucket();
    for entry in reader.cursor(&root) {
        if let Value::Bucket(bucket) = entry?.value {
            // A few lookups: the walk already read every page.
            for entry in reader.cursor(&bucket).step_by(50) {
                reader.get(&bucket, &entry?.key)?;
            }
        }
    }
    reader.bucket(&[b"big", b"c"])?;
    Ok(())
}

fn meta_offset(page: usize) -> usize {
    page * PAGE + 16
}

/// Rewrites meta page `page`'s checksum to match its contents.
fn fix_checksum(file: &mut [u8], page: usize) {
    let meta = meta_offset(page);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in &file[meta..meta + 56] {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
    }
    file[meta + 56..meta + 64].copy_from_slice(&hash.to_le_bytes());
}

fn root_page_of(file: &[u8], bucket: &[u8]) -> u64 {
    let reader = Reader::open(file).unwrap();
    match reader.bucket(&[bucket]).unwrap().unwrap().root {
        BucketRoot::Page(id) => id,
        BucketRoot::Inline(_) => panic!("{bucket:?} is inline"),
    }
}

fn put_u64(file: &mut [u8], at: usize, value: u64) {
    file[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Byte offset of branch element `index`'s child id in page `page`.
fn branch_child_at(page: u64, index: usize) -> usize {
    page as usize * PAGE + 16 + index * 16 + 8
}

#[test]
fn the_sample_reads_cleanly() {
    read_everything(&sample()).unwrap();
}

#[test]
fn a_truncated_file_is_an_error_at_every_length() {
    let file = sample();
    for len in (0..file.len())
        .step_by(97)
        .chain([1, 16, 79, 80, PAGE, 2 * PAGE, file.len() - 1])
    {
        let error = read_everything(&file[..len]).unwrap_err();
        assert!(
            matches!(error, Error::Truncated { .. }),
            "length {len}: {error}"
        );
    }
}

#[test]
fn bad_magic_version_and_checksum_are_named() {
    let mut file = sample();
    file[meta_offset(0)] ^= 0xFF;
    file[meta_offset(1)] ^= 0xFF;
    assert!(matches!(
        Reader::open(file.as_slice()),
        Err(Error::BadMagic { page: 0, .. })
    ));

    let mut file = sample();
    for page in [0, 1] {
        file[meta_offset(page) + 4] = 9;
        fix_checksum(&mut file, page);
    }
    assert!(matches!(
        Reader::open(file.as_slice()),
        Err(Error::BadVersion { page: 0, found: 9 })
    ));

    let mut file = sample();
    file[meta_offset(0) + 48] ^= 1;
    file[meta_offset(1) + 48] ^= 1;
    assert!(matches!(
        Reader::open(file.as_slice()),
        Err(Error::BadChecksum { page: 0, .. })
    ));
}

#[test]
fn a_damaged_newer_meta_falls_back_to_the_older() {
    let mut file = sample();
    let newer = Reader::open(file.as_slice()).unwrap().meta_page() as usize;
    file[meta_offset(newer) + 48] ^= 0x40;
    let reader = Reader::open(file.as_slice()).unwrap();
    assert_eq!(reader.meta_page() as usize, 1 - newer);
    read_everything(&file).unwrap();
}

#[test]
fn a_page_beyond_the_high_water_mark_is_named() {
    let mut file = sample();
    let root = root_page_of(&file, b"key");
    put_u64(&mut file, branch_child_at(root, 0), 1_000_000);
    assert!(matches!(
        read_everything(&file),
        Err(Error::PageOutOfBounds {
            page: 1_000_000,
            ..
        })
    ));
}

#[test]
fn a_cycle_and_a_shared_page_are_named() {
    let mut file = sample();
    let root = root_page_of(&file, b"key");
    put_u64(&mut file, branch_child_at(root, 0), root);
    assert!(
        matches!(read_everything(&file), Err(Error::PageReachedTwice { page }) if page == root)
    );

    let mut file = sample();
    let first = u64::from_le_bytes(file[branch_child_at(root, 0)..][..8].try_into().unwrap());
    put_u64(&mut file, branch_child_at(root, 1), first);
    assert!(matches!(
        read_everything(&file),
        Err(Error::PageReachedTwice { .. })
    ));
}

#[test]
fn wrong_page_flags_and_ids_are_named() {
    let mut file = sample();
    let root = root_page_of(&file, b"key") as usize;
    file[root * PAGE + 8] = 0x10;
    assert!(matches!(
        read_everything(&file),
        Err(Error::WrongPageType { flags: 0x10, .. })
    ));

    let mut file = sample();
    put_u64(&mut file, root * PAGE, 3);
    assert!(matches!(
        read_everything(&file),
        Err(Error::PageIdMismatch { found: 3, .. })
    ));
}

#[test]
fn an_element_outside_its_page_is_named() {
    let mut file = sample();
    // Down the first children to the first leaf of the key bucket.
    let mut leaf = root_page_of(&file, b"key") as usize;
    while file[leaf * PAGE + 8] == 0x01 {
        leaf = u64::from_le_bytes(
            file[branch_child_at(leaf as u64, 0)..][..8]
                .try_into()
                .unwrap(),
        ) as usize;
    }
    // Element 0's pos.
    file[leaf * PAGE + 16 + 4..][..4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert!(matches!(
        read_everything(&file),
        Err(Error::ElementOutOfBounds { index: 0, .. })
    ));
}

#[test]
fn no_single_byte_change_panics_or_loops() {
    let file = sample();
    for at in 0..file.len() {
        // Alternately every bit and the lowest bit: large and small damage
        // across every field, at half the cost of both everywhere.
        let mut damaged = file.clone();
        damaged[at] ^= if at % 2 == 0 { 0xFF } else { 0x01 };
        let _ = read_everything(&damaged);
    }
}

#[test]
fn meta_fields_with_a_valid_checksum_never_panic() {
    let file = sample();
    let values = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        1023,
        1024,
        4096,
        u64::from(u32::MAX),
        u64::MAX / 2,
        u64::MAX,
    ];
    // Every u64 field of the meta (and the two u32 halves of the first).
    for field in (0..56).step_by(4) {
        for value in values {
            let mut damaged = file.clone();
            for page in [0, 1] {
                let at = meta_offset(page) + field;
                damaged[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
                if field % 8 == 0 {
                    damaged[at + 4..at + 8].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
                }
                fix_checksum(&mut damaged, page);
            }
            let _ = read_everything(&damaged);
        }
    }
}
