//! etcd's MVCC key-value model (revisions, versions, txns, compaction) as a deterministic state machine on raftwood-lsm.
