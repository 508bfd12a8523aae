//! `edgesec-bench worker --box DIR`: a benchmark client that edgesecd runs as a module, so it is
//! attested like any module (its executable is this very binary). It talks to its own workload
//! socket (`IOTEDGE_WORKLOADURI`) and takes orders from the orchestrator through files in its
//! box directory:
//!
//! - it writes `ready` (its pid) when it starts;
//! - the orchestrator drops `job-<n>.json` (written to a temporary name, then renamed); the
//!   worker opens its connections, waits for the job's start time (the barrier every worker
//!   shares), runs the warm-up and then the measured window, and answers `result-<n>.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_api::workload::{
    CertificateResponse, ServerCertificateRequest, SignRequest, SignResponse, TrustBundleResponse,
};
use edgesec_http::{encode_path_segment, parse_unix_uri};
use serde::{Deserialize, Serialize};

use crate::client::{self, Load};
use crate::hist::WireHistogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// `POST .../sign` (HMAC-SHA256 of 64 bytes with the module key).
    Sign,
    /// `POST .../certificate/server`.
    ServerCert,
    /// `GET /trust-bundle`.
    TrustBundle,
    /// `POST /echo` with a sign-sized body, to the socket the job names (the transport floor
    /// measured from the same client processes).
    Echo,
    /// Leave.
    Exit,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub kind: JobKind,
    /// Connections (clients) this worker opens; 0: sit this one out.
    pub connections: usize,
    /// Unix time in ms when the warm-up starts (shared by all workers).
    pub start_at_ms: u64,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    /// Another socket than the module's own (for `Echo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobResult {
    pub module: String,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub hist: WireHistogram,
}

pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The local instant of a Unix time in ms.
pub fn instant_of(unix_ms: u64) -> Instant {
    let now_ms = unix_ms_now();
    let now = Instant::now();
    if unix_ms >= now_ms {
        now + Duration::from_millis(unix_ms - now_ms)
    } else {
        now - Duration::from_millis(now_ms - unix_ms)
    }
}

/// Writes `path` so a reader never sees it half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The IoT Edge environment edgesecd gives the module.
struct ModuleEnv {
    socket: PathBuf,
    module: String,
    generation: String,
    api_version: String,
}

impl ModuleEnv {
    fn from_env() -> Result<ModuleEnv, String> {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
        let uri = var("IOTEDGE_WORKLOADURI")?;
        Ok(ModuleEnv {
            socket: parse_unix_uri(&uri).map_err(|e| e.to_string())?,
            module: var("IOTEDGE_MODULEID")?,
            generation: var("IOTEDGE_MODULEGENERATIONID")?,
            api_version: var("IOTEDGE_APIVERSION")?,
        })
    }

    fn route(&self, tail: &str) -> String {
        format!(
            "/modules/{}/genid/{}/{tail}?api-version={}",
            encode_path_segment(&self.module),
            encode_path_segment(&self.generation),
            self.api_version
        )
    }

    /// The request of a job kind and the status it must answer.
    fn request(&self, kind: JobKind) -> (Vec<u8>, u16) {
        match kind {
            JobKind::Sign => {
                let body = SignRequest {
                    key_id: Some("primary".into()),
                    algo: Some("HMACSHA256".into()),
                    data: STANDARD.encode([0x5a; 64]),
                };
                let body = serde_json::to_vec(&body).expect("serializable");
                (
                    client::request("POST", &self.route("sign"), Some(&body)),
                    200,
                )
            }
            JobKind::ServerCert => {
                let body = ServerCertificateRequest {
                    common_name: "bench.local".into(),
                    expiration: None,
                };
                let body = serde_json::to_vec(&body).expect("serializable");
                (
                    client::request("POST", &self.route("certificate/server"), Some(&body)),
                    201,
                )
            }
            JobKind::Echo => {
                let body = SignRequest {
                    key_id: Some("primary".into()),
                    algo: Some("HMACSHA256".into()),
                    data: STANDARD.encode([0x5a; 64]),
                };
                let body = serde_json::to_vec(&body).expect("serializable");
                (client::request("POST", "/echo", Some(&body)), 200)
            }
            JobKind::TrustBundle | JobKind::Exit => (
                client::request(
                    "GET",
                    &format!("/trust-bundle?api-version={}", self.api_version),
                    None,
                ),
                200,
            ),
        }
    }
}

