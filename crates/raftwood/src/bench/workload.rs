//! The request each subcommand sends. Defaults are those of etcd's
//! `benchmark` tool, so a command line carries over unchanged.

use clap::{Args, ValueEnum};
use raftwood_server::proto::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::bench::BenchCommand;
use crate::bench::keys::KeySpace;

/// Flags of `raftwood bench put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// Bytes per key.
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Number of puts.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Number of distinct keys written.
    #[arg(long = "key-space-size", default_value_t = 1)]
    pub key_space_size: u64,
    /// Write keys in order (request i writes key i mod key-space-size)
    /// instead of at random.
    #[arg(long = "sequential-keys")]
    pub sequential_keys: bool,
}

/// Flags of `raftwood bench range`.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// The key read.
    pub key: String,
    /// With it, the range `[key, range_end)` is read.
    pub range_end: Option<String>,
    /// `l` (linearizable, etcd's default) or `s` (serializable: the member
    /// answers from its own state).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Number of range requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// At most this many keys per response; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
}

/// Flags of `raftwood bench txn-put`.
#[derive(Debug, Clone, Args)]
pub struct TxnPutArgs {
    /// Bytes per key.
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Puts per transaction.
    #[arg(long = "txn-ops", default_value_t = 1)]
    pub txn_ops: usize,
    /// Number of transactions.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Number of distinct keys written.
    #[arg(long = "key-space-size", default_value_t = 1)]
    pub key_space_size: u64,
}

/// Read consistency of `range`, spelled as etcd's tool spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable: confirmed with a quorum (ReadIndex) before reading.
    L,
    /// Serializable: read from the local member at once.
    S,
}

/// One request, ready to send.
#[derive(Debug, Clone)]
pub enum Request {
    Put(PutRequest),
    Range(RangeRequest),
    Txn(TxnRequest),
}

/// A workload: what request `i` of `total` is.
#[derive(Debug, Clone)]
pub enum Workload {
    Put {
        keys: KeySpace,
        value: Vec<u8>,
        total: u64,
    },
    Range {
        request: RangeRequest,
        consistency: Consistency,
        total: u64,
    },
    TxnPut {
        keys: KeySpace,
        value: Vec<u8>,
        txn_ops: usize,
        total: u64,
    },
}

/// Random bytes for values: the same value for every request, as etcd's
/// tool does, so that the request's cost does not vary. Random so that no
/// layer can compress it away; a fixed seed keeps runs comparable.
fn random_value(val_size: usize) -> Vec<u8> {
    let mut value = vec![0u8; val_size];
    SmallRng::seed_from_u64(0x7261_6674_776f_6f64).fill(&mut value[..]);
    value
}

/// The key number a txn-put's operation `op` of request `request_index`
/// writes. Computed in u128 so no product overflows.
fn txn_key_number(keys: &KeySpace, request_index: u64, txn_ops: usize, op: usize) -> u64 {
    let number =
        (u128::from(request_index) * txn_ops as u128 + op as u128) % u128::from(keys.size());
    // Below key_space_size, a u64.
    u64::try_from(number).unwrap_or(0)
}

impl Workload {
    /// Checks the flags and builds the workload.
    pub fn from_command(command: &BenchCommand) -> Result<Self, String> {
        match command {
            BenchCommand::Put(args) => {
                if args.total == 0 {
                    return Err("--total must be at least 1".into());
                }
                Ok(Self::Put {
                    keys: KeySpace::new(args.key_size, args.key_space_size, args.sequential_keys)?,
                    value: random_value(args.val_size),
                    total: args.total,
                })
            }
            BenchCommand::Range(args) => {
                if args.total == 0 {
                    return Err("--total must be at least 1".into());
                }
                if args.key.is_empty() {
                    return Err("range: the key must not be empty".into());
                }
                if args.limit < 0 {
                    return Err("--limit must not be negative".into());
                }
                Ok(Self::Range {
                    request: RangeRequest {
                        key: args.key.clone().into_bytes(),
                        range_end: args.range_end.clone().unwrap_or_default().into_bytes(),
                        limit: args.limit,
                        serializable: args.consistency == Consistency::S,
                        ..RangeRequest::default()
                    },
                    consistency: args.consistency,
                    total: args.total,
                })
            }
            BenchCommand::TxnPut(args) => {
                if args.total == 0 {
                    return Err("--total must be at least 1".into());
                }
                if args.txn_ops == 0 {
                    return Err("--txn-ops must be at least 1".into());
                }
                if (args.key_space_size as u128) < args.txn_ops as u128 {
                    return Err(
                        "--key-space-size must be at least --txn-ops: a txn may not put one key twice"
                            .into(),
                    );
                }
                Ok(Self::TxnPut {
                    keys: KeySpace::new(args.key_size, args.key_space_size, true)?,
                    value: random_value(args.val_size),
                    txn_ops: args.txn_ops,
                    total: args.total,
                })
            }
            BenchCommand::WatchLatency(_) => {
                Err("watch-latency sends no request workload (see watch_latency.rs)".into())
            }
        }
    }

