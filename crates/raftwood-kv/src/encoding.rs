//! The key layout in the LSM, byte by byte (specified in docs/kv-format.md).
//!
//! Three key spaces, told apart by their first byte:
//!
//! - `h` history: `h | escape(key) | 0x00 0x01 | !mod_revision (u64 BE)` →
//!   a [`Record`] (a superseded version or a tombstone). Newest first per
//!   key, so one seek finds the newest version at or below a revision.
//! - `l` live: `l | key` → the key's current [`Record`]. Present only while
//!   the key exists; a point read of the current value is one `get`.
//! - `r` revision log: `r | revision (u64 BE) | sub-revision (u32 BE)` →
//!   `kind u8 | key`: every change in the order etcd numbers them, what a
//!   watcher replays.
//! - `e` leases: `e | id (u64 BE)` → granted TTL in seconds (i64 LE).
//! - `a` lease attachments: `a | id (u64 BE) | key` → empty: the keys a
//!   lease revoke deletes.
//! - `s` store meta: `s | name` → a fixed-width integer.
//!
//! Values are little-endian fixed-width integers; keys that must sort use
//! big-endian.

use crate::error::KvError;
use crate::proto::mvccpb::KeyValue;

/// First byte of history keys.
pub const HISTORY_PREFIX: u8 = b'h';
/// First byte of live keys.
pub const LIVE_PREFIX: u8 = b'l';
/// First byte of revision log keys.
pub const REVISION_PREFIX: u8 = b'r';
/// First byte of lease keys.
pub const LEASE_PREFIX: u8 = b'e';
/// First byte of lease attachment keys.
pub const ATTACHMENT_PREFIX: u8 = b'a';
/// First byte of a member's record in the member registry.
pub const MEMBER_PREFIX: u8 = b'm';
/// First byte of a removed member's marker.
pub const REMOVED_PREFIX: u8 = b'x';

/// `prefix | id` (8 bytes, big-endian, so ids sort numerically).
fn prefixed_id(prefix: u8, id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(prefix);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// The id of a `prefix | id` key.
fn decode_prefixed_id(prefix: u8, raw: &[u8], what: &str) -> Result<u64, KvError> {
    match raw {
        [first, rest @ ..] if *first == prefix => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| KvError::Corruption(format!("bad {what} key {raw:?}"))),
        _ => Err(KvError::Corruption(format!("bad {what} key {raw:?}"))),
    }
}

/// `e | id`.
pub fn lease_key(id: i64) -> Vec<u8> {
    prefixed_id(LEASE_PREFIX, id as u64)
}

/// The lease id of a lease key.
pub fn decode_lease_key(raw: &[u8]) -> Result<i64, KvError> {
    decode_prefixed_id(LEASE_PREFIX, raw, "lease").map(|id| id as i64)
}

/// `m | id`: member `id`'s record.
pub fn member_key(id: u64) -> Vec<u8> {
    prefixed_id(MEMBER_PREFIX, id)
}

/// The member id of a member record's key.
pub fn decode_member_key(raw: &[u8]) -> Result<u64, KvError> {
    decode_prefixed_id(MEMBER_PREFIX, raw, "member")
}

/// `x | id`: the marker of removed member `id`.
pub fn removed_key(id: u64) -> Vec<u8> {
    prefixed_id(REMOVED_PREFIX, id)
}

/// The member id of a removed member's marker.
pub fn decode_removed_key(raw: &[u8]) -> Result<u64, KvError> {
    decode_prefixed_id(REMOVED_PREFIX, raw, "removed member")
}

/// `a | id`: the prefix of every attachment of lease `id`.
pub fn attachment_prefix(id: i64) -> Vec<u8> {
    prefixed_id(ATTACHMENT_PREFIX, id as u64)
}

/// `a | id | key`.
pub fn attachment_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = attachment_prefix(id);
    out.extend_from_slice(key);
    out
}

