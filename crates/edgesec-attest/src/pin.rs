//! Pinning a caller process so that a reused pid can never borrow its identity.
//!
//! A pid alone is a weak name: after the process exits and is reaped the kernel hands the
//! number to the next new process. A pidfd names one process for its whole life, and the
//! (pid, start time) pair names one process for the life of the system. The recipe (crate
//! notes §2) is: open the pidfd first, then read the start time, then check the pidfd still
//! refers to a live process. If all three agree, the start time we read belongs to the process
//! the pidfd holds. `recheck` repeats the last two steps after attestation and before acting.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::error::AttestError;
use crate::measure::Measurer;
use crate::measurement::Measurement;
use crate::procstat::read_stat;

/// A process pinned by pidfd and start time.
#[derive(Debug, Clone)]
pub struct PinnedProcess {
    pid: i32,
    start_time: u64,
    pidfd: Arc<OwnedFd>,
}

impl PinnedProcess {
    /// Pins `pid`. Pass the pidfd the HTTP layer got from `SO_PEERPIDFD` when there is one: it
    /// was taken by the kernel at connect time, so it cannot name a later owner of the pid. With
    /// `None` a pidfd is opened here, which pins whichever process holds the pid *now* (the usual
    /// `SO_PEERCRED` race: the daemon should prefer `SO_PEERPIDFD`).
    pub fn pin(pid: i32, pidfd: Option<Arc<OwnedFd>>) -> Result<PinnedProcess, AttestError> {
        // Pid::from_raw asserts a non-negative value; 0 and below name no single process.
        if pid <= 0 {
            return Err(AttestError::ProcessGone { pid });
        }
        let raw = Pid::from_raw(pid).ok_or(AttestError::ProcessGone { pid })?;
        let pidfd = match pidfd {
            Some(fd) => {
                check_pidfd_names(&fd, pid)?;
                fd
            }
            None => Arc::new(
                pidfd_open(raw, PidfdFlags::empty())
                    .map_err(|e| AttestError::from_proc_io(pid, "pidfd_open", e.into()))?,
            ),
        };
        let start_time = read_stat(pid)?.start_time;
        if has_exited(&pidfd)? {
            return Err(AttestError::ProcessGone { pid });
        }
        Ok(PinnedProcess {
            pid,
            start_time,
            pidfd,
        })
    }

    /// Confirms the pinned process is still alive and still owns its pid. Call it after the
    /// attestation decision and right before acting on it.
    pub fn recheck(&self) -> Result<(), AttestError> {
        let stat = read_stat(self.pid);
        // The pidfd is the authority on liveness; the stat read only proves the pid was not
        // handed to someone else. Check the pidfd after the read so a reuse in between shows.
        if has_exited(&self.pidfd)? {
            return Err(AttestError::ProcessGone { pid: self.pid });
        }
        match stat {
            Ok(st) if st.start_time == self.start_time => Ok(()),
            Ok(_) => Err(AttestError::PidReused { pid: self.pid }),
            Err(e) => Err(e),
        }
    }

    /// Whether the process is still running (not exited; a zombie counts as exited).
    pub fn is_alive(&self) -> bool {
        matches!(has_exited(&self.pidfd), Ok(false))
    }

    /// Measures the pinned process's executable with the global measurer, then rechecks the
    /// pin, so the measurement cannot belong to a process that took over the pid meanwhile.
    pub fn exe_measurement(&self) -> Result<Measurement, AttestError> {
        self.exe_measurement_with(Measurer::global())
    }

    /// As [`PinnedProcess::exe_measurement`], with a given measurer.
    pub fn exe_measurement_with(&self, measurer: &Measurer) -> Result<Measurement, AttestError> {
        let m = measurer.exe(self.pid)?;
        self.recheck()?;
        Ok(m)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Start time in clock ticks since boot (field 22 of /proc/<pid>/stat).
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    pub fn pidfd(&self) -> &Arc<OwnedFd> {
        &self.pidfd
    }
}

/// Polls the pidfd without blocking: a pidfd is readable once its process has exited.
pub fn has_exited(pidfd: &impl AsFd) -> Result<bool, AttestError> {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        match poll(&mut fds, Some(&zero)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(!fds[0].revents().is_empty()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(AttestError::Io {
                    context: "poll pidfd".into(),
                    source: e.into(),
                });
            }
        }
    }
}

/// A pidfd passed in from elsewhere is checked against the pid it came with, through the
/// `Pid:` line of /proc/self/fdinfo/<fd> (-1 once the process has been reaped).
fn check_pidfd_names(fd: &OwnedFd, pid: i32) -> Result<(), AttestError> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text = crate::procstat::read_proc_file(&path).map_err(|e| AttestError::Io {
        context: format!("read {path}"),
        source: e,
    })?;
    let found = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| AttestError::Malformed {
            what: format!("{path} (no Pid line: not a pidfd?)"),
        })?;
    match found {
        p if p == pid => Ok(()),
        // Reaped (-1) or in no pid namespace we can see (0): either way it is gone for us.
        -1 | 0 => Err(AttestError::ProcessGone { pid }),
        other => Err(AttestError::PidfdMismatch {
            pid,
            pidfd_pid: other,
        }),
    }
}
