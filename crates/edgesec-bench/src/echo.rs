//! The transport floor: edgesec's own HTTP server (`edgesec_http::serve`, the one edgesecd and
//! keyd run, on the same multi-thread runtime) with a handler that does nothing, in a process
//! of its own. Its requests/s and CPU per request are what one hop over a Unix socket costs on
//! this machine before any work is done; a workload `sign` makes two such hops
//! (module → edgesecd → keyd).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesec_http::{Peer, Request, ServerLimits, bind_unix_socket, json_response, serve};

use crate::client::{self, Load, LoadResult};
use crate::sys;

/// `edgesec-bench echo --socket PATH`: serves until killed.
pub fn main(socket: &Path) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = bind_unix_socket(socket, 0o600, None).map_err(|e| e.to_string())?;
        let handler = Arc::new(|_peer: Peer, _req: Request| async move {
            json_response(http::StatusCode::OK, &serde_json::json!({ "ok": true }))
        });
        serve(
            listener,
            ServerLimits::default(),
            handler,
            std::future::pending::<()>(),
        )
        .await;
        Ok(())
    })
}

/// A running echo server.
pub struct Echo {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Echo {
    pub fn start() -> Result<Echo, String> {
        let dir = tempfile::Builder::new()
            .prefix("edgesec-bench-echo-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let socket = dir.path().join("echo.sock");
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["echo", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        sys::wait_accepting(&socket, &mut child, Instant::now(), Duration::from_secs(10))
            .map_err(|e| format!("echo server {e}"))?;
        Ok(Echo {
            child,
            socket,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `connections` clients posting a small JSON body, from `start`.
    pub async fn load(
        &self,
        connections: usize,
        start: Instant,
        warmup: Duration,
        duration: Duration,
    ) -> LoadResult {
        let body = br#"{"keyId":"primary","algo":"HMACSHA256","data":"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg=="}"#;
        let measure_from = start + warmup;
        client::run(
            Load {
                socket: self.socket.clone(),
                request: client::request("POST", "/echo", Some(body)),
                expect_status: 200,
                connections,
                measure_from,
                end: measure_from + duration,
            },
            start,
        )
        .await
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
