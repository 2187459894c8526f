//! Reads of etcd's MVCC model over the key layout of [`crate::encoding`]:
//! the version of one key at a revision, and the keys of a range at a
//! revision.

use crate::cursor::{Cursor, Source};
use crate::encoding::{self, HISTORY_PREFIX, LIVE_PREFIX, Record};
use crate::error::KvError;
use crate::proto::mvccpb::{Event, KeyValue, event};

/// The end of a key range, decoded from etcd's `range_end` convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeEnd {
    /// Empty `range_end`: only the key itself.
    Single,
    /// `[key, end)`.
    Before(Vec<u8>),
    /// `range_end` = `"\0"`: every key from `key` on.
    Unbounded,
}

impl RangeEnd {
    /// Decodes etcd's `range_end` field.
    pub fn from_request(range_end: &[u8]) -> RangeEnd {
        match range_end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            end => RangeEnd::Before(end.to_vec()),
        }
    }

    /// True if `key` lies in the range starting at `start` (the tests'
    /// models; the server looks keys up in a `KeyIntervals`).
    #[cfg(test)]
    pub fn contains(&self, start: &[u8], key: &[u8]) -> bool {
        match self {
            RangeEnd::Single => key == start,
            RangeEnd::Before(end) => start <= key && key < end.as_slice(),
            RangeEnd::Unbounded => start <= key,
        }
    }
}

/// What a range scan returns: the first `limit` keys (all if no limit)
/// and how many keys the range holds at the revision.
#[derive(Debug, Default)]
pub struct Scan {
    /// Keys in ascending order, at most the fetch limit.
    pub kvs: Vec<KeyValue>,
    /// Every key in the range at the revision.
    pub count: i64,
}

/// A live key and its version's header (no value).
pub type LiveEntry = (Vec<u8>, Record);

/// Options of a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Collect at most this many keys; `None` collects all. Counting goes on.
    pub fetch_limit: Option<usize>,
    /// Collect nothing, only count.
    pub count_only: bool,
    /// Decode values (false for keys_only reads).
    pub with_values: bool,
}

impl ScanOptions {
    /// Whether a key found after `collected` others is collected.
    fn collects(&self, collected: usize) -> bool {
        !self.count_only && self.fetch_limit.is_none_or(|limit| collected < limit)
    }

    /// Whether such a key's value is read: only for keys that are returned.
    fn reads_value(&self, collected: usize) -> bool {
        self.with_values && self.collects(collected)
    }
}

/// Decodes the live entry `raw` of `key`: a version's header.
fn decode_live(key: &[u8], raw: &[u8]) -> Result<Record, KvError> {
    let record = Record::decode(raw, false)?;
    // Invariant: a live entry is a put (deletes remove it).
    if record.tombstone {
        return Err(KvError::Corruption(format!(
            "live entry of {key:?} is a tombstone"
        )));
    }
    Ok(record)
}

/// Reads at a source.
#[derive(Debug, Clone, Copy)]
pub struct Mvcc<'a> {
    /// Where to read.
    pub source: Source<'a>,
}