/// The first key after every attachment of lease `id`.
pub fn attachment_end(id: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(ATTACHMENT_PREFIX);
    match (id as u64).checked_add(1) {
        Some(next) => out.extend_from_slice(&next.to_be_bytes()),
        None => out[0] = ATTACHMENT_PREFIX + 1,
    }
    debug_assert!(
        out > attachment_prefix(id),
        "the end of lease {id}'s attachments is before them"
    );
    out
}

/// The longest engine key the store writes: a put's history key, the
/// longest key made from a user key. The store opens its engine with at
/// least this limit, and a put whose history key would be longer is
/// refused before raft ([`history_key_len`], `validate_put`), so no write
/// of an accepted request can fail for its key's length.
pub const MAX_STORED_KEY_BYTES: usize = 64 << 10;

/// The length of `history_key(key, _)`, without building it.
pub fn history_key_len(key: &[u8]) -> usize {
    let zeros = key.iter().filter(|&&byte| byte == 0).count();
    1 + key.len() + zeros + TERMINATOR.len() + 8
}

/// Meta key (first byte `s`) holding the store's current revision (i64 LE).
pub const META_CURRENT_REVISION: &[u8] = b"scurrent_revision";
/// Meta key holding the compacted revision (i64 LE).
pub const META_COMPACTED_REVISION: &[u8] = b"scompacted_revision";
/// Meta key present only while a large DeleteRange is part-way written
/// into the engine: its [`DeleteProgress`].
pub const META_DELETE_PROGRESS: &[u8] = b"sdelete_progress";
/// Meta key present only while a large Compaction is part-way written
/// into the engine: its [`CompactionProgress`].
pub const META_COMPACTION_PROGRESS: &[u8] = b"scompaction_progress";
/// Meta key holding the layout version the store was written in (i64 LE),
/// written when a fresh store is opened.
pub const META_FORMAT_VERSION: &[u8] = b"sformat_version";
/// The layout this code reads and writes. Version 2: a live entry holds
/// only its version's header; every version of a key, the current one
/// included, sits in history with its value. (Version 1 stores had no
/// format key, kept the current value in the live entry, and moved it to
/// history when it was superseded.)
pub const FORMAT_VERSION: i64 = 2;

/// How far a large DeleteRange got: written with each part of it that goes
/// to the engine ahead of the entry's applied index, deleted by the write
/// that completes the entry. If a crash comes in between, `KvStore::open`
/// finishes the delete from here before the store serves anything, numbering
/// the remaining changes as the first apply would have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteProgress {
    /// The raft index of the DeleteRange entry.
    pub index: u64,
    /// Changes (sub-revisions) the parts written so far made.
    pub changes: u32,
    /// The request's key.
    pub key: Vec<u8>,
    /// The request's range end.
    pub range_end: Vec<u8>,
    /// The last key those parts deleted; the rest of the range is after it.
    pub last_key: Vec<u8>,
}

impl DeleteProgress {
    /// `index: u64 LE | changes: u32 LE | key length: u32 LE | key |
    /// range end length: u32 LE | range end | last key (the rest)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(20 + self.key.len() + self.range_end.len() + self.last_key.len());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.changes.to_le_bytes());
        for field in [&self.key, &self.range_end] {
            let len = raftwood_lsm::length::len_u32(field.len(), "kv record field");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.last_key);
        // `decode` refuses a progress without a key or a last key deleted.
        debug_assert!(!self.key.is_empty() && !self.last_key.is_empty());
        debug_assert_eq!(
            out.len(),
            20 + self.key.len() + self.range_end.len() + self.last_key.len()
        );
        out
    }

    /// Decodes [`DeleteProgress::encode`]'s bytes.
    pub fn decode(raw: &[u8]) -> Result<DeleteProgress, KvError> {
        let damaged = || KvError::Corruption(format!("delete progress of {} bytes", raw.len()));
        let mut rest = raw;
        let mut take = |n: usize| -> Result<&[u8], KvError> {
            if rest.len() < n {
                return Err(damaged());
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let index = u64::from_le_bytes(take(8)?.try_into().map_err(|_| damaged())?);
        let changes = u32::from_le_bytes(take(4)?.try_into().map_err(|_| damaged())?);
        let key_len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| damaged())?);
        let key = take(key_len as usize)?.to_vec();
        let end_len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| damaged())?);
        let range_end = take(end_len as usize)?.to_vec();
        let last_key = rest.to_vec();
        if key.is_empty() || last_key.is_empty() {
            return Err(damaged());
        }
        Ok(DeleteProgress {
            index,
            changes,
            key,
            range_end,
            last_key,
        })
    }
}

