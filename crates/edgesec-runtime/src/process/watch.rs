//! Watching a run's main process until it ends, then cleaning up after it.
//!
//! The main process is waited for through its pidfd, in three steps:
//! 1. wait until the pidfd is readable (the process exited), then read the exit status with
//!    `waitid(P_PIDFD, WEXITED | WNOWAIT)`, which leaves it a zombie;
//! 2. while the zombie keeps its pid (and so the module's session and group ids) reserved,
//!    kill whatever the module left behind: its process group, its session, its cgroup. A
//!    module is its main process, as a container is its pid 1; nothing of it may keep running
//!    unattributed;
//! 3. reap it under the module lock, record the state, tell stop() and the exit listeners.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::process::{Signal, WaitId, WaitIdOptions, WaitIdStatus, waitid};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::kill::{signal_cgroup, signal_group, signal_session};
use super::module::{ModuleEntry, Shared};
use crate::types::{ExitEvent, ModuleStatus};

/// Pause between rounds of killing leftovers.
const CLEANUP_ROUND: Duration = Duration::from_millis(20);

/// How a run ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
}

pub(crate) async fn watch_run(
    shared: Arc<Shared>,
    entry: Arc<ModuleEntry>,
    pid: i32,
    pidfd: Arc<OwnedFd>,
    generation: u64,
) {
    let ended = match wait_exit(&pidfd).await {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(module = %entry.name, pid, error = %e, "waiting for module failed");
            None
        }
    };
    kill_leftovers(&shared, &entry, pid).await;

    let event = {
        let mut inner = entry.lock();
        // Reap. If this fails (someone else reaped it, e.g. a stray waitpid(-1) elsewhere in
        // the process) the status from step 1 still stands.
        let reaped = waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
        if let Err(e) = reaped {
            tracing::warn!(module = %entry.name, pid, error = %e, "reaping module failed");
        }
        let stop_requested = inner.run.as_ref().is_some_and(|r| r.stop_requested);
        inner.run = None;
        let status = match ended {
            None => ModuleStatus::Dead,
            Some(_) if stop_requested => ModuleStatus::Stopped,
            Some(Ended { code: Some(0), .. }) => ModuleStatus::Stopped,
            Some(_) => ModuleStatus::Failed,
        };
        let now = SystemTime::now();
        let code = ended.and_then(|e| e.code.or(e.signal.map(|s| 128 + s)));
        let signal = ended.and_then(|e| e.signal);
        let st = &mut inner.state;
        st.status = status;
        st.exit_code = code;
        st.signal = signal;
        st.finished_at = Some(now);
        st.pid = None;
        ExitEvent {
            name: entry.name.clone(),
            status,
            exit_code: code,
            signal,
            time: now,
        }
    };
    tracing::info!(module = %event.name, status = %event.status, exit_code = ?event.exit_code,
        signal = ?event.signal, "module exited");
    entry.finished.send_replace(generation);
    // No listener is fine.
    let _ = shared.exits.send(event);
}

/// Waits for the pidfd to become readable and reads the status without reaping.
async fn wait_exit(pidfd: &Arc<OwnedFd>) -> std::io::Result<Ended> {
    // SAFETY: the Arc keeps the OwnedFd, and so this descriptor, open and unchanged for as
    // long as the AsyncFd (which holds a clone of the Arc) lives.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd.clone(), Interest::READABLE) }?;
    loop {
        let mut guard = afd.readable().await?;
        match waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(st)) => return Ok(ended_from(&st)),
            // Readable but no status yet: a spurious wake-up.
            Ok(None) => guard.clear_ready(),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn ended_from(st: &WaitIdStatus) -> Ended {
    Ended {
        code: st.exit_status(),
        signal: st.terminating_signal(),
    }
}

/// SIGKILLs the rest of the module until nothing of it is left or the configured time is up.
/// Runs only while the main process `leader` is an unreaped zombie.
pub(crate) async fn kill_leftovers(shared: &Shared, entry: &ModuleEntry, leader: i32) {
    let rounds =
        (shared.config.exit_cleanup_timeout.as_millis() / CLEANUP_ROUND.as_millis()).max(1);
    for round in 0..rounds {
        signal_group(leader, Signal::KILL);
        let mut alive = signal_session(leader, Signal::KILL);
        if let (Some(tree), Some(cg)) = (&shared.cgroups, &entry.cgroup) {
            alive += signal_cgroup(tree, cg, Signal::KILL);
        }
        if alive == 0 {
            return;
        }
        if round + 1 == rounds {
            tracing::warn!(module = %entry.name, alive, "module processes survive SIGKILL");
            return;
        }
        tokio::time::sleep(CLEANUP_ROUND).await;
    }
}
