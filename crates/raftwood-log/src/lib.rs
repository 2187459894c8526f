//! The Raft log on disk: segmented, checksummed, append-only files with the hard state and snapshot point.
