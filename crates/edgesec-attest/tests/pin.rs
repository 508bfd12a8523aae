//! Pinning real processes: our own and a child we start, kill and reap.

use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use edgesec_attest::{AttestError, PinnedProcess, read_stat};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

fn open_pidfd(pid: u32) -> Arc<OwnedFd> {
    Arc::new(pidfd_open(Pid::from_raw(pid as i32).unwrap(), PidfdFlags::empty()).unwrap())
}

#[test]
fn pins_own_process() {
    let me = std::process::id() as i32;
    let p = PinnedProcess::pin(me, None).unwrap();
    assert_eq!(p.pid(), me);
    assert_eq!(p.start_time(), read_stat(me).unwrap().start_time);
    assert!(p.is_alive());
    p.recheck().unwrap();
}

#[test]
fn recheck_fails_once_child_exits_and_is_reaped() {
    let mut child = sleeper();
    let pid = child.id() as i32;
    let p = PinnedProcess::pin(pid, None).unwrap();
    p.recheck().unwrap();

    child.kill().unwrap();
    // SIGKILL is delivered asynchronously: wait (bounded, only to avoid a hang) until it died.
    for _ in 0..3000 {
        if !p.is_alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Before reaping the child is a zombie: the pidfd already reports it as exited.
    let zombie = p.recheck().unwrap_err();
    assert!(
        matches!(zombie, AttestError::ProcessGone { .. }),
        "{zombie}"
    );

    child.wait().unwrap();
    let err = p.recheck().unwrap_err();
    assert!(err.is_race(), "expected gone or reused, got {err}");
    assert!(!p.is_alive());
    // Pinning the reaped pid again fails too (unless the number was reused already, in
    // which case it pins the new owner: that is fine, but then the start time differs).
    match PinnedProcess::pin(pid, None) {
        Err(e) => assert!(e.is_race(), "{e}"),
        Ok(q) => assert_ne!(q.start_time(), p.start_time()),
    }
}

#[test]
fn takes_a_pidfd_from_elsewhere_and_checks_it_names_the_pid() {
    let mut child = sleeper();
    let fd = open_pidfd(child.id());
    let p = PinnedProcess::pin(child.id() as i32, Some(fd.clone())).unwrap();
    p.recheck().unwrap();

    let me = std::process::id() as i32;
    let err = PinnedProcess::pin(me, Some(fd)).unwrap_err();
    assert!(matches!(err, AttestError::PidfdMismatch { .. }), "{err}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_pids_are_gone() {
    for pid in [0, -1, i32::MAX] {
        let err = PinnedProcess::pin(pid, None).unwrap_err();
        assert!(
            matches!(err, AttestError::ProcessGone { .. }),
            "{pid}: {err}"
        );
    }
}
