//! Deterministic simulation of whole raftwood clusters with a faulty
//! network, disk and clock, and a linearizability checker.
//!
//! One seed decides everything: [`SimOptions::from_seed`] draws the
//! cluster's shape and fault mix, and [`run`] drives the members
//! (`raftwood-raft` cores), their simulated disks, the network and the
//! clients from one ChaCha8 generator, checking Raft's safety properties
//! after every event, the cluster's recovery after faults stop, and the
//! client history for linearizability. Members apply committed entries
//! with `raftwood-kv`'s `KvStore` (etcd's MVCC on raftwood-lsm), each on
//! its own in-memory crash-modelling filesystem. The same seed replays the
//! same run, event for event. `docs/testing.md` explains how to use it.

pub mod disk;
pub mod etcd;
pub mod linearizability;
pub mod model;
pub mod network;
pub mod options;
pub mod report;
pub mod safety;
pub mod state_machine;
mod world;

pub use options::{FaultWeights, SimOptions};
pub use report::{Outcome, RunReport, Summary};
pub use world::{Simulation, run};
