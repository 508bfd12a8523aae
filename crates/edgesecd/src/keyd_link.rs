//! The daemon's link to edgesec-keyd. In production keyd runs as its own service; in the
//! quickstart (when `[keyd] config` is set and the socket is absent) edgesecd starts it itself
//! and stops it on exit.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use edgesec_keyd::client::KeydClient;
use tokio::process::{Child, Command};

use crate::config::KeydLink as KeydConfig;

/// How long to wait for keyd's socket.
const KEYD_WAIT: Duration = Duration::from_secs(30);

pub struct KeydLink {
    pub client: KeydClient,
    child: Option<Child>,
}

fn reachable(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

impl KeydLink {
    pub async fn connect(cfg: &KeydConfig) -> Result<Self, String> {
        let client = KeydClient::new(&cfg.socket);
        if reachable(&cfg.socket) {
            return Ok(KeydLink {
                client,
                child: None,
            });
        }
        let mut child = match &cfg.start_with_config {
            Some(keyd_config) => {
                tracing::info!(binary = %cfg.binary.display(), config = %keyd_config.display(), "starting edgesec-keyd");
                let child = Command::new(&cfg.binary)
                    .arg("--config")
                    .arg(keyd_config)
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", cfg.binary.display()))?;
                Some(child)
            }
            None => None,
        };
        let deadline = Instant::now() + KEYD_WAIT;
        // keyd is usually ready within a few milliseconds: look often at first, then back off.
        let mut pause = Duration::from_millis(1);
        while !reachable(&cfg.socket) {
            if let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "edgesec-keyd exited at start ({status}); see its messages above"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "edgesec-keyd is not answering on {} after {}s",
                    cfg.socket.display(),
                    KEYD_WAIT.as_secs()
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Ok(KeydLink { client, child })
    }

    /// Stops the keyd this daemon started, if any.
    pub async fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}
