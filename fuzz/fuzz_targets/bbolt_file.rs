//! Arbitrary bytes as a bbolt file (an etcd snapshot): the reader must
//! return or fail with an error, never panic or loop. A file it walks
//! completely must copy through the writer into a file that walks to the
//! same contents.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use raftwood_bbolt::{Reader, Result, Value, Visitor, Writer};

/// Everything a walk reports, in order.
#[derive(Debug, Default, PartialEq)]
struct Transcript(Vec<(u8, Vec<u8>, Vec<u8>)>);

impl Visitor for Transcript {
    fn begin_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()> {
        self.0.push((b'b', name.to_vec(), sequence.to_le_bytes().to_vec()));
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.push((b'p', key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn end_bucket(&mut self) -> Result<()> {
        self.0.push((b'e', Vec::new(), Vec::new()));
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = Reader::open(data) else {
        return;
    };
    let _ = reader.free_pages();
    // Lookups descend by branch keys, a path the walk does not take.
    for entry in reader.cursor(&reader.root_bucket()).take(4) {
        let Ok(entry) = entry else { break };
        if let Value::Bucket(bucket) = entry.value {
            let _ = reader.get(&bucket, b"probe");
            let _ = reader.get(&bucket, &entry.key);
        }
    }
    let mut transcript = Transcript::default();
    if reader.walk(&mut transcript).is_err() {
        return;
    }
    let mut writer = Writer::new(Cursor::new(Vec::new())).expect("a writer on memory");
    reader.walk(&mut writer).expect("a walk that succeeded once copies");
    let copy = writer.finish().expect("finish on memory").into_inner();
    let mut copied = Transcript::default();
    Reader::open(copy.as_slice())
        .and_then(|copy| copy.walk(&mut copied))
        .expect("a file the writer made reads back");
    assert_eq!(copied, transcript, "the copy holds what the original held");
});
