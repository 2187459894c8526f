//! What clients do and what the linearizability checker expects: the
//! operations (put, get, delete, compare-and-swap on one key), their
//! outputs, and the sequential specification of one key.
//!
//! Members run these operations as etcd requests on `raftwood-kv`
//! (`src/etcd.rs` translates); the checker judges the outputs against
//! this small model. Keys and values are `u64`s so that histories stay
//! small and readable.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_distinguishes_absent_from_zero() {
        let swap_from_zero = KvOp::CompareAndSwap {
            key: 1,
            expected: Some(0),
            new: 7,
        };
        assert_eq!(
            swap_from_zero.apply_to(None),
            (None, KvOutput::Swapped(false))
        );
        let swap_from_absent = KvOp::CompareAndSwap {
            key: 1,
            expected: None,
            new: 7,
        };
        assert_eq!(
            swap_from_absent.apply_to(None),
            (Some(7), KvOutput::Swapped(true))
        );
        let delete = KvOp::Delete { key: 1 };
        assert_eq!(delete.apply_to(Some(7)), (None, KvOutput::Deleted(true)));
        assert_eq!(delete.apply_to(None), (None, KvOutput::Deleted(false)));
    }
}
