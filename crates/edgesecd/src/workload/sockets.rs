//! Workload sockets: the shared one, and one per module, created when the module starts
//! (re-created on every start, replacing whatever stale file or directory is at the path),
//! closed when it stops and removed with the module. Mode 0666: every module must reach its
//! own socket, and attestation decides what it gets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use edgesec_http::{ServerLimits, bind_unix_socket, serve};
use tokio::sync::oneshot;

use super::{Socket, WorkloadApi};
use crate::daemon::Daemon;

const SOCKET_MODE: u32 = 0o666;

/// The per-module listeners that are open.
#[derive(Default)]
pub struct ModuleSockets {
    open: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

/// Clears a path for a new socket: a stale socket, file or directory left by a crash or by a
/// container engine that created the bind-mount source itself.
fn clear_path(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn limits(d: &Daemon) -> ServerLimits {
    ServerLimits {
        max_connections_per_uid: d.config.workload.max_connections_per_uid,
        ..ServerLimits::default()
    }
}

/// Serves the workload API for `socket` on `path` until `stop` fires or is dropped.
pub fn spawn_listener(
    daemon: Arc<Daemon>,
    path: &Path,
    socket: Socket,
) -> std::io::Result<oneshot::Sender<()>> {
    clear_path(path)?;
    let listener = bind_unix_socket(path, SOCKET_MODE, None)?;
    let (tx, rx) = oneshot::channel::<()>();
    let api = Arc::new(WorkloadApi {
        daemon: daemon.clone(),
        socket,
    });
    tokio::spawn(serve(listener, limits(&daemon), api, async move {
        let _ = rx.await;
    }));
    Ok(tx)
}

impl Daemon {
    /// Opens (or re-opens) a module's socket.
    pub async fn bind_module_socket(&self, name: &str) -> Result<(), String> {
        let me = self.me();
        let path = self.module_socket(name);
        let stop = spawn_listener(me, &path, Socket::Module(name.to_owned()))
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // a previous listener for this module (a restart) is stopped by dropping its sender
        self.module_sockets
            .open
            .lock()
            .expect("lock")
            .insert(name.to_owned(), stop);
        Ok(())
    }

    /// Closes a module's socket; `remove` also deletes the file (the module is gone).
    pub async fn unbind_module_socket(&self, name: &str, remove: bool) {
        self.module_sockets.open.lock().expect("lock").remove(name);
        if remove {
            let _ = clear_path(&self.module_socket(name));
        }
    }
}