    /// The name shown in reports: the subcommand, with the consistency for
    /// ranges.
    pub fn name(&self) -> String {
        match self {
            Self::Put { .. } => "put".into(),
            Self::Range { consistency, .. } => match consistency {
                Consistency::L => "range (linearizable)".into(),
                Consistency::S => "range (serializable)".into(),
            },
            Self::TxnPut { txn_ops, .. } => format!("txn-put ({txn_ops} puts per txn)"),
        }
    }

    /// Number of requests to send.
    pub fn total(&self) -> u64 {
        match self {
            Self::Put { total, .. } | Self::Range { total, .. } | Self::TxnPut { total, .. } => {
                *total
            }
        }
    }

    /// Request number `request_index`; `rng` picks random keys.
    ///
    /// A txn-put's operation `j` writes key number
    /// `(request_index * txn_ops + j) mod key-space-size`, as etcd's tool
    /// does: consecutive, so the keys of one txn are distinct.
    pub fn request(&self, request_index: u64, rng: &mut impl Rng) -> Request {
        match self {
            Self::Put { keys, value, .. } => Request::Put(PutRequest {
                key: keys.key(request_index, rng),
                value: value.clone(),
                ..PutRequest::default()
            }),
            Self::Range { request, .. } => Request::Range(request.clone()),
            Self::TxnPut {
                keys,
                value,
                txn_ops,
                ..
            } => Request::Txn(TxnRequest {
                compare: Vec::new(),
                success: (0..*txn_ops)
                    .map(|op| RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: keys.key_bytes(txn_key_number(keys, request_index, *txn_ops, op)),
                            value: value.clone(),
                            ..PutRequest::default()
                        })),
                    })
                    .collect(),
                failure: Vec::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn put(total: u64, key_space_size: u64, sequential_keys: bool) -> BenchCommand {
        BenchCommand::Put(PutArgs {
            key_size: 8,
            val_size: 256,
            total,
            key_space_size,
            sequential_keys,
        })
    }

    #[test]
    fn put_requests_carry_the_sized_key_and_value() {
        let workload = Workload::from_command(&put(10, 4, true)).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let Request::Put(request) = workload.request(5, &mut rng) else {
            panic!("a put workload sends puts");
        };
        assert_eq!(request.key, [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(request.value.len(), 256);
        assert_eq!(workload.total(), 10);
        assert_eq!(workload.name(), "put");
    }

    #[test]
    fn zero_totals_are_refused() {
        assert!(Workload::from_command(&put(0, 1, false)).is_err());
    }

    #[test]
    fn serializable_ranges_set_the_flag() {
        let command = BenchCommand::Range(RangeArgs {
            key: "foo".into(),
            range_end: None,
            consistency: Consistency::S,
            total: 3,
            limit: 0,
        });
        let workload = Workload::from_command(&command).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let Request::Range(request) = workload.request(0, &mut rng) else {
            panic!("a range workload sends ranges");
        };
        assert!(request.serializable);
        assert_eq!(request.key, b"foo");
        assert!(request.range_end.is_empty());
        assert_eq!(workload.name(), "range (serializable)");
    }

    #[test]
    fn txn_put_puts_txn_ops_keys_without_compares() {
        let command = BenchCommand::TxnPut(TxnPutArgs {
            key_size: 8,
            val_size: 8,
            txn_ops: 3,
            total: 1,
            key_space_size: 1000,
        });
        let workload = Workload::from_command(&command).unwrap();
        let too_small = BenchCommand::TxnPut(TxnPutArgs {
            key_size: 8,
            val_size: 8,
            txn_ops: 3,
            total: 1,
            key_space_size: 2,
        });
        assert!(Workload::from_command(&too_small).is_err());
        let mut rng = SmallRng::seed_from_u64(3);
        let Request::Txn(txn) = workload.request(0, &mut rng) else {
            panic!("txn-put sends txns");
        };
        assert!(txn.compare.is_empty());
        assert_eq!(txn.success.len(), 3);
        let Request::Txn(second) = workload.request(1, &mut rng) else {
            panic!("txn-put sends txns");
        };
        let keys: Vec<Vec<u8>> = second
            .success
            .iter()
            .filter_map(|op| match &op.request {
                Some(request_op::Request::RequestPut(put)) => Some(put.key.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            [
                [0, 0, 0, 0, 0, 0, 0, 3],
                [0, 0, 0, 0, 0, 0, 0, 4],
                [0, 0, 0, 0, 0, 0, 0, 5]
            ]
        );
        assert!(txn.success.iter().all(|op| matches!(
            &op.request,
            Some(request_op::Request::RequestPut(put)) if put.key.len() == 8 && put.value.len() == 8
        )));
    }
}
