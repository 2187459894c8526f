//! Deterministic simulation of whole raftwood clusters with a faulty
//! network, disk and clock, and a linearizability checker.
//!
//! One seed decides everything: [`SimOptions::from_seed`] draws the
//! cluster's shape and fault mix, and [`run`] drives the members
//! (`raftwood-raft` cores), their simulated disks, the network and the
//! clients from one ChaCha8 generator, checking Raft's safety properties
//! after every event, the cluster's recovery after faults stop, and the
//! client history for linearizability. The same seed replays the same
//! run, event for event. `docs/testing.md` explains how to use it.

pub mod disk;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod options;
pub mod report;
pub mod safety;
mod world;

pub use options::{FaultWeights, SimOptions};
pub use report::{Outcome, RunReport, Summary};
pub use world::{Simulation, run};
