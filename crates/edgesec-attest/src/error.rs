//! The one error type of this crate.
//!
//! Every variant's Display is safe to log: it names pids, sizes and paths, never file contents,
//! and this crate never handles secrets. The variants are distinct because callers act
//! differently on them: a gone or reused process is an ordinary race (answer "forbidden"),
//! "not permitted" is a deployment problem (the daemon lacks privileges), "too large" is policy.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum AttestError {
    /// The process exited (or never existed) before or while we looked at it.
    ProcessGone { pid: i32 },
    /// The pid now names a different process than the one that was pinned.
    PidReused { pid: i32 },
    /// The pidfd handed in does not refer to the pid it came with.
    PidfdMismatch { pid: i32, pidfd_pid: i32 },
    /// The kernel refused access (ptrace access mode check on /proc/<pid>/exe, EPERM on pidfd).
    NotPermitted { what: String },
    /// The file is larger than the measurement cap.
    TooLarge { size: u64, max: u64 },
    /// /proc content that did not parse (would mean a kernel format change).
    Malformed { what: String },
    /// Any other I/O failure, with what we were doing.
    Io { context: String, source: io::Error },
}

impl AttestError {
    /// Maps an I/O error from an operation on `/proc/<pid>/...` or a pidfd: ENOENT and ESRCH
    /// mean the process is gone, EACCES/EPERM mean we lack the right to look.
    pub(crate) fn from_proc_io(pid: i32, context: impl Into<String>, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => AttestError::ProcessGone { pid },
            Some(libc::EACCES) | Some(libc::EPERM) => AttestError::NotPermitted {
                what: context.into(),
            },
            _ => AttestError::Io {
                context: context.into(),
                source: err,
            },
        }
    }

    /// Maps an I/O error from an operation on an ordinary file path.
    pub(crate) fn from_file_io(context: impl Into<String>, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => AttestError::NotPermitted {
                what: context.into(),
            },
            _ => AttestError::Io {
                context: context.into(),
                source: err,
            },
        }
    }

    /// True for the two "the caller went away under us" outcomes, which are races rather than
    /// faults and should not be logged as errors.
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            AttestError::ProcessGone { .. } | AttestError::PidReused { .. }
        )
    }
}

impl fmt::Display for AttestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttestError::ProcessGone { pid } => write!(f, "process {pid} is gone"),
            AttestError::PidReused { pid } => {
                write!(f, "pid {pid} now belongs to a different process")
            }
            AttestError::PidfdMismatch { pid, pidfd_pid } => {
                write!(f, "pidfd refers to pid {pidfd_pid}, not to pid {pid}")
            }
            AttestError::NotPermitted { what } => write!(f, "not permitted: {what}"),
            AttestError::TooLarge { size, max } => {
                write!(
                    f,
                    "file is {size} bytes, larger than the limit of {max} bytes"
                )
            }
            AttestError::Malformed { what } => write!(f, "malformed {what}"),
            AttestError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for AttestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttestError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