impl<'a> Mvcc<'a> {
    /// The key's current version without its value: what the live entry
    /// holds.
    pub fn live(&self, key: &[u8]) -> Result<Option<Record>, KvError> {
        match self.source.get(&encoding::live_key(key))? {
            Some(raw) => decode_live(key, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// `record`, a header of `key`'s, with its value read from history if
    /// `read` is set.
    fn with_value_if(&self, key: &[u8], mut record: Record, read: bool) -> Result<Record, KvError> {
        if read {
            record.value = self.value_of(key, record.mod_revision)?;
        }
        Ok(record)
    }

    /// The value of the version of `key` at `mod_revision`, which a live
    /// entry names: its history entry, which must be a put.
    pub fn value_of(&self, key: &[u8], mod_revision: i64) -> Result<Vec<u8>, KvError> {
        let raw = self
            .source
            .get(&encoding::history_key(key, mod_revision))?
            .ok_or_else(|| {
                KvError::Corruption(format!(
                    "the live entry of {key:?} names revision {mod_revision}, which history lacks"
                ))
            })?;
        let record = Record::decode(&raw, true)?;
        if record.tombstone || record.mod_revision != mod_revision {
            return Err(KvError::Corruption(format!(
                "the history entry of {key:?} at revision {mod_revision} is not that put"
            )));
        }
        Ok(record.value)
    }

    /// The version of `key` visible at `revision`, if the key existed then.
    /// `current` is the store's revision: at or above it the live entry
    /// says whether the key exists (one point read, with bloom filters)
    /// before its value is read from history.
    pub fn version_at(
        &self,
        key: &[u8],
        revision: i64,
        current: i64,
    ) -> Result<Option<Record>, KvError> {
        self.version_at_with(key, revision, current, true)
    }

    fn version_at_with(
        &self,
        key: &[u8],
        revision: i64,
        current: i64,
        with_value: bool,
    ) -> Result<Option<Record>, KvError> {
        if revision >= current {
            return self
                .live(key)?
                .map(|record| self.with_value_if(key, record, with_value))
                .transpose();
        }
        // History holds every version, the current one included.
        let mut cursor = self.source.cursor(
            encoding::history_bound(key),
            encoding::history_after_key(key),
        )?;
        cursor.seek(&encoding::history_key(key, revision))?;
        self.history_version(&cursor, with_value)
    }

    /// Decodes the history entry under the cursor (which the caller placed
    /// on the newest entry at or below the revision of interest).
    fn history_version(
        &self,
        cursor: &Cursor<'_>,
        with_value: bool,
    ) -> Result<Option<Record>, KvError> {
        if !cursor.valid() {
            return Ok(None);
        }
        let record = Record::decode(cursor.value(), with_value)?;
        Ok((!record.tombstone).then_some(record))
    }

    /// The keys of `[start, end)` as of `revision` (see [`Scan`]).
    pub fn scan(
        &self,
        start: &[u8],
        end: &RangeEnd,
        revision: i64,
        current: i64,
        options: ScanOptions,
    ) -> Result<Scan, KvError> {
        let mut scan = Scan::default();
        let emit = |key: &[u8], record: Record, scan: &mut Scan| {
            // Invariant: a scan visits keys in ascending order, each once,
            // and never returns a version from after the revision read.
            debug_assert!(scan.kvs.last().is_none_or(|last| last.key.as_slice() < key));
            debug_assert!(record.mod_revision <= revision);
            scan.count += 1;
            if options.collects(scan.kvs.len()) {
                let mut record = record;
                if !options.with_values {
                    record.value.clear();
                }
                scan.kvs.push(record.into_key_value(key.to_vec()));
            }
        };
        if let RangeEnd::Before(end) = end
            && end.as_slice() <= start
        {
            return Ok(scan);
        }
        if *end == RangeEnd::Single {
            let with_value = options.reads_value(0);
            if let Some(record) = self.version_at_with(start, revision, current, with_value)? {
                emit(start, record, &mut scan);
            }
            return Ok(scan);
        }
        if revision >= current {
            let live_upper = match end {
                RangeEnd::Before(end) => encoding::live_key(end),
                _ => vec![LIVE_PREFIX + 1],
            };
            let mut live = self.source.cursor(encoding::live_key(start), live_upper)?;
            live.seek(&encoding::live_key(start))?;
            while live.valid() {
                let key = encoding::user_key_of_live(live.key());
                let record = decode_live(key, live.value())?;
                let record =
                    self.with_value_if(key, record, options.reads_value(scan.kvs.len()))?;
                emit(key, record, &mut scan);
                live.next()?;
            }
            return Ok(scan);
        }
        // A past revision: history holds every version of every key that
        // has one at or below it; for each key, the newest of those.
        let history_upper = match end {
            RangeEnd::Before(end) => encoding::history_bound(end),
            _ => vec![HISTORY_PREFIX + 1],
        };
        let mut history = self
            .source
            .cursor(encoding::history_bound(start), history_upper)?;
        history.seek(&encoding::history_bound(start))?;
        while let Some(key) = next_history_key(&history)? {
            history.seek(&encoding::history_key(&key, revision))?;
            if history.valid() && history.key() < encoding::history_after_key(&key).as_slice() {
                let with_value = options.reads_value(scan.kvs.len());
                if let Some(record) = self.history_version(&history, with_value)? {
                    emit(&key, record, &mut scan);
                }
            }
            history.seek(&encoding::history_after_key(&key))?;
        }
        Ok(scan)
    }

    /// At most `limit` live keys of the range, in key order, with their
    /// versions' headers, starting after `after` if given (a ranged delete
    /// reads its keys a chunk at a time, see `Applier::delete_range_in`).
    pub fn live_chunk(
        &self,
        start: &[u8],
        end: &RangeEnd,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<LiveEntry>, KvError> {
        let mut chunk = Vec::new();
        match end {
            RangeEnd::Single => {
                if after.is_none()
                    && let Some(record) = self.live(start)?
                {
                    chunk.push((start.to_vec(), record));
                }
                return Ok(chunk);
            }
            RangeEnd::Before(end) if end.as_slice() <= start => return Ok(chunk),
            _ => {}
        }
        let upper = match end {
            RangeEnd::Before(end) => encoding::live_key(end),
            _ => vec![LIVE_PREFIX + 1],
        };
        let mut live = self.source.cursor(encoding::live_key(start), upper)?;
        match after {
            Some(after) => {
                // The smallest live key above `after`.
                let mut target = encoding::live_key(after);
                target.push(0);
                live.seek(&target)?;
            }
            None => live.seek(&encoding::live_key(start))?,
        }
        while live.valid() && chunk.len() < limit {
            let key = encoding::user_key_of_live(live.key());
            let record = decode_live(key, live.value())?;
            chunk.push((key.to_vec(), record));
            live.next()?;
        }
        // A chunk goes on after `after` (a delete resumes there).
        debug_assert!(
            after.is_none_or(|after| chunk.first().is_none_or(|(key, _)| key.as_slice() > after))
        );
        Ok(chunk)
    }
}

impl Mvcc<'_> {
    /// The keys attached to lease `id`, in key order.
    pub fn attached_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, KvError> {
        let prefix = encoding::attachment_prefix(id);
        let mut cursor = self
            .source
            .cursor(prefix.clone(), encoding::attachment_end(id))?;
        cursor.seek(&prefix)?;
        let mut keys = Vec::new();
        while cursor.valid() {
            keys.push(cursor.key()[prefix.len()..].to_vec());
            cursor.next()?;
        }
        Ok(keys)
    }

    /// The granted TTL of lease `id`, if it is granted.
    pub fn lease_ttl(&self, id: i64) -> Result<Option<i64>, KvError> {
        match self.source.get(&encoding::lease_key(id))? {
            Some(raw) => Ok(Some(encoding::decode_meta(&raw)?)),
            None => Ok(None),
        }
    }

    /// Every granted lease and its TTL, by id as stored (unsigned order).
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, KvError> {
        let mut cursor = self.source.cursor(
            vec![encoding::LEASE_PREFIX],
            vec![encoding::LEASE_PREFIX + 1],
        )?;
        cursor.seek(&[encoding::LEASE_PREFIX])?;
        let mut leases = Vec::new();
        while cursor.valid() {
            leases.push((
                encoding::decode_lease_key(cursor.key())?,
                encoding::decode_meta(cursor.value())?,
            ));
            cursor.next()?;
        }
        Ok(leases)
    }

    /// The events of revisions `start..=current`, in etcd's order (revision,
    /// then the order of changes within it). Stops at the end of the first
    /// revision that reaches `max_events` (0: no limit), so a revision is
    /// never split; returns the events and the last revision they cover.
    pub fn events(
        &self,
        start: i64,
        current: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<(Vec<Event>, i64), KvError> {
        let mut events = Vec::new();
        if start > current {
            return Ok((events, current));
        }
        let lower = encoding::revision_key(start, 0);
        let mut cursor = self
            .source
            .cursor(lower.clone(), encoding::revision_key(current + 1, 0))?;
        cursor.seek(&lower)?;
        let mut last_revision = start - 1;
        while cursor.valid() {
            let revision = encoding::decode_revision_key(cursor.key())?;
            if max_events > 0 && events.len() >= max_events && revision != last_revision {
                return Ok((events, last_revision));
            }
            // Invariant: the revision log is in revision order, within the
            // range the cursor was bounded to.
            debug_assert!(revision >= last_revision && revision <= current);
            last_revision = revision;
            let (kind, key) = encoding::decode_change(cursor.value())?;
            let (r#type, kv) = match kind {
                encoding::ChangeKind::Put => {
                    // The version written at this revision. (Only if one
                    // txn put and then deleted the key in the same revision
                    // is it gone; the event then carries key and revision.)
                    let kv = match self.version_at(key, revision, current)? {
                        Some(record) if record.mod_revision == revision => {
                            record.into_key_value(key.to_vec())
                        }
                        _ => bare_key_value(key, revision),
                    };
                    (event::EventType::Put, kv)
                }
                encoding::ChangeKind::Delete => {
                    (event::EventType::Delete, bare_key_value(key, revision))
                }
            };
            let prev_kv = if with_prev_kv {
                self.version_at(key, revision - 1, current)?
                    .map(|record| record.into_key_value(key.to_vec()))
            } else {
                None
            };
            events.push(Event {
                r#type: r#type as i32,
                kv: Some(kv),
                prev_kv,
            });
            cursor.next()?;
        }
        Ok((events, current))
    }
}

/// A key at a revision with nothing else known: etcd's shape of the key of
/// a delete event.
fn bare_key_value(key: &[u8], revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        mod_revision: revision,
        ..Default::default()
    }
}

fn next_history_key(cursor: &Cursor<'_>) -> Result<Option<Vec<u8>>, KvError> {
    if !cursor.valid() {
        return Ok(None);
    }
    Ok(Some(encoding::decode_history_key(cursor.key())?.0))
}