/// Checks one answer in full before the load, so a load of fast errors is never reported.
fn check_answer(kind: JobKind, status: u16, body: &[u8]) -> Result<(), String> {
    let fail = |what: &str| {
        Err(format!(
            "{kind:?}: {what} (status {status}: {})",
            String::from_utf8_lossy(body)
        ))
    };
    let parsed_ok = match kind {
        JobKind::Sign => serde_json::from_slice::<SignResponse>(body)
            .ok()
            .and_then(|r| STANDARD.decode(r.digest).ok())
            .is_some_and(|d| d.len() == 32),
        JobKind::ServerCert => serde_json::from_slice::<CertificateResponse>(body)
            .is_ok_and(|r| r.certificate.starts_with("-----BEGIN CERTIFICATE-----")),
        JobKind::TrustBundle => serde_json::from_slice::<TrustBundleResponse>(body)
            .is_ok_and(|r| r.certificate.contains("BEGIN CERTIFICATE")),
        JobKind::Echo | JobKind::Exit => true,
    };
    if parsed_ok {
        Ok(())
    } else {
        fail("unexpected answer")
    }
}

async fn run_job(env: &ModuleEnv, job: &Job) -> JobResult {
    let mut result = JobResult {
        module: env.module.clone(),
        ..Default::default()
    };
    if job.connections == 0 {
        return result;
    }
    let (request, expect_status) = env.request(job.kind);
    let socket = job.socket.clone().unwrap_or_else(|| env.socket.clone());
    match client::call_once(&socket, &request).await {
        Ok((status, body)) if status == expect_status => {
            if let Err(e) = check_answer(job.kind, status, &body) {
                result.errors = 1;
                result.first_error = Some(e);
                return result;
            }
        }
        Ok((status, body)) => {
            result.errors = 1;
            result.first_error = Some(format!(
                "{:?}: status {status}: {}",
                job.kind,
                String::from_utf8_lossy(&body)
            ));
            return result;
        }
        Err(e) => {
            result.errors = 1;
            result.first_error = Some(format!("{}: {e}", socket.display()));
            return result;
        }
    }
    let start = instant_of(job.start_at_ms);
    let measure_from = start + Duration::from_millis(job.warmup_ms);
    let load = Load {
        socket,
        request,
        expect_status,
        connections: job.connections,
        measure_from,
        end: measure_from + Duration::from_millis(job.duration_ms),
    };
    // Connect first (outside the window), then wait for the shared start.
    let r = client::run(load, start).await;
    result.ok = r.ok;
    result.errors = r.errors;
    result.first_error = r.first_error;
    result.hist = r.hist.to_wire();
    result
}

pub fn main(box_dir: &Path) -> Result<(), String> {
    let env = ModuleEnv::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    write_atomic(
        &box_dir.join("ready"),
        std::process::id().to_string().as_bytes(),
    )
    .map_err(|e| format!("{}: {e}", box_dir.display()))?;
    for seq in 0.. {
        let path = box_dir.join(format!("job-{seq}.json"));
        let job: Job = loop {
            match std::fs::read(&path) {
                Ok(bytes) => break serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if job.kind == JobKind::Exit {
            return Ok(());
        }
        let result = rt.block_on(run_job(&env, &job));
        let bytes = serde_json::to_vec(&result).map_err(|e| e.to_string())?;
        write_atomic(&box_dir.join(format!("result-{seq}.json")), &bytes)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
