//! Measuring executables: SHA-256 of the bytes, size-capped, cached by file identity.
//!
//! Measurement happens on every workload request (the daemon compares the caller's executable
//! with its registration), so a repeat for an unchanged file must cost an open and an fstat,
//! not a rehash. The cache key is the file's identity and change markers: (st_dev, st_ino,
//! size, mtime ns, ctime ns). Any write changes mtime and ctime, and ctime cannot be set from
//! user space, so a modified or replaced file misses the cache. (A FUSE file system could lie in
//! its stat answers; whoever controls such a mount is privileged already.)
//!
//! Files are always hashed through the descriptor that was stat-ed, never re-opened by path, so
//! there is no window between checking and hashing. `/proc/<pid>/exe` is opened directly: that
//! magic link yields the very file the process runs, even if it was renamed or deleted and a new
//! file put at its path.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::digest;

use crate::error::AttestError;
use crate::measurement::Measurement;

/// Default cap on the size of a measured file.
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;
/// Default number of cached measurements (distinct executable files, so small).
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// How often a file changed under us while hashing before we give up.
const HASH_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct MeasureConfig {
    /// Files larger than this are refused with [`AttestError::TooLarge`].
    pub max_size: u64,
    /// Cache capacity in entries.
    pub cache_entries: usize,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            max_size: DEFAULT_MAX_SIZE,
            cache_entries: DEFAULT_CACHE_ENTRIES,
        }
    }
}

/// Counters, for tests and for the daemon's status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeasureStats {
    /// Full hashes computed (cache misses that succeeded).
    pub hashes: u64,
    /// Answers served from the cache.
    pub cache_hits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A measurement cache with its size cap. Most code uses [`Measurer::global`] through
/// [`exe_measurement`] and [`measure_file`]; tests make their own to count hashes.
#[derive(Debug)]
pub struct Measurer {
    max_size: AtomicU64,
    cache_entries: usize,
    cache: Mutex<HashMap<FileKey, Measurement>>,
    hashes: AtomicU64,
    hits: AtomicU64,
}

impl Default for Measurer {
    fn default() -> Self {
        Measurer::new(MeasureConfig::default())
    }
}

