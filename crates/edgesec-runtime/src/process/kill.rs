//! Signalling a module's processes without ever hitting someone else's.
//!
//! Killing by a pid read from a list (cgroup.procs, a /proc scan) races with pid reuse: the
//! process may exit and its number go to an unrelated process before the signal is sent. So
//! each target is pinned first: open a pidfd, check membership (cgroup path or session id)
//! through /proc, check the pidfd still names a live process, and signal through the pidfd.
//! If the process had exited before the pidfd was opened, the pidfd names the new owner and the
//! membership check fails; if it exits after, the signal goes nowhere.
//!
//! Signalling a whole process group by number (`kill(-pgid)`) is only done while the group
//! leader is unreaped: a zombie leader keeps its pid, and so its group id, reserved.

use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open, pidfd_send_signal};

use edgesec_attest::{has_exited, read_stat};

use super::cgroup::{CgroupTree, ModuleCgroup};

/// Sends `sig` to `pid` if, while pinned, it is alive and `belongs` says it is ours. Returns
/// whether a live process was signalled.
fn signal_pinned(pid: i32, sig: Signal, belongs: impl Fn(i32) -> bool) -> bool {
    // Pid::from_raw debug-asserts a non-negative value, so test the sign first.
    if pid <= 0 {
        return false;
    }
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
        return false;
    };
    if !belongs(pid) || !matches!(has_exited(&fd), Ok(false)) {
        return false;
    }
    pidfd_send_signal(&fd, sig).is_ok()
}

/// Signals every live process of session `sid` except the session leader `sid` itself
/// (which the caller handles). The caller guarantees the leader is unreaped, so the session
/// id cannot belong to anyone else. Returns how many live processes were signalled.
pub(crate) fn signal_session(sid: i32, sig: Signal) -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let in_session = |pid: i32| read_stat(pid).is_ok_and(|st| st.session == sid);
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != sid && in_session(pid))
        .filter(|&pid| signal_pinned(pid, sig, in_session))
        .count()
}

/// Signals every live process in the module's cgroup (or below it). Returns how many.
pub(crate) fn signal_cgroup(tree: &CgroupTree, cg: &ModuleCgroup, sig: Signal) -> usize {
    let Ok(pids) = cg.members() else {
        return 0;
    };
    let in_cgroup = |pid: i32| tree.path_of(pid).is_some_and(|p| cg.contains_path(&p));
    pids.into_iter()
        .filter(|&pid| signal_pinned(pid, sig, in_cgroup))
        .count()
}

/// `kill(-pgid, sig)`. Only call while the group leader `pgid` is unreaped (see module docs).
/// A group with no live member (ESRCH) is not an error.
pub(crate) fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 0
        && let Some(p) = Pid::from_raw(pgid)
    {
        let _ = kill_process_group(p, sig);
    }
}
