//! The raftwood command.

fn main() {}