/// A large Compaction part-way written: written with each part of it that
/// goes to the engine ahead of the entry's applied index, deleted by the
/// write that completes the entry. If a crash comes in between,
/// `KvStore::open` runs the compaction again, to the end, before the store
/// serves anything (its deletes are idempotent, see `compaction.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionProgress {
    /// The raft index of the Compaction entry.
    pub index: u64,
    /// The compaction revision.
    pub revision: i64,
}

impl CompactionProgress {
    /// `index: u64 LE | revision: i64 LE`.
    pub fn encode(&self) -> [u8; 16] {
        // `decode` refuses a revision below 1: no compaction has one.
        debug_assert!(
            self.revision >= 1,
            "compaction progress at revision {}",
            self.revision
        );
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.index.to_le_bytes());
        out[8..].copy_from_slice(&self.revision.to_le_bytes());
        out
    }

    /// Decodes [`CompactionProgress::encode`]'s bytes.
    pub fn decode(raw: &[u8]) -> Result<CompactionProgress, KvError> {
        let damaged = || KvError::Corruption(format!("compaction progress of {} bytes", raw.len()));
        let raw: &[u8; 16] = raw.try_into().map_err(|_| damaged())?;
        let (index, revision) = raw.split_at(8);
        let progress = CompactionProgress {
            index: u64::from_le_bytes(index.try_into().map_err(|_| damaged())?),
            revision: i64::from_le_bytes(revision.try_into().map_err(|_| damaged())?),
        };
        if progress.revision < 1 {
            return Err(damaged());
        }
        Ok(progress)
    }
}

/// Ends an escaped key in a history key; sorts below every escaped byte.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// Sorts above every history key of the same user key.
const AFTER_TERMINATOR: [u8; 2] = [0x00, 0x02];

/// Appends `key` with each 0x00 written as 0x00 0xFF, which keeps the order
/// of keys and lets the terminator 0x00 0x01 end it unambiguously.
fn escape_into(out: &mut Vec<u8>, key: &[u8]) {
    for &byte in key {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
}

/// `l | key`.
pub fn live_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(LIVE_PREFIX);
    out.extend_from_slice(key);
    out
}

/// Whether a raw key is a live entry's key.
pub fn is_live_key(raw: &[u8]) -> bool {
    raw.first() == Some(&LIVE_PREFIX)
}

/// The user key of a live key.
pub fn user_key_of_live(live: &[u8]) -> &[u8] {
    debug_assert!(is_live_key(live), "{live:?} is not a live key");
    live.get(1..).unwrap_or(&[])
}

/// `h | escape(key)`: every history key of `key` and of keys after it
/// sorts at or after this; of keys before it, before.
pub fn history_bound(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len() + 2);
    out.push(HISTORY_PREFIX);
    escape_into(&mut out, key);
    out
}

/// `h | escape(key) | 0x00 0x01 | !revision`: seeking here lands on the
/// newest history entry of `key` with a revision <= `revision`.
pub fn history_key(key: &[u8], revision: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len() + 2 + 8);
    out.push(HISTORY_PREFIX);
    escape_into(&mut out, key);
    out.extend_from_slice(&TERMINATOR);
    out.extend_from_slice(&(!(revision as u64)).to_be_bytes());
    // Requests are refused before raft by this length (`validate_put`).
    debug_assert_eq!(out.len(), history_key_len(key));
    out
}

