//! Runs the real `edgesec-agent` binary against the stand-in daemon in a temporary directory.
#![allow(dead_code)] // each test uses a different subset

pub mod stand_in;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stand_in::{StandIn, State};

/// Guards every wait against hanging; never a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub daemon: StandIn,
    pub agent: Option<Child>,
}

impl Setup {
    /// Starts the stand-in with `state` and writes `deployment` (if any) to the deployment file.
    pub fn new(state: State, deployment: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let daemon = StandIn::start(dir.path(), state);
        let s = Setup {
            dir,
            daemon,
            agent: None,
        };
        if let Some(text) = deployment {
            s.write_deployment(text);
        }
        s
    }

    pub fn deployment_path(&self) -> PathBuf {
        self.dir.path().join("deployment.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// Replaces the deployment file the way deployment tools do: write aside, then rename.
    pub fn write_deployment(&self, text: &str) {
        let tmp = self.dir.path().join("deployment.json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.deployment_path()).unwrap();
    }

    /// Starts the agent, and lets the stand-in accept changes from its pid only.
    pub fn spawn_agent(&mut self, agent_name: &str) {
        self.spawn_agent_with(agent_name, true);
    }

    /// Starts the agent; the stand-in accepts its changes only if `authorize`.
    pub fn spawn_agent_with(&mut self, agent_name: &str, authorize: bool) {
        // Held until the pid is recorded, so no request is judged before that.
        let mut state = self.daemon.state();
        let child = Command::new(env!("CARGO_BIN_EXE_edgesec-agent"))
            .env_clear()
            .env(
                "IOTEDGE_MANAGEMENTURI",
                edgesec_http::unix_uri(&self.daemon.socket),
            )
            .env("EDGESEC_DEPLOYMENT", self.deployment_path())
            .env("IOTEDGE_MODULEID", agent_name)
            .env("EDGESEC_LOG", "info")
            .args(["--interval", "500ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .expect("start edgesec-agent");
        state.agent_pid = authorize.then_some(child.id() as i32);
        drop(state);
        self.agent = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until `done` holds for the stand-in's state; panics after [`PATIENCE`] with the
    /// agent's log and the calls so far.
    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if done(&self.daemon.state()) {
                return;
            }
            if let Some(status) = self.agent.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "agent exited ({status}) while waiting for: {what}\nlog:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\ncalls: {:#?}\nagent log:\n{}",
                self.daemon.state().calls,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the agent's log contains `text`.
    pub async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for log line {text:?}; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `n` more agent passes (each lists the modules once).
    pub async fn wait_passes(&mut self, n: usize) {
        let target = self.daemon.state().lists + n;
        self.wait_until(&format!("{n} more passes"), |s| s.lists >= target)
            .await;
    }

    /// Sends SIGTERM and waits for the agent to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.agent.take().expect("agent started");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("agent did not exit on SIGTERM; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The text of a deployment file with these `"name": {...}` module entries.
pub fn deployment(modules: serde_json::Value) -> String {
    serde_json::json!({"schemaVersion": "1.0", "modules": modules}).to_string()
}
