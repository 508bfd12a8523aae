//! The key service alone: `edgesec-keyd` on a temporary software store, its start time, and
//! `/sign` over its socket from this process (principal "self") with keep-alive connections.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgesec_keyd::api::{API_VERSION, SignRequest};
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{KeyPairAlgorithm, SignAlgorithm, SymmetricUsage};

use crate::client::{self, Load, LoadResult};
use crate::sys::{self, Bins};

const KEYD_TOML: &str = r#"
socket = "run/keyd.sock"
state_dir = "state/keyd"

[store]
backend = "soft"

[[principal]]
uid = "self"
keys = ["*"]
"#;

pub struct Keyd {
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
}

impl Keyd {
    pub fn new(bins: &Bins) -> Result<Keyd, String> {
        let dir = tempfile::Builder::new()
            .prefix("edgesec-bench-keyd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("keyd.toml"), KEYD_TOML).map_err(|e| e.to_string())?;
        Ok(Keyd {
            dir,
            binary: bins.path("edgesec-keyd"),
            child: None,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/keyd.sock")
    }

    /// Starts keyd; returns the time from spawn to its socket accepting.
    pub fn start(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut child = Command::new(&self.binary)
            .arg("--config")
            .arg(self.dir.path().join("keyd.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        let r = sys::wait_accepting(&self.socket(), &mut child, t0, Duration::from_secs(30));
        self.child = Some(child);
        r.map_err(|e| format!("edgesec-keyd {e}"))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::terminate(&mut c, Duration::from_secs(10));
        }
    }

    /// Removes the store, so the next start is a first start.
    pub fn wipe(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir.path().join("state"));
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

impl Drop for Keyd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Medians of `runs` cold starts (each on a new store) and then `runs` warm starts (an
/// existing store, after the disk has settled).
pub fn start_times(keyd: &mut Keyd, runs: usize) -> Result<(f64, f64), String> {
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        keyd.wipe();
        cold.push(keyd.start()?.as_secs_f64() * 1e3);
        keyd.stop();
    }
    sys::settle();
    for _ in 0..runs {
        warm.push(keyd.start()?.as_secs_f64() * 1e3);
        keyd.stop();
    }
    Ok((sys::median(cold), sys::median(warm)))
}

/// The two sign requests: HMAC-SHA256 over 64 bytes, ECDSA P-256 over a SHA-256 digest.
pub async fn sign_requests(socket: PathBuf) -> Result<(Vec<u8>, Vec<u8>), String> {
    let c = KeydClient::new(socket);
    let hmac = c
        .create_key("bench/hmac", SymmetricUsage::HmacSha256)
        .await
        .map_err(|e| format!("create key: {e}"))?;
    let p256 = c
        .create_key_pair("bench/p256", Some(KeyPairAlgorithm::EcP256))
        .await
        .map_err(|e| format!("create key pair: {e}"))?;
    let path = format!("/sign?api-version={API_VERSION}");
    let hmac_body = serde_json::to_vec(&SignRequest {
        key_handle: hmac.key_handle,
        algorithm: SignAlgorithm::HmacSha256,
        message: Some(vec![0x5a; 64]),
        digest: None,
    })
    .expect("serializable");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[0x5a; 64]);
    let p256_body = serde_json::to_vec(&SignRequest {
        key_handle: p256.key_handle,
        algorithm: SignAlgorithm::EcdsaSha256,
        message: None,
        digest: Some(digest.as_ref().to_vec()),
    })
    .expect("serializable");
    Ok((
        client::request("POST", &path, Some(&hmac_body)),
        client::request("POST", &path, Some(&p256_body)),
    ))
}

/// `connections` clients sending `request` to keyd from `start`, on this process's
/// current-thread runtime.
pub async fn load(
    socket: PathBuf,
    request: Vec<u8>,
    connections: usize,
    start: Instant,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    match client::call_once(&socket, &request).await {
        Ok((200, _)) => {}
        Ok((status, body)) => {
            return LoadResult {
                errors: 1,
                first_error: Some(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body)
                )),
                ..Default::default()
            };
        }
        Err(e) => {
            return LoadResult {
                errors: 1,
                first_error: Some(e.to_string()),
                ..Default::default()
            };
        }
    }
    let measure_from = start + warmup;
    client::run(
        Load {
            socket,
            request,
            expect_status: 200,
            connections,
            measure_from,
            end: measure_from + duration,
        },
        start,
    )
    .await
}