impl Measurer {
    pub fn new(config: MeasureConfig) -> Measurer {
        Measurer {
            max_size: AtomicU64::new(config.max_size),
            cache_entries: config.cache_entries.max(1),
            cache: Mutex::new(HashMap::new()),
            hashes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// The process-wide measurer used by the free functions.
    pub fn global() -> &'static Measurer {
        static GLOBAL: OnceLock<Measurer> = OnceLock::new();
        GLOBAL.get_or_init(Measurer::default)
    }

    /// Changes the size cap (the daemon sets it from its configuration at start).
    pub fn set_max_size(&self, max: u64) {
        self.max_size.store(max, Ordering::Relaxed);
    }

    pub fn max_size(&self) -> u64 {
        self.max_size.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> MeasureStats {
        MeasureStats {
            hashes: self.hashes.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Measures the executable of process `pid` (via `/proc/<pid>/exe`). By pid alone this is
    /// racy; attestation should use [`crate::PinnedProcess::exe_measurement`].
    pub fn exe(&self, pid: i32) -> Result<Measurement, AttestError> {
        if pid <= 0 {
            return Err(AttestError::ProcessGone { pid });
        }
        let path = format!("/proc/{pid}/exe");
        let file = open_nonblocking(Path::new(&path))
            .map_err(|e| AttestError::from_proc_io(pid, format!("open {path}"), e))?;
        self.measure_open(&file, &path)
    }

    /// The measurement of process `pid`'s executable if the cache holds it for the file the
    /// process runs now: an open and an fstat, never a hash, so it is cheap enough to call on
    /// an async worker for every request. `Ok(None)` on a miss: then measure with
    /// [`Measurer::exe`] off the async workers. The answer is the one `exe` would give.
    pub fn exe_cached(&self, pid: i32) -> Result<Option<Measurement>, AttestError> {
        if pid <= 0 {
            return Err(AttestError::ProcessGone { pid });
        }
        let path = format!("/proc/{pid}/exe");
        let file = open_nonblocking(Path::new(&path))
            .map_err(|e| AttestError::from_proc_io(pid, format!("open {path}"), e))?;
        let key = stat_regular(&file, &path)?;
        let max = self.max_size();
        if key.size > max {
            return Err(AttestError::TooLarge {
                size: key.size,
                max,
            });
        }
        let hit = self.lock_cache().get(&key).copied();
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(hit)
    }

    /// Measures the file at `path` (symlinks followed), for create-time measurement.
    pub fn file(&self, path: &Path) -> Result<Measurement, AttestError> {
        let shown = path.display().to_string();
        let file = open_nonblocking(path)
            .map_err(|e| AttestError::from_file_io(format!("open {shown}"), e))?;
        self.measure_open(&file, &shown)
    }

    /// Forgets every cached measurement.
    pub fn clear_cache(&self) {
        self.lock_cache().clear();
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, Measurement>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts),
        // so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn measure_open(&self, file: &File, shown: &str) -> Result<Measurement, AttestError> {
        let max = self.max_size();
        for _ in 0..HASH_ATTEMPTS {
            let before = stat_regular(file, shown)?;
            if before.size > max {
                return Err(AttestError::TooLarge {
                    size: before.size,
                    max,
                });
            }
            if let Some(m) = self.lock_cache().get(&before).copied() {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(m);
            }
            let Some(m) = hash_exactly(file, before.size, shown)? else {
                continue;
            };
            // The descriptor is shared with nobody, but the file may be written through another
            // one while we read: only a hash taken between two equal stats is stored.
            if stat_regular(file, shown)? != before {
                continue;
            }
            self.hashes.fetch_add(1, Ordering::Relaxed);
            let mut cache = self.lock_cache();
            if cache.len() >= self.cache_entries {
                // Evict an arbitrary entry: the working set (distinct executables) is small, and
                // a miss only costs one rehash.
                if let Some(k) = cache.keys().next().copied() {
                    cache.remove(&k);
                }
            }
            cache.insert(before, m);
            return Ok(m);
        }
        Err(AttestError::Io {
            context: format!("measure {shown}"),
            source: io::Error::other("file kept changing while it was hashed"),
        })
    }
}

/// Opens read-only with O_NONBLOCK: if a FIFO or device was put where a file was expected,
/// the open returns at once (and stat_regular refuses it) instead of blocking the caller.
/// O_NONBLOCK has no effect on reads of regular files.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

fn stat_regular(file: &File, shown: &str) -> Result<FileKey, AttestError> {
    let meta = file
        .metadata()
        .map_err(|e| AttestError::from_file_io(format!("stat {shown}"), e))?;
    if !meta.is_file() {
        return Err(AttestError::Io {
            context: format!("measure {shown}"),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    Ok(FileKey::of(&meta))
}

/// Hashes the file from offset 0 (positional reads, so the descriptor's offset does not matter).
/// Returns `None` if the length differs from `size`, i.e. the file changed meanwhile; reading
/// stops one byte past `size`, so a growing file cannot make us hash more than the cap.
fn hash_exactly(file: &File, size: u64, shown: &str) -> Result<Option<Measurement>, AttestError> {
    use std::os::unix::fs::FileExt;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let want = buf.len().min((size + 1 - offset) as usize);
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(AttestError::from_file_io(format!("read {shown}"), e)),
        };
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        offset += n as u64;
        if offset > size {
            return Ok(None);
        }
    }
    if offset != size {
        return Ok(None);
    }
    let digest = ctx.finish();
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok(Some(Measurement { sha256, size }))
}

/// Measures the executable of `pid` with the global measurer.
pub fn exe_measurement(pid: i32) -> Result<Measurement, AttestError> {
    Measurer::global().exe(pid)
}

/// The cached measurement of `pid`'s executable from the global measurer, if there is one
/// (see [`Measurer::exe_cached`]).
pub fn exe_measurement_cached(pid: i32) -> Result<Option<Measurement>, AttestError> {
    Measurer::global().exe_cached(pid)
}

/// Measures the file at `path` with the global measurer (same cache as [`exe_measurement`]).
pub fn measure_file(path: &Path) -> Result<Measurement, AttestError> {
    Measurer::global().file(path)
}
