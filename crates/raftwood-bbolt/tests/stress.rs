//! A large file written and read through files, with the heap measured: the
//! writer holds a page per tree level and the reader a page per level plus
//! a bit per page, so neither grows with the database. Scaled for CI:
//! 200,000 etcd-shaped keys, about 27 MB.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::{AtomicUsize, Ordering};

use raftwood_bbolt::{Reader, Value, Visitor, Writer};

/// The system allocator, counting live bytes and their peak.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[expect(
    unsafe_code,
    reason = "a GlobalAlloc is an unsafe trait; this one only forwards to System and counts"
)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Heap bytes at the peak of `work` above what was live before it.
fn peak_heap_growth<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = work();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

const KEYS: u64 = 200_000;
const VALUE_LEN: usize = 100;
/// Far below the file's size: the budget of a streaming writer or reader.
const HEAP_BUDGET: usize = 1 << 20;

/// etcd's key bucket key: main revision, '_', sub revision.
fn revision_key(main: u64) -> [u8; 17] {
    let mut key = [b'_'; 17];
    key[..8].copy_from_slice(&main.to_be_bytes());
    key[9..].copy_from_slice(&0u64.to_be_bytes());
    key
}

fn value(main: u64) -> [u8; VALUE_LEN] {
    let mut value = [b'v'; VALUE_LEN];
    value[..8].copy_from_slice(&main.to_le_bytes());
    value
}

/// Counts keys and checks each is the next revision with its value.
struct Checker {
    next: u64,
}

impl Visitor for Checker {
    fn begin_bucket(&mut self, name: &[u8], _sequence: u64) -> raftwood_bbolt::Result<()> {
        assert!(name == b"key" || name == b"meta");
        Ok(())
    }

    fn put(&mut self, key: &[u8], value_read: &[u8]) -> raftwood_bbolt::Result<()> {
        if key.len() == 17 {
            assert_eq!(key, revision_key(self.next));
            assert_eq!(value_read, value(self.next));
            self.next += 1;
        }
        Ok(())
    }

    fn end_bucket(&mut self) -> raftwood_bbolt::Result<()> {
        Ok(())
    }
}

#[test]
fn a_large_file_is_written_and_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.db");
    let sink = BufWriter::new(File::create(&path).unwrap());

    let ((), write_heap) = peak_heap_growth(|| {
        let mut writer = Writer::new(sink).unwrap();
        writer.begin_bucket(b"key");
        for main in 1..=KEYS {
            writer.put(&revision_key(main), &value(main)).unwrap();
        }
        writer.end_bucket().unwrap();
        writer.begin_bucket(b"meta");
        writer
            .put(b"consistent_index", &KEYS.to_be_bytes())
            .unwrap();
        writer.end_bucket().unwrap();
        writer.finish().unwrap();
    });
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(file_len > 25_000_000, "{file_len} bytes");
    assert!(
        write_heap < HEAP_BUDGET,
        "the writer's heap peaked {write_heap} bytes above its start"
    );

    let (checker, read_heap) = peak_heap_growth(|| {
        let reader = Reader::open(File::open(&path).unwrap()).unwrap();
        let mut checker = Checker { next: 1 };
        reader.walk(&mut checker).unwrap();
        let key = reader.bucket(&[b"key"]).unwrap().unwrap();
        let found = reader.get(&key, &revision_key(KEYS / 3)).unwrap();
        assert_eq!(found, Some(Value::Data(value(KEYS / 3).to_vec())));
        checker
    });
    assert_eq!(checker.next, KEYS + 1, "every key read back in order");
    assert!(
        read_heap < HEAP_BUDGET,
        "the reader's heap peaked {read_heap} bytes above its start"
    );
    eprintln!("{file_len} bytes; heap peak: writer {write_heap} bytes, reader {read_heap} bytes");
}
