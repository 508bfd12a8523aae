//! Crash-safe state files. Every edgesec state file is written through here: a crash at any
//! point leaves the old or the new content, never a torn file. Directories are 0700 and files
//! 0600, and a directory or file that others could change is refused by name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A state file problem, with the path in the message: for the operator's log, never for an
/// API caller.
#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

/// Creates `dir` with mode 0700 if absent, then checks it is safe to keep state in.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StateError(format!("cannot create {}: {e}", dir.display())))?;
        }
        Err(e) => {
            return Err(StateError(format!("cannot read {}: {e}", dir.display())));
        }
    }
    check_private(dir, true)
}

/// Refuses a path that others could tamper with: a symlink, a directory writable by group or
/// others, a file readable by anyone but its owner, or one owned by another user.
pub fn check_private(path: &Path, is_dir: bool) -> Result<(), StateError> {
    let refuse = |why: String| {
        Err(StateError(format!(
            "refusing to use {}: {why}",
            path.display()
        )))
    };
    let meta = fs::symlink_metadata(path)
        .map_err(|e| StateError(format!("cannot read {}: {e}", path.display())))?;
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if is_dir != meta.is_dir() {
        return refuse(
            if is_dir {
                "not a directory"
            } else {
                "not a regular file"
            }
            .into(),
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return refuse(format!(
            "it is owned by uid {} but this process runs as uid {euid}",
            meta.uid()
        ));
    }
    let (mask, fix) = if is_dir {
        (0o022, "700")
    } else {
        (0o077, "600")
    };
    if mode & mask != 0 {
        let who = if is_dir {
            "writable by group or others"
        } else {
            "readable or writable by group or others"
        };
        return refuse(format!(
            "it is {who} (mode {mode:04o}); run: chmod {fix} {}",
            path.display()
        ));
    }
    Ok(())
}

/// Writes `data` to `path` only if `path` does not exist yet, atomically: the file appears
/// whole or not at all, even across a crash. Returns `Ok(false)` when `path` already existed.
pub fn write_new(path: &Path, data: &[u8]) -> Result<bool, StateError> {
    let dir = path.parent().expect("state files live in a directory");
    let tmp = temp_path(path);
    let io_err = |what: &str, e: io::Error| StateError(format!("{what} {}: {e}", tmp.display()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("cannot create", e))?;
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("cannot write", e));
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // link() refuses to replace an existing name, so two creators of one file cannot both win.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StateError(format!("cannot link {}: {e}", path.display()))),
    }
}

/// Writes `data` to `path`, replacing what was there, atomically (temp file, fsync, rename,
/// fsync of the directory). The file gets `mode`.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().expect("state files live in a directory");
    let tmp = temp_path(path);
    let io_err = |what: &str, e: io::Error| StateError(format!("{what} {}: {e}", tmp.display()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err("cannot create", e))?;
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("cannot write", e));
    drop(file);
    let renamed = written.and_then(|()| {
        fs::rename(&tmp, path)
            .map_err(|e| StateError(format!("cannot rename to {}: {e}", path.display())))
    });
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes `path` and makes the removal durable.
pub fn remove(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    sync_dir(path.parent().expect("state files live in a directory"))
        .map_err(|e| io::Error::other(e.to_string()))
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError(format!("cannot sync {}: {e}", dir.display())))
}

/// A temporary name beside `path`, unique within this process.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Deletes temporary files that a crash left behind. Only safe while the store lock is held.
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            && name.ends_with(".tmp")
            && let Err(e) = fs::remove_file(entry.path())
        {
            tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temporary file");
        }
    }
}

/// Holds an exclusive lock on a state directory for the life of the value, so that two
/// processes never share one.
pub struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<Self, StateError> {
        use std::os::fd::AsRawFd;
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StateError(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(StateError(format!(
                "{} is in use by another process",
                dir.display()
            )));
        }
        Ok(DirLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        assert!(write_new(&p, b"one").unwrap());
        assert!(!write_new(&p, b"two").unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // no temporary file is left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_replace_swaps_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_replace(&p, b"old", 0o600).unwrap();
        write_replace(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_open_directories_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_private(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("0777"), "{err}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        check_private(dir.path(), true).unwrap();
    }
}
