//! Creating the listening socket file safely.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UnixListener;

/// The longest socket path that can be bound: `sun_path` is 108 bytes including the
/// terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Binds a Unix socket at `path` with permissions `mode` and, if given, group `group`.
///
/// * Missing parent directories are created with mode 0755; existing ones are
///   left as they are.
/// * A stale socket at `path`, or an empty directory, is replaced. Anything
///   else (a regular file, a symlink, a non-empty directory) is refused with an
///   error, so a wrong configuration cannot delete data.
/// * The socket is bound under a temporary name next to `path`, given its mode
///   and group, and then renamed into place, so it is never reachable with the
///   umask's default permissions and a restart never leaves a moment with no
///   socket file. If the temporary name would be too long for `sun_path`, it
///   binds at `path` directly and sets the mode right after.
///
/// Must be called inside a tokio runtime.
pub fn bind_unix_socket(path: &Path, mode: u32, group: Option<u32>) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        create_missing_dirs(parent)?;
    }
    clear_stale_path(path)?;

    let temp = temp_path(path);
    if temp.as_os_str().len() > MAX_SOCKET_PATH {
        let listener = UnixListener::bind(path).map_err(|e| with_path(e, "cannot bind", path))?;
        set_owner_and_mode(path, mode, group)?;
        return Ok(listener);
    }

    let listener = UnixListener::bind(&temp).map_err(|e| with_path(e, "cannot bind", &temp))?;
    let placed = set_owner_and_mode(&temp, mode, group).and_then(|()| {
        fs::rename(&temp, path).map_err(|e| with_path(e, "cannot move socket into place at", path))
    });
    if let Err(err) = placed {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    Ok(listener)
}

/// Creates `dir` and any missing ancestors with mode 0755 exactly (not
/// narrowed by the umask, or clients could not reach the socket). Existing
/// directories keep their mode.
fn create_missing_dirs(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .map_err(|e| with_path(e, "cannot set mode 755 on", d))?,
            // Someone else made it meanwhile; theirs to keep as it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(with_path(e, "cannot create directory", d)),
        }
    }
    Ok(())
}

/// Makes room for a new socket at `path`, or refuses if that would delete data.
/// A stale socket is left for the rename to replace atomically.
fn clear_stale_path(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(e, "cannot inspect", path)),
    };
    let kind = meta.file_type();
    if kind.is_socket() {
        return Ok(());
    }
    if kind.is_dir() {
        // remove_dir only succeeds on an empty directory, which is exactly the
        // rule we want, without a separate (racy) emptiness check.
        return fs::remove_dir(path).map_err(|e| {
            if e.kind() == io::ErrorKind::DirectoryNotEmpty {
                refuse(path, "it is a non-empty directory")
            } else {
                with_path(e, "cannot remove empty directory", path)
            }
        });
    }
    let what = if kind.is_file() {
        "it is a regular file"
    } else if kind.is_symlink() {
        "it is a symbolic link"
    } else {
        "it is a special file"
    };
    Err(refuse(path, what))
}

fn set_owner_and_mode(path: &Path, mode: u32, group: Option<u32>) -> io::Result<()> {
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| with_path(e, &format!("cannot set group {gid} on"), path))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, &format!("cannot set mode {mode:o} on"), path))
}

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "refusing to replace {}: {why}, not a socket",
            path.display()
        ),
    )
}

fn with_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}
