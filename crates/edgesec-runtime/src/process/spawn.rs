//! Starting a module's main process.
//!
//! `std::process::Command`, not `tokio::process`: the backend reaps its children itself through
//! a pidfd (watch.rs) so it can leave an exited main process unreaped while it cleans up, and
//! tokio's reaper would race with that. std's `Child` neither kills nor reaps on drop.
//!
//! In the child, between fork and exec (the `pre_exec` hook, where only async-signal-safe calls
//! are allowed: raw syscalls, no allocation, no locks), in this order:
//! 1. join the module's cgroup, by writing our own pid to its `cgroup.procs`, while still root.
//!    Doing it in the child rather than from the parent after spawn leaves no window in which
//!    the new process (or something it forks) runs outside the cgroup;
//! 2. `setsid()`: the module gets its own session and process group, both with id = its pid.
//!    A session cannot be joined from outside (setpgid only works within one's own session),
//!    so no process of another module can make itself look like one of this module's; a
//!    plain process group would not give that, since all modules would share the daemon's
//!    session and could `setpgid` into each other's groups;
//! 3. drop privileges: supplementary groups, then gid, then uid (the order that still works).
//!
//! Environment: cleared, then exactly what prepare.rs computed. stdin is /dev/null.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

use super::cgroup::ModuleCgroup;
use super::prepare::Prepared;

/// A started main process. Nobody has waited for it: the pidfd is how it is watched and reaped.
pub(crate) struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Ids the child switches to.
struct ChildIds {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// Forks and execs (blocking until the exec happened or failed: call from `spawn_blocking`).
pub(crate) fn spawn(p: &Prepared, cgroup: Option<&ModuleCgroup>) -> io::Result<Spawned> {
    let mut cmd = Command::new(&p.exe);
    cmd.arg0(&p.arg0)
        .args(&p.args)
        .env_clear()
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &p.working_dir {
        cmd.current_dir(dir);
    }
    let procs_file = cgroup.map(|c| c.procs_file.clone());
    let ids = p.user.as_ref().and_then(|u| {
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        // A non-root daemon can only run modules as itself; then there is nothing to switch
        // (and setgroups would fail).
        let needed = euid == 0 || u.uid != euid || u.gid != egid;
        needed.then(|| ChildIds {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        })
    });
    // SAFETY: the hook runs in the forked child before exec; child_setup only makes raw
    // syscalls on data captured here (no allocation, no locks), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || child_setup(procs_file.as_deref(), ids.as_ref()));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("stdout and stderr were configured as pipes");
    };
    // The child is unreaped (nobody waits for it yet), so its pid cannot have been reused.
    let pidfd = match Pid::from_raw(pid).map(|p| pidfd_open(p, PidfdFlags::empty())) {
        Some(Ok(fd)) => fd,
        other => {
            // Without a pidfd we cannot watch it: end it now rather than lose track of it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(match other {
                Some(Err(e)) => e.into(),
                _ => io::Error::other("spawned child has no valid pid"),
            });
        }
    };
    Ok(Spawned {
        pid,
        pidfd,
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

fn child_setup(procs_file: Option<&CStr>, ids: Option<&ChildIds>) -> io::Result<()> {
    if let Some(path) = procs_file {
        join_cgroup(path)?;
    }
    // SAFETY: setsid has no memory-safety preconditions. The forked child is not a group
    // leader (it is in the daemon's group), so it succeeds.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(ids) = ids {
        // SAFETY: the pointer and length describe a live Vec owned by the closure.
        if unsafe { libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain syscalls with integer arguments.
        if unsafe { libc::setresgid(ids.gid, ids.gid, ids.gid) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above. Last, since after it we may no longer change groups.
        if unsafe { libc::setresuid(ids.uid, ids.uid, ids.uid) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes our pid in decimal to `cgroup.procs` (the explicit pid rather than "0", which older
/// v1 kernels did not all accept).
fn join_cgroup(path: &CStr) -> io::Result<()> {
    // SAFETY: path is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 12];
    // SAFETY: getpid has no preconditions.
    let digits = format_pid(unsafe { libc::getpid() }, &mut buf);
    // SAFETY: digits points to initialized bytes of buf for its length; fd is open.
    let n = unsafe { libc::write(fd, digits.as_ptr().cast(), digits.len()) };
    let err = (n < 0).then(io::Error::last_os_error);
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    err.map_or(Ok(()), Err)
}

/// Decimal digits of a positive pid into `buf`, without allocating.
fn format_pid(pid: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut n = pid.max(0) as u32;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::format_pid;

    #[test]
    fn formats_pids() {
        let mut b = [0u8; 12];
        assert_eq!(format_pid(1, &mut b), b"1");
        assert_eq!(format_pid(4194304, &mut b), b"4194304");
        assert_eq!(format_pid(i32::MAX, &mut b), b"2147483647");
    }
}
