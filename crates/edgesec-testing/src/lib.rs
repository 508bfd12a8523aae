//! What the end-to-end tests and the benchmark share to drive the real binaries: stopping a
//! child process the way a service manager does, and waiting for a condition with a deadline
//! that only ends a broken run (tests must pass on a slow, busy machine).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// SIGTERM, up to `grace` for the child to exit, then SIGKILL. The exit status, when there is
/// one.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    // SAFETY: signalling a child this process started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Polls `ok` until it holds; panics with `what` and `context()` once `deadline` has passed.
pub fn wait_until(
    what: &str,
    deadline: Duration,
    mut ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let end = Instant::now() + deadline;
    while !ok() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_stops_a_child_that_honours_sigterm_and_kills_one_that_does_not() {
        let mut polite = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let status = terminate(&mut polite, Duration::from_secs(30)).unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );

        let mut stubborn = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200)); // the trap is set
        let status = terminate(&mut stubborn, Duration::from_millis(300)).unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }

    #[test]
    #[should_panic(expected = "timed out waiting for nothing\nctx")]
    fn wait_until_gives_up_at_its_deadline_with_the_context() {
        wait_until(
            "nothing",
            Duration::from_millis(100),
            || false,
            || "ctx".into(),
        );
    }
}
