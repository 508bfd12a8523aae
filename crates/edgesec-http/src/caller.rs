//! Who is on the other end of a Unix socket, as the kernel reports it.
//!
//! Identity is read once, when the connection is accepted. With keep-alive many
//! requests share a connection, so identity is per connection, not per request.
//! `SO_PEERCRED` records the process that called `connect()`; its pid alone can be
//! reused after that process exits, so we also ask for a pidfd (`SO_PEERPIDFD`),
//! which stays bound to that exact process and lets later code pin it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::net::UnixStream;

/// The kernel-reported credentials of the process that connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// Process id. `None` only if the kernel did not report one.
    pub pid: Option<i32>,
    /// Effective user id at `connect()` time.
    pub uid: u32,
    /// Effective group id at `connect()` time.
    pub gid: u32,
}

/// Everything a handler learns about the connection a request came in on.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Credentials from `SO_PEERCRED`.
    pub caller: Caller,
    /// A pidfd for the connecting process (`SO_PEERPIDFD`, Linux 6.5+), if the
    /// kernel gave one. Shared by every request on the connection.
    pub pidfd: Option<Arc<OwnedFd>>,
    /// Number of the connection, unique within this process. For logs, and so
    /// handlers (and tests) can tell connections apart.
    pub connection_id: u64,
    /// What a handler learned about this connection's caller, kept for its later requests.
    pub memo: ConnectionMemo,
}

/// A handler's note about a connection's caller: a name and the version of the handler's state
/// it was made under, so a change of that state voids it. Shared by the connection's requests.
#[derive(Clone, Debug, Default)]
pub struct ConnectionMemo(Arc<std::sync::Mutex<Option<(String, u64)>>>);

impl ConnectionMemo {
    /// The name noted under `version`, if that is the version it was noted under.
    pub fn get(&self, version: u64) -> Option<String> {
        let memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        memo.as_ref()
            .filter(|(_, v)| *v == version)
            .map(|(name, _)| name.clone())
    }

    pub fn set(&self, name: &str, version: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_owned(), version));
    }

    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Reads `SO_PEERCRED` for an accepted connection.
pub fn peer_caller(stream: &UnixStream) -> io::Result<Caller> {
    let cred = stream.peer_cred()?;
    Ok(Caller {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

// libc does not export SO_PEERPIDFD for Linux targets yet. Its value is 77 in
// asm-generic (x86_64, aarch64, arm, riscv, mips, ...); sparc differs.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERPIDFD: libc::c_int = 0x0056;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERPIDFD: libc::c_int = 77;

/// Asks the kernel for a pidfd of the process that connected (`SO_PEERPIDFD`).
///
/// Returns `None` on kernels older than 6.5 (the option is unknown there) or
/// if the call fails for any other reason; callers then have only the pid.
pub fn peer_pidfd(stream: &UnixStream) -> Option<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `stream` owns a valid socket fd for the duration of the call, and
    // `fd`/`len` point to properly sized, writable locals.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || fd < 0 {
        return None;
    }
    // SAFETY: on success the kernel installed a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    (len as usize == std::mem::size_of::<libc::c_int>()).then_some(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pidfd_names_the_peer_and_is_close_on_exec() {
        let (a, _b) = UnixStream::pair().unwrap();
        let caller = peer_caller(&a).unwrap();
        assert_eq!(caller.pid, Some(std::process::id() as i32));
        // Kernels before 6.5 have no SO_PEERPIDFD; nothing more to check there.
        let Some(fd) = peer_pidfd(&a) else { return };
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .unwrap()
            .trim();
        assert_eq!(pid, std::process::id().to_string());
        // Must not leak into processes the daemon starts.
        // SAFETY: F_GETFD on an fd we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "{flags}");
    }
}
