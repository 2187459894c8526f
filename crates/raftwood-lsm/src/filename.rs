//! Names of the files in a database directory.
//!
//! ```text
//! CURRENT            names the live manifest ("MANIFEST-000007\n")
//! LOCK               advisory lock held by the open Db
//! MANIFEST-000007    edits to the set of live files (docs/manifest-format.md)
//! 000009.wal         write-ahead log (docs/wal-format.md)
//! 000012.sst         sorted table (docs/sstable-format.md)
//! *.tmp              half-written files; removed at open
//! ```

use std::path::{Path, PathBuf};

/// The kinds of files the engine creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `CURRENT`.
    Current,
    /// `LOCK`.
    Lock,
    /// `MANIFEST-n`.
    Manifest(u64),
    /// `n.wal`.
    Wal(u64),
    /// `n.sst`.
    Table(u64),
    /// `*.tmp`.
    Temp,
}

/// `dir/CURRENT`.
pub fn current_path(dir: &Path) -> PathBuf {
    dir.join("CURRENT")
}

/// `dir/LOCK`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

/// The manifest's file name (without directory).
pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// `dir/MANIFEST-n`.
pub fn manifest_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(manifest_name(number))
}

/// `dir/n.wal`.
pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.wal"))
}

/// `dir/n.sst`.
pub fn table_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.sst"))
}

/// `dir/CURRENT.tmp`, written then renamed over `CURRENT`.
pub fn current_temp_path(dir: &Path) -> PathBuf {
    dir.join("CURRENT.tmp")
}

/// Recognises a file name created by the engine.
pub fn parse_file_name(name: &str) -> Option<FileKind> {
    if name == "CURRENT" {
        return Some(FileKind::Current);
    }
    if name == "LOCK" {
        return Some(FileKind::Lock);
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    if let Some(number) = name.strip_prefix("MANIFEST-") {
        return number.parse().ok().map(FileKind::Manifest);
    }
    if let Some(number) = name.strip_suffix(".wal") {
        return number.parse().ok().map(FileKind::Wal);
    }
    if let Some(number) = name.strip_suffix(".sst") {
        return number.parse().ok().map(FileKind::Table);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/d");
        for (path, kind) in [
            (table_path(dir, 12), FileKind::Table(12)),
            (wal_path(dir, 9), FileKind::Wal(9)),
            (manifest_path(dir, 7), FileKind::Manifest(7)),
            (current_path(dir), FileKind::Current),
            (lock_path(dir), FileKind::Lock),
            (current_temp_path(dir), FileKind::Temp),
        ] {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse_file_name(name), Some(kind), "{name}");
        }
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(parse_file_name("x.sst"), None);
    }
}
