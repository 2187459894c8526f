//! Deterministic simulation of whole raftwood clusters with a faulty network, disk and clock, and a linearizability checker.
