//! Which module a pid belongs to (the process backend's answer to `owner_of`).
//!
//! 1. The cgroup, where module cgroups exist: a process in `<parent>/<name>` (or below) is
//!    that module's, whatever it did to its session or group. A process under our parent but
//!    in no current module's cgroup (a leftover) is nobody's.
//! 2. Otherwise the session: each module's main process is a session leader (spawn.rs), and a
//!    session cannot be joined from outside, so a process whose session id is the main pid of
//!    a running module descends from that module. The session id is the pid of the leader, and
//!    the leader stays unreaped for as long as its run is recorded (watch.rs), so the number
//!    cannot meanwhile belong to another session.
//!
//! A process that left the session with `setsid` and has no module cgroup matches neither
//! rule and is attributed to nobody: fail closed. Module process groups need no rule of their
//! own, since a group never spans sessions.

use super::cgroup::Placement;
use super::module::Shared;

pub(crate) fn owner_of(shared: &Shared, pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    if let Some(tree) = &shared.cgroups {
        // Unreadable (gone, not permitted): nothing can be said.
        let path = tree.path_of(pid)?;
        match tree.placement(&path) {
            Placement::Module(name) => {
                let modules = shared.modules();
                return modules
                    .get(name)
                    .filter(|e| e.cgroup.as_ref().is_some_and(|cg| cg.contains_path(&path)))
                    .map(|e| e.name.clone());
            }
            Placement::Parent => return None,
            Placement::Outside => {}
        }
    }
    // libc rather than rustix: rustix's getsid asserts a positive answer, and processes outside
    // any session (the init of some sandboxes) have session id 0.
    // SAFETY: getsid takes a plain integer and has no memory-safety preconditions.
    let sid = unsafe { libc::getsid(pid) };
    if sid <= 0 {
        return None;
    }
    let modules = shared.modules();
    modules
        .values()
        .find(|e| e.leader() == Some(sid))
        .map(|e| e.name.clone())
}
