//! [`VersionEdit`]: one change to the set of live files, as recorded in the
//! manifest. Byte layout in `docs/manifest-format.md`.

use std::sync::Arc;

use super::FileMetadata;
use crate::cache::ReaderSlot;
use crate::error::{Error, Result};

/// The newest manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

const TAG_FORMAT_VERSION: u8 = 1;
const TAG_LOG_NUMBER: u8 = 2;
const TAG_NEXT_FILE_NUMBER: u8 = 3;
const TAG_LAST_SEQUENCE: u8 = 4;
const TAG_APPLIED_INDEX: u8 = 5;
const TAG_DELETED_FILE: u8 = 6;
const TAG_ADDED_FILE: u8 = 7;

/// A change to the version set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// Written in the first edit of every manifest.
    pub format_version: Option<u32>,
    /// WALs numbered below this are fully flushed and may be deleted.
    pub log_number: Option<u64>,
    /// The next file number to allocate.
    pub next_file_number: Option<u64>,
    /// The largest sequence number in any table.
    pub last_sequence_number: Option<u64>,
    /// The caller's applied-index marker made durable by this edit.
    pub applied_index: Option<u64>,
    /// Files removed: (level, file number).
    pub deleted_files: Vec<(usize, u64)>,
    /// Files added: (level, metadata).
    pub added_files: Vec<(usize, Arc<FileMetadata>)>,
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_key(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
}

struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let bytes = self
            .rest
            .get(..n)
            .ok_or_else(|| Error::corruption("manifest", "truncated version edit"))?;
        self.rest = &self.rest[n..];
        Ok(bytes)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn level(&mut self) -> Result<usize> {
        let level = self.u8()? as usize;
        if level >= super::MAX_LEVELS {
            return Err(Error::corruption(
                "manifest",
                format!("level {level} out of range"),
            ));
        }
        Ok(level)
    }
    fn key(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
}

impl VersionEdit {
    /// Appends the encoded edit to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if let Some(v) = self.format_version {
            out.push(TAG_FORMAT_VERSION);
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (tag, value) in [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE_NUMBER, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence_number),
            (TAG_APPLIED_INDEX, self.applied_index),
        ] {
            if let Some(value) = value {
                out.push(tag);
                put_u64(out, value);
            }
        }
        for &(level, number) in &self.deleted_files {
            // Levels are stored as one byte (and read back below 16).
            assert!(level < super::MAX_LEVELS, "a deletion at level {level}");
            out.push(TAG_DELETED_FILE);
            out.push(level as u8);
            put_u64(out, number);
        }
        for (level, file) in &self.added_files {
            assert!(
                *level < super::MAX_LEVELS,
                "file {} added at level {level}",
                file.number
            );
            out.push(TAG_ADDED_FILE);
            out.push(*level as u8);
            put_u64(out, file.number);
            put_u64(out, file.size_bytes);
            put_u64(out, file.smallest_sequence_number);
            put_u64(out, file.largest_sequence_number);
            put_u64(out, file.num_entries);
            put_u64(out, file.num_range_tombstones);
            put_key(out, &file.smallest_key);
            put_key(out, &file.largest_key);
        }
        // Nothing goes into the manifest that recovery would refuse or read
        // differently.
        debug_assert_eq!(
            VersionEdit::decode(&out[start..]).ok().as_ref(),
            Some(self),
            "a version edit decodes to itself"
        );
    }

    /// Decodes an edit, rejecting unknown tags and truncation.
    pub fn decode(bytes: &[u8]) -> Result<VersionEdit> {
        let mut d = Decoder { rest: bytes };
        let mut edit = VersionEdit::default();
        while !d.rest.is_empty() {
            match d.u8()? {
                TAG_FORMAT_VERSION => edit.format_version = Some(d.u32()?),
                TAG_LOG_NUMBER => edit.log_number = Some(d.u64()?),
                TAG_NEXT_FILE_NUMBER => edit.next_file_number = Some(d.u64()?),
                TAG_LAST_SEQUENCE => edit.last_sequence_number = Some(d.u64()?),
                TAG_APPLIED_INDEX => edit.applied_index = Some(d.u64()?),
                TAG_DELETED_FILE => {
                    let level = d.level()?;
                    edit.deleted_files.push((level, d.u64()?));
                }
                TAG_ADDED_FILE => {
                    let level = d.level()?;
                    let file = FileMetadata {
                        number: d.u64()?,
                        size_bytes: d.u64()?,
                        smallest_sequence_number: d.u64()?,
                        largest_sequence_number: d.u64()?,
                        num_entries: d.u64()?,
                        num_range_tombstones: d.u64()?,
                        smallest_key: d.key()?,
                        largest_key: d.key()?,
                        reader: ReaderSlot::default(),
                        read_cost: Default::default(),
                    };
                    if file.smallest_key.len() < crate::key::TRAILER_LEN
                        || file.largest_key.len() < crate::key::TRAILER_LEN
                        || file.smallest_user_key() > file.largest_user_key()
                    {
                        return Err(Error::corruption(
                            "manifest",
                            format!("file {} has an invalid key range", file.number),
                        ));
                    }
                    edit.added_files.push((level, Arc::new(file)));
                }
                other => {
                    return Err(Error::corruption(
                        "manifest",
                        format!("unknown version edit tag {other}"),
                    ));
                }
            }
        }
        Ok(edit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};
    use proptest::prelude::*;

    fn sample() -> VersionEdit {
        VersionEdit {
            format_version: Some(MANIFEST_FORMAT_VERSION),
            log_number: Some(4),
            next_file_number: Some(9),
            last_sequence_number: Some(1000),
            applied_index: Some(77),
            deleted_files: vec![(0, 3), (2, 5)],
            added_files: vec![(
                1,
                Arc::new(FileMetadata {
                    number: 8,
                    size_bytes: 4096,
                    smallest_key: internal_key(b"a", 5, ValueKind::Value),
                    largest_key: internal_key(b"z", 9, ValueKind::Deletion),
                    smallest_sequence_number: 5,
                    largest_sequence_number: 9,
                    num_entries: 10,
                    num_range_tombstones: 1,
                    reader: Default::default(),
                    read_cost: Default::default(),
                }),
            )],
        }
    }

    #[test]
    fn round_trip() {
        let edit = sample();
        let mut bytes = Vec::new();
        edit.encode(&mut bytes);
        assert_eq!(VersionEdit::decode(&bytes).unwrap(), edit);
    }

    #[test]
    fn every_truncation_is_corruption_or_a_shorter_edit() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        for cut in 0..bytes.len() {
            if let Ok(edit) = VersionEdit::decode(&bytes[..cut]) {
                // A cut on a field boundary decodes to a prefix of the fields.
                assert!(edit.added_files.is_empty(), "cut {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = VersionEdit::decode(&bytes);
        }
    }
}