/// The first history key after every entry of `key`.
pub fn history_after_key(key: &[u8]) -> Vec<u8> {
    let mut out = history_bound(key);
    out.extend_from_slice(&AFTER_TERMINATOR);
    out
}

/// Splits a history key into the user key and the revision.
pub fn decode_history_key(raw: &[u8]) -> Result<(Vec<u8>, i64), KvError> {
    let bad = || KvError::Corruption(format!("bad history key {raw:?}"));
    if raw.first() != Some(&HISTORY_PREFIX) || raw.len() < 1 + 2 + 8 {
        return Err(bad());
    }
    let (body, revision) = raw[1..].split_at(raw.len() - 1 - 8);
    let mut key = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        if byte != 0 {
            key.push(byte);
            i += 1;
            continue;
        }
        match body.get(i + 1) {
            Some(0xFF) => {
                key.push(0);
                i += 2;
            }
            Some(0x01) if i + 2 == body.len() => {
                let revision: [u8; 8] = revision.try_into().map_err(|_| bad())?;
                return Ok((key, !u64::from_be_bytes(revision) as i64));
            }
            _ => return Err(bad()),
        }
    }
    Err(bad())
}

/// What a change did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The key was put.
    Put,
    /// The key was deleted.
    Delete,
}

/// `r | revision (u64 BE) | sub (u32 BE)`.
pub fn revision_key(revision: i64, sub: u32) -> Vec<u8> {
    // As a u64 a negative revision would sort after every other.
    debug_assert!(revision >= 0, "revision log key of revision {revision}");
    let mut out = Vec::with_capacity(1 + 8 + 4);
    out.push(REVISION_PREFIX);
    out.extend_from_slice(&(revision as u64).to_be_bytes());
    out.extend_from_slice(&sub.to_be_bytes());
    out
}

/// The revision of a revision log key.
pub fn decode_revision_key(raw: &[u8]) -> Result<i64, KvError> {
    match raw {
        [REVISION_PREFIX, rest @ ..] if rest.len() == 12 => {
            let mut revision = [0u8; 8];
            revision.copy_from_slice(&rest[..8]);
            Ok(u64::from_be_bytes(revision) as i64)
        }
        _ => Err(KvError::Corruption(format!("bad revision log key {raw:?}"))),
    }
}

/// The revision and sub-revision of a revision log key.
pub fn decode_revision_key_with_sub(raw: &[u8]) -> Result<(i64, u32), KvError> {
    let revision = decode_revision_key(raw)?;
    let mut sub = [0u8; 4];
    sub.copy_from_slice(&raw[9..13]);
    Ok((revision, u32::from_be_bytes(sub)))
}

/// The value of a revision log entry: `kind u8 (0 put, 1 delete) | key`.
pub fn encode_change(kind: ChangeKind, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(match kind {
        ChangeKind::Put => KIND_PUT,
        ChangeKind::Delete => KIND_TOMBSTONE,
    });
    out.extend_from_slice(key);
    out
}

/// Splits a revision log value into the kind and the key.
pub fn decode_change(raw: &[u8]) -> Result<(ChangeKind, &[u8]), KvError> {
    match raw.split_first() {
        Some((&KIND_PUT, key)) => Ok((ChangeKind::Put, key)),
        Some((&KIND_TOMBSTONE, key)) => Ok((ChangeKind::Delete, key)),
        _ => Err(KvError::Corruption(format!(
            "bad revision log value {raw:?}"
        ))),
    }
}

