//! Caller attestation: which module, if any, is the process on the other end of a socket.
//!
//! The order matters. The process is pinned first (pidfd plus start time), then resolved to a
//! module through the runtime's records (its process group or cgroup, or the container id its
//! cgroup names; never anything the caller says), then what it runs (its executable, or its
//! container's image id) is compared with the module's registration, and finally the pin is
//! checked again, so a pid that was reused during the checks can never borrow an identity.

use edgesec_attest::PinnedProcess;
use edgesec_http::Peer;

use crate::daemon::Daemon;

/// The outcome of attesting one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    /// The caller is this module's process and runs the registered executable.
    Module(String),
    /// Not a module (or not any more): `reason` says why, for the audit log.
    Nobody {
        reason: &'static str,
        claimed: Option<String>,
    },
}

impl Attested {
    pub fn module(&self) -> Option<&str> {
        match self {
            Attested::Module(m) => Some(m),
            Attested::Nobody { .. } => None,
        }
    }

    /// The module name to write in the audit log (also the one a refused caller resolved to).
    pub fn audit_name(&self) -> Option<&str> {
        match self {
            Attested::Module(m) => Some(m),
            Attested::Nobody { claimed, .. } => claimed.as_deref(),
        }
    }

    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Attested::Module(_) => None,
            Attested::Nobody { reason, .. } => Some(reason),
        }
    }
}

impl Daemon {
    /// Attests the caller of a connection. Blocking work (a first-time hash) runs off the async
    /// workers.
    ///
    /// A connection's first request is attested in full. Its later requests, while no module
    /// has changed or ended a run since, only check what can change under a live connection:
    /// that the pinned process is alive (its pidfd), that it still runs the registered
    /// executable or image (an `exec` would change it), and that the module is still
    /// registered. Without a pidfd every request is attested in full.
    pub async fn attest(&self, peer: &Peer) -> Attested {
        let version = self
            .modules_version
            .load(std::sync::atomic::Ordering::SeqCst);
        if let Some(module) = peer.memo.get(version)
            && self.still_attested(peer, &module).await
        {
            return Attested::Module(module);
        }
        peer.memo.clear();
        let attested = self.attest_in_full(peer).await;
        if let (Attested::Module(m), Some(_)) = (&attested, &peer.pidfd) {
            peer.memo.set(m, version);
        }
        attested
    }

    /// The checks of a noted connection's later requests; false sends it to the full path.
    async fn still_attested(&self, peer: &Peer, module: &str) -> bool {
        let (Some(pidfd), Some(pid)) = (&peer.pidfd, peer.caller.pid) else {
            return false;
        };
        let registered = match self.registry.read().await.modules.get(module) {
            Some(r) => r.measurement,
            None => return false,
        };
        let same =
            matches!(self.runtime.caller_measurement(module, pid).await, Ok(m) if m == registered);
        // Alive after the measurement, so the pid still named the pinned process while it ran.
        same && matches!(edgesec_attest::has_exited(&**pidfd), Ok(false))
    }

    async fn attest_in_full(&self, peer: &Peer) -> Attested {
        let nobody = |reason, claimed| Attested::Nobody { reason, claimed };
        let Some(pid) = peer.caller.pid else {
            return nobody("no pid from the kernel", None);
        };
        let pinned = match PinnedProcess::pin(pid, peer.pidfd.clone()) {
            Ok(p) => p,
            Err(_) => return nobody("caller process gone", None),
        };
        let Some(module) = self.runtime.owner_of(pid).await else {
            return nobody("not a process of any module", None);
        };
        let registered = match self.registry.read().await.modules.get(&module) {
            Some(r) => r.measurement,
            None => return nobody("module not registered", Some(module)),
        };
        // A process: its executable's hash; a container: its container's current image id.
        let measured = match self.runtime.caller_measurement(&module, pid).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(module, pid, error = %e, "cannot measure the caller");
                return nobody("cannot measure the caller", Some(module));
            }
        };
        if measured != registered {
            tracing::warn!(module, pid, expected = %registered, found = %measured, "caller runs an executable other than the registered one");
            return nobody("measurement mismatch", Some(module));
        }
        if pinned.recheck().is_err() {
            return nobody("caller process changed during attestation", Some(module));
        }
        Attested::Module(module)
    }
}
