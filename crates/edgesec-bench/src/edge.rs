//! One edgesecd (which starts its own edgesec-keyd and the real edgesec-agent) on a copy of the
//! quickstart in a temporary directory, and the worker modules the agent runs for the load
//! figures.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{self, Bins};
use crate::worker::{Job, JobResult, write_atomic};

const QUICKSTART_CONFIG: &str = include_str!("../../../examples/quickstart/config.toml");
const QUICKSTART_KEYD: &str = include_str!("../../../examples/quickstart/keyd.toml");
/// Long enough for a slow debug build; only there so a broken run ends.
const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct Edge {
    pub dir: tempfile::TempDir,
    edgesecd: PathBuf,
    child: Option<Child>,
    pub workers: Vec<String>,
    next_job: u64,
}

/// How long one start took.
pub struct StartTimes {
    /// Spawn to the management socket accepting connections.
    pub socket: Duration,
    /// Spawn to `READY=1` on `$NOTIFY_SOCKET` (boot finished: agent started).
    pub ready: Option<Duration>,
}

/// A deployment of `n` worker modules: this very binary in worker mode, one box each.
pub fn worker_deployment(dir: &Path, n: usize) -> Result<(String, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut modules = serde_json::Map::new();
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("bench-w{i}");
        let box_dir = dir.join("boxes").join(&name);
        std::fs::create_dir_all(&box_dir).map_err(|e| e.to_string())?;
        modules.insert(
            name.clone(),
            serde_json::json!({
                "type": "process",
                "status": "running",
                "restartPolicy": "never",
                "startupOrder": 1,
                "settings": {
                    "command": exe.display().to_string(),
                    "args": ["worker", "--box", box_dir.display().to_string()],
                }
            }),
        );
        names.push(name);
    }
    let d = serde_json::json!({ "schemaVersion": "1.0", "modules": modules });
    Ok((d.to_string(), names))
}

impl Edge {
    /// The quickstart with `extra_config` appended and `workers` worker modules deployed.
    pub fn new(bins: &Bins, extra_config: &str, workers: usize) -> Result<Edge, String> {
        let dir = tempfile::Builder::new()
            .prefix("edgesec-bench-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let (deployment, names) = worker_deployment(dir.path(), workers)?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        write("keyd.toml", QUICKSTART_KEYD)?;
        write(
            "config.toml",
            &format!("{QUICKSTART_CONFIG}\n{extra_config}"),
        )?;
        write("deployment.json", &deployment)?;
        Ok(Edge {
            dir,
            edgesecd: bins.path("edgesecd"),
            child: None,
            workers: names,
            next_job: 0,
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts edgesecd; returns when the management socket accepts and READY=1 arrived (or
    /// did not within a second after that).
    pub fn start(&mut self) -> Result<StartTimes, String> {
        let notify_path = self.path("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).map_err(|e| e.to_string())?;
        notify.set_nonblocking(true).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("edgesecd.log"))
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut child = Command::new(&self.edgesecd)
            .arg("--config")
            .arg(self.path("config.toml"))
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.edgesecd.display()))?;
        let mgmt = self.path("run/mgmt.sock");
        let socket = match sys::wait_accepting(&mgmt, &mut child, t0, START_DEADLINE) {
            Ok(d) => d,
            Err(e) => {
                sys::terminate(&mut child, Duration::from_secs(10));
                return Err(format!("edgesecd {e}\n{}", self.log_tail()));
            }
        };
        self.child = Some(child);
        let mut buf = [0u8; 512];
        let ready_deadline = Instant::now() + START_DEADLINE;
        let ready = loop {
            if let Ok(n) = notify.recv(&mut buf)
                && buf[..n].windows(7).any(|w| w == b"READY=1")
            {
                break Some(t0.elapsed());
            }
            if Instant::now() > ready_deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        Ok(StartTimes { socket, ready })
    }

    /// SIGTERM and wait (edgesecd stops its modules and its keyd first).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::terminate(&mut c, Duration::from_secs(60));
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The edgesec-keyd this edgesecd started.
    pub fn keyd_pid(&self) -> Option<i32> {
        sys::children_named(self.pid()?, "edgesec-keyd")
            .first()
            .copied()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("edgesecd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn box_dir(&self, worker: &str) -> PathBuf {
        self.path("boxes").join(worker)
    }

    /// Waits until every worker module has started.
    pub fn wait_workers(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        for w in &self.workers {
            while !self.box_dir(w).join("ready").exists() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "worker module {w} did not start\n{}",
                        self.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The pid a worker wrote when it started.
    pub fn worker_pid(&self, worker: &str) -> Option<i32> {
        std::fs::read_to_string(self.box_dir(worker).join("ready"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Gives job `jobs[i]` to worker `i` (workers without a job sit it out); returns the job
    /// number for [`Edge::collect`].
    pub fn give_jobs(&mut self, jobs: &[Job]) -> Result<u64, String> {
        let seq = self.next_job;
        self.next_job += 1;
        for (i, w) in self.workers.iter().enumerate() {
            let job = jobs.get(i).cloned().unwrap_or(Job {
                connections: 0,
                ..jobs[0].clone()
            });
            let bytes = serde_json::to_vec(&job).map_err(|e| e.to_string())?;
            write_atomic(&self.box_dir(w).join(format!("job-{seq}.json")), &bytes)
                .map_err(|e| e.to_string())?;
        }
        Ok(seq)
    }

    /// The results of job `seq` from every worker, waiting until `deadline`.
    pub fn collect(&self, seq: u64, deadline: Instant) -> Result<Vec<JobResult>, String> {
        let mut out = Vec::new();
        for w in &self.workers {
            let path = self.box_dir(w).join(format!("result-{seq}.json"));
            let bytes = loop {
                if let Ok(b) = std::fs::read(&path) {
                    break b;
                }
                if Instant::now() > deadline {
                    let err =
                        std::fs::read_to_string(self.box_dir(w).join("error")).unwrap_or_default();
                    return Err(format!(
                        "worker module {w} sent no result {err}\n{}",
                        self.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            out.push(serde_json::from_slice(&bytes).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}
