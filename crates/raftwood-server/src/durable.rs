//! Small files and directories made durable through the storage seam
//! (`raftwood_lsm::fs::FileSystem`): the steps every place that writes one
//! needs, in one place, so the crash-modelling filesystem can test them.

use std::path::Path;

use raftwood_lsm::fs::FileSystem;

/// What the seam returns.
pub type FsResult<T> = raftwood_lsm::Result<T>;

/// Writes `bytes` to `path` (created or truncated) and syncs the file. Its
/// directory entry is durable only after `sync_dir` of the parent.
pub fn write_file_synced(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> FsResult<()> {
    let mut file = fs.create_file(path)?;
    file.append(bytes)?;
    file.sync_data()?;
    assert_eq!(
        file.len(),
        bytes.len() as u64,
        "a new file holds what was written"
    );
    Ok(())
}

/// Replaces `path` atomically and durably: a temp file beside it, sync,
/// rename over `path`, sync of the directory. After a crash the file holds
/// either the old contents or the new, never a mix.
pub fn replace_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> FsResult<()> {
    // The temp file goes beside the file it replaces.
    assert!(
        path.file_name().is_some(),
        "no file to replace at {}",
        path.display()
    );
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    write_file_synced(fs, &temp, bytes)?;
    fs.rename(&temp, path)?;
    fs.sync_dir(parent_of(path))
}

/// Syncs every file under `dir`, then the directories bottom-up, so that
/// the whole tree survives a crash.
pub fn sync_tree(fs: &dyn FileSystem, dir: &Path) -> FsResult<()> {
    for name in fs.list_dir(dir)? {
        let path = dir.join(name);
        if fs.is_dir(&path)? {
            sync_tree(fs, &path)?;
        } else {
            fs.sync_file(&path)?;
        }
    }
    fs.sync_dir(dir)
}

/// Removes `path` and everything under it, and makes the removal durable.
pub fn remove_tree_synced(fs: &dyn FileSystem, path: &Path) -> FsResult<()> {
    raftwood_lsm::fs::remove_dir_all(fs, path)?;
    fs.sync_dir(parent_of(path))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use raftwood_lsm::fs::{CrashFs, CrashMode};

    use super::*;

    fn fs_with(dir: &str) -> CrashFs {
        let fs = CrashFs::new();
        fs.create_dir_all(Path::new(dir)).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs
    }

    #[test]
    fn replace_file_replaces_durably_and_leaves_no_temp_file() {
        let fs = fs_with("/member");
        let path = Path::new("/member/kv-current");
        replace_file(&fs, path, b"one").unwrap();
        replace_file(&fs, path, b"two").unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read_file(path).unwrap(), b"two");
        assert_eq!(
            fs.list_dir(Path::new("/member")).unwrap(),
            vec!["kv-current".to_string()]
        );
    }

    #[test]
    fn a_synced_tree_survives_a_crash_whole() {
        let fs = fs_with("/member");
        fs.create_dir_all(Path::new("/member/in/kv")).unwrap();
        let mut file = fs.create_file(Path::new("/member/in/kv/a.sst")).unwrap();
        file.append(b"table").unwrap();
        drop(file);
        sync_tree(&fs, Path::new("/member/in")).unwrap();
        fs.sync_dir(Path::new("/member")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(
            fs.read_file(Path::new("/member/in/kv/a.sst")).unwrap(),
            b"table"
        );
    }
}
