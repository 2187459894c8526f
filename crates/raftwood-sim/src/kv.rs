//! The replicated state machine the simulator runs: a small deterministic
//! key-value map with put, get, delete and compare-and-swap, and the byte
//! encoding of its commands in log entries.
//!
//! This stands in for `raftwood-kv` (etcd's MVCC model) until that crate
//! exists; the simulator should switch to it then. Keys and values are
//! `u64`s so that histories stay small and readable.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

/// A key of the simulated store.
pub type Key = u64;
/// A value of the simulated store.
pub type Value = u64;

/// One client operation on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Key,
        /// The new value.
        value: Value,
    },
    /// Reads `key`.
    Get {
        /// The key.
        key: Key,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: Key,
    },
    /// Sets `key` to `new` if its value is `expected` (`None`: absent).
    CompareAndSwap {
        /// The key.
        key: Key,
        /// The value the key must have for the swap to happen.
        expected: Option<Value>,
        /// The value written on success.
        new: Value,
    },
}

/// What an operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOutput {
    /// A put succeeded.
    Written,
    /// A get's answer.
    Value(Option<Value>),
    /// A delete's answer: whether the key existed.
    Deleted(bool),
    /// A compare-and-swap's answer: whether it swapped.
    Swapped(bool),
}

impl KvOp {
    /// The key the operation touches (every operation touches one).
    pub fn key(&self) -> Key {
        match *self {
            KvOp::Put { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::CompareAndSwap { key, .. } => key,
        }
    }

    /// Whether the operation only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }

    /// The sequential specification of one key: the new value and the
    /// output of applying this operation to a key whose value is `current`.
    pub fn apply_to(&self, current: Option<Value>) -> (Option<Value>, KvOutput) {
        match *self {
            KvOp::Put { value, .. } => (Some(value), KvOutput::Written),
            KvOp::Get { .. } => (current, KvOutput::Value(current)),
            KvOp::Delete { .. } => (None, KvOutput::Deleted(current.is_some())),
            KvOp::CompareAndSwap { expected, new, .. } => {
                if current == expected {
                    (Some(new), KvOutput::Swapped(true))
                } else {
                    (current, KvOutput::Swapped(false))
                }
            }
        }
    }
}

impl std::fmt::Display for KvOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            KvOp::Put { key, value } => write!(f, "put(k{key}, {value})"),
            KvOp::Get { key } => write!(f, "get(k{key})"),
            KvOp::Delete { key } => write!(f, "delete(k{key})"),
            KvOp::CompareAndSwap { key, expected, new } => match expected {
                Some(expected) => write!(f, "cas(k{key}, {expected} -> {new})"),
                None => write!(f, "cas(k{key}, absent -> {new})"),
            },
        }
    }
}

impl std::fmt::Display for KvOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            KvOutput::Written => write!(f, "ok"),
            KvOutput::Value(Some(value)) => write!(f, "{value}"),
            KvOutput::Value(None) => write!(f, "absent"),
            KvOutput::Deleted(existed) => write!(f, "deleted={existed}"),
            KvOutput::Swapped(swapped) => write!(f, "swapped={swapped}"),
        }
    }
}

/// A write command as carried in a log entry: the operation and the id of
/// the client request that proposed it (unique per operation, so a command
/// applied twice is detectable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Unique per client operation.
    pub request_id: u64,
    /// What to do.
    pub op: KvOp,
}

/// Encoded size of a command: tag (1), request id (8), key (8), two
/// operands (8 each), a presence flag (1).
const COMMAND_BYTES: usize = 34;

impl Command {
    /// Encodes the command; fixed-width little-endian fields.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(COMMAND_BYTES);
        let (tag, a, b, flag) = match self.op {
            KvOp::Put { value, .. } => (1u8, value, 0, 0u8),
            KvOp::Get { .. } => (2, 0, 0, 0),
            KvOp::Delete { .. } => (3, 0, 0, 0),
            KvOp::CompareAndSwap { expected, new, .. } => {
                (4, expected.unwrap_or(0), new, u8::from(expected.is_some()))
            }
        };
        out.put_u8(tag);
        out.put_u64_le(self.request_id);
        out.put_u64_le(self.op.key());
        out.put_u64_le(a);
        out.put_u64_le(b);
        out.put_u8(flag);
        out.freeze()
    }

    /// Decodes what [`Command::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        if bytes.len() != COMMAND_BYTES {
            return None;
        }
        let word = |at: usize| -> Option<u64> {
            let slice: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(slice))
        };
        let request_id = word(1)?;
        let key = word(9)?;
        let a = word(17)?;
        let b = word(25)?;
        let flag = *bytes.get(33)?;
        let op = match bytes.first()? {
            1 => KvOp::Put { key, value: a },
            2 => KvOp::Get { key },
            3 => KvOp::Delete { key },
            4 => KvOp::CompareAndSwap {
                key,
                expected: (flag == 1).then_some(a),
                new: b,
            },
            _ => return None,
        };
        Some(Command { request_id, op })
    }
}

/// The state machine: a map from key to value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<Key, Value>,
}

impl KvStore {
    /// Applies an operation and returns its output.
    pub fn apply(&mut self, op: &KvOp) -> KvOutput {
        let key = op.key();
        let current = self.map.get(&key).copied();
        let (next, output) = op.apply_to(current);
        match next {
            Some(value) => {
                self.map.insert(key, value);
            }
            None => {
                self.map.remove(&key);
            }
        }
        output
    }

    /// The value of `key`.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.map.get(&key).copied()
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_their_encoding() {
        let ops = [
            KvOp::Put { key: 3, value: 9 },
            KvOp::Get { key: 1 },
            KvOp::Delete { key: 2 },
            KvOp::CompareAndSwap {
                key: 4,
                expected: None,
                new: 5,
            },
            KvOp::CompareAndSwap {
                key: 4,
                expected: Some(0),
                new: 5,
            },
        ];
        for (id, op) in ops.into_iter().enumerate() {
            let command = Command {
                request_id: id as u64 + 100,
                op,
            };
            assert_eq!(Command::decode(&command.encode()), Some(command));
        }
        assert_eq!(Command::decode(b"short"), None);
    }

    #[test]
    fn compare_and_swap_distinguishes_absent_from_zero() {
        let mut store = KvStore::default();
        let swap_from_zero = KvOp::CompareAndSwap {
            key: 1,
            expected: Some(0),
            new: 7,
        };
        assert_eq!(store.apply(&swap_from_zero), KvOutput::Swapped(false));
        let swap_from_absent = KvOp::CompareAndSwap {
            key: 1,
            expected: None,
            new: 7,
        };
        assert_eq!(store.apply(&swap_from_absent), KvOutput::Swapped(true));
        assert_eq!(store.get(1), Some(7));
        assert_eq!(
            store.apply(&KvOp::Delete { key: 1 }),
            KvOutput::Deleted(true)
        );
        assert_eq!(
            store.apply(&KvOp::Delete { key: 1 }),
            KvOutput::Deleted(false)
        );
    }
}