/// One version of a key: what a live or history entry holds.
///
/// ```text
/// kind u8 (0 put, 1 tombstone) | create_revision i64 | mod_revision i64 |
/// version i64 | lease i64 | value (the rest)
/// ```
/// A tombstone has create_revision, version and lease 0 and no value; its
/// mod_revision is the revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// True for a delete marker.
    pub tombstone: bool,
    /// Revision that created this generation of the key.
    pub create_revision: i64,
    /// Revision of this version.
    pub mod_revision: i64,
    /// Changes since creation (1 for a fresh key).
    pub version: i64,
    /// Attached lease, 0 for none.
    pub lease: i64,
    /// The value.
    pub value: Vec<u8>,
}

const RECORD_HEADER_LEN: usize = 1 + 8 * 4;
const KIND_PUT: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;

impl Record {
    /// A delete marker at `revision`.
    pub fn tombstone(revision: i64) -> Record {
        Record {
            tombstone: true,
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
            value: Vec::new(),
        }
    }

    /// The encoded record.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_value(&self.value)
    }

    /// The encoded record with `value` in place of its own (a put's
    /// header holds none; its value is the request's).
    pub fn encode_with_value(&self, value: &[u8]) -> Vec<u8> {
        debug_assert!(
            !self.tombstone || value.is_empty(),
            "a tombstone with a value"
        );
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + value.len());
        out.push(if self.tombstone {
            KIND_TOMBSTONE
        } else {
            KIND_PUT
        });
        for field in [
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(value);
        debug_assert_eq!(out.len(), RECORD_HEADER_LEN + value.len());
        out
    }

    /// The encoded record without its value: what a live entry holds (the
    /// value is in the history entry of the same mod revision).
    pub fn encode_header(&self) -> Vec<u8> {
        let out = self.encode_with_value(&[]);
        debug_assert_eq!(out.len(), RECORD_HEADER_LEN);
        out
    }

    /// Decodes a record; `value` is skipped when `with_value` is false.
    pub fn decode(raw: &[u8], with_value: bool) -> Result<Record, KvError> {
        if raw.len() < RECORD_HEADER_LEN {
            return Err(KvError::Corruption(format!(
                "record of {} bytes is shorter than its header",
                raw.len()
            )));
        }
        let tombstone = match raw[0] {
            KIND_PUT => false,
            KIND_TOMBSTONE => true,
            other => {
                return Err(KvError::Corruption(format!("unknown record kind {other}")));
            }
        };
        let field = |i: usize| {
            let start = 1 + 8 * i;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&raw[start..start + 8]);
            i64::from_le_bytes(bytes)
        };
        Ok(Record {
            tombstone,
            create_revision: field(0),
            mod_revision: field(1),
            version: field(2),
            lease: field(3),
            value: if with_value {
                raw[RECORD_HEADER_LEN..].to_vec()
            } else {
                Vec::new()
            },
        })
    }

    /// The client's view of this version of `key`.
    pub fn into_key_value(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

/// Encodes an i64 meta value.
pub fn encode_meta(value: i64) -> [u8; 8] {
    value.to_le_bytes()
}

/// Decodes an i64 meta value.
pub fn decode_meta(raw: &[u8]) -> Result<i64, KvError> {
    let bytes: [u8; 8] = raw
        .try_into()
        .map_err(|_| KvError::Corruption(format!("meta value of {} bytes", raw.len())))?;
    Ok(i64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registry_keys_hold_the_id_big_endian_so_the_registry_reads_in_id_order() {
        assert_eq!(member_key(0x0102), vec![b'm', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(decode_member_key(&member_key(u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(decode_removed_key(&removed_key(7)).unwrap(), 7);
        assert!(member_key(1) < member_key(256));
        assert!(decode_member_key(b"m123").is_err());
        assert!(
            decode_member_key(&removed_key(7)).is_err(),
            "another prefix"
        );
        assert!(decode_lease_key(&member_key(7)).is_err());
    }

    proptest! {
        #[test]
        fn history_key_len_is_the_length_of_the_history_key(
            key in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..64),
            revision in 1i64..i64::MAX,
        ) {
            prop_assert_eq!(history_key_len(&key), history_key(&key, revision).len());
        }
    }

    #[test]
    fn delete_progress_round_trips_and_refuses_damage() {
        let progress = DeleteProgress {
            index: 77,
            changes: 9000,
            key: b"a".to_vec(),
            range_end: b"\0".to_vec(),
            last_key: b"key\0x".to_vec(),
        };
        let raw = progress.encode();
        assert_eq!(DeleteProgress::decode(&raw).unwrap(), progress);
        // Every truncation that cuts into the fixed fields, the key or the
        // range end is refused (a cut in the last key cannot be told: it is
        // the rest).
        for len in 0..(8 + 4 + 4 + 1 + 4 + 1 + 1) {
            assert!(DeleteProgress::decode(&raw[..len]).is_err(), "{len} bytes");
        }
        let mut huge_key = raw.clone();
        huge_key[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(DeleteProgress::decode(&huge_key).is_err());
    }

    #[test]
    fn compaction_progress_round_trips_and_refuses_damage() {
        let progress = CompactionProgress {
            index: 6001,
            revision: 4321,
        };
        assert_eq!(
            CompactionProgress::decode(&progress.encode()).unwrap(),
            progress
        );
        let raw = progress.encode();
        for len in [0, 8, 15, 17] {
            let mut damaged = raw.to_vec();
            damaged.resize(len, 0);
            assert!(CompactionProgress::decode(&damaged).is_err(), "{len} bytes");
        }
        // Made by hand: `encode` asserts the revision.
        let mut zero_revision = raw;
        zero_revision[8..].copy_from_slice(&0i64.to_le_bytes());
        assert!(CompactionProgress::decode(&zero_revision).is_err());
    }

    #[test]
    fn record_round_trips() {
        let record = Record {
            tombstone: false,
            create_revision: 2,
            mod_revision: 7,
            version: 3,
            lease: -5,
            value: b"v\0al".to_vec(),
        };
        assert_eq!(Record::decode(&record.encode(), true).unwrap(), record);
        let keys_only = Record::decode(&record.encode(), false).unwrap();
        assert!(keys_only.value.is_empty());
        assert_eq!(keys_only.mod_revision, 7);
        assert!(Record::decode(&record.encode()[..10], true).is_err());
    }

    #[test]
    fn revision_keys_order_by_revision_then_sub() {
        let keys = [
            revision_key(1, 0),
            revision_key(1, 7),
            revision_key(2, 0),
            revision_key(256, 0),
            revision_key(1 << 40, 3),
        ];
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(decode_revision_key(&keys[3]).unwrap(), 256);
        assert!(decode_revision_key(b"r123").is_err());
        let change = encode_change(ChangeKind::Delete, b"k\0");
        assert_eq!(
            decode_change(&change).unwrap(),
            (ChangeKind::Delete, b"k\0".as_slice())
        );
        assert!(decode_change(&[9]).is_err());
        assert!(decode_change(&[]).is_err());
    }

    proptest! {
        #[test]
        fn history_keys_order_like_user_keys_then_newest_first(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..6),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..6),
            ra in 0i64..1000, rb in 0i64..1000,
        ) {
            let ka = history_key(&a, ra);
            let kb = history_key(&b, rb);
            let expected = a.cmp(&b).then(rb.cmp(&ra));
            prop_assert_eq!(ka.cmp(&kb), expected);
            prop_assert_eq!(decode_history_key(&ka).unwrap(), (a.clone(), ra));
            // Bounds: every entry of `a` lies in [bound(a), after(a)).
            prop_assert!(history_bound(&a) <= ka);
            prop_assert!(ka < history_after_key(&a));
            if a < b {
                prop_assert!(history_after_key(&a) <= history_bound(&b));
                prop_assert!(ka < history_bound(&b));
                prop_assert!(ka < kb);
            }
        }
    }
}
