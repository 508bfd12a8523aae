//! End-to-end harness: the real `edgesecd` (which starts the real `edgesec-keyd` and agent) on
//! a copy of the quickstart in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const V: &str = "api-version=2022-08-03";
/// Long enough for a slow, busy machine; only there so a broken run ends.
pub const DEADLINE: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A sibling binary of edgesecd (keyd, the agent), built by `cargo test --workspace`.
pub fn sibling(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_edgesecd")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so every binary is built",
        p.display()
    );
    p
}

/// The real Python interpreter (not a shim or a venv link): edgesecd attests modules by the
/// executable the kernel reports, so the registered command must be that very file.
pub fn python() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os,sys;print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3 runs");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn probe_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probe.py")
}

/// Deployment entry of a probe module whose request box is `box_dir`.
pub fn probe_module(name: &str, box_dir: &Path, order: u32) -> String {
    format!(
        r#""{name}": {{ "type": "process", "restartPolicy": "always", "startupOrder": {order},
            "settings": {{ "command": "{}", "args": ["{}", "{}"] }} }}"#,
        python().display(),
        probe_script().display(),
        box_dir.display()
    )
}

pub fn deployment(entries: &[String]) -> String {
    format!(
        "{{ \"schemaVersion\": \"1.0\", \"modules\": {{ {} }} }}",
        entries.join(",\n")
    )
}

pub struct Edge {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub stderr: PathBuf,
}

impl Edge {
    /// The quickstart as shipped, with `deployment` as its deployment.json.
    pub fn quickstart(deployment: &str) -> Edge {
        Self::with_config(deployment, |c| c)
    }

    /// The quickstart with its config text changed by `edit`.
    pub fn with_config(deployment: &str, edit: impl FnOnce(String) -> String) -> Edge {
        sibling("edgesec-keyd");
        sibling("edgesec-agent");
        let dir = tempfile::tempdir().unwrap();
        let qs = workspace().join("examples/quickstart");
        std::fs::copy(qs.join("keyd.toml"), dir.path().join("keyd.toml")).unwrap();
        let config = std::fs::read_to_string(qs.join("config.toml")).unwrap();
        std::fs::write(dir.path().join("config.toml"), edit(config)).unwrap();
        std::fs::write(dir.path().join("deployment.json"), deployment).unwrap();
        let stderr = dir.path().join("edgesecd.log");
        let mut e = Edge {
            dir,
            child: None,
            stderr,
        };
        e.start().expect("edgesecd starts");
        e
    }

    /// `examples/<name>` instead of the quickstart: its keyd.toml and config.toml (edited by
    /// `edit`) with `deployment`; `setup` runs on the copy before the start (to make a token, say)
    /// and returns the environment edgesecd runs with (and passes on to the keyd it starts).
    pub fn example(
        name: &str,
        deployment: &str,
        edit: impl FnOnce(String) -> String,
        setup: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Edge {
        sibling("edgesec-keyd");
        let dir = tempfile::tempdir().unwrap();
        let example = workspace().join("examples").join(name);
        std::fs::copy(example.join("keyd.toml"), dir.path().join("keyd.toml")).unwrap();
        let config = std::fs::read_to_string(example.join("config.toml")).unwrap();
        std::fs::write(dir.path().join("config.toml"), edit(config)).unwrap();
        std::fs::write(dir.path().join("deployment.json"), deployment).unwrap();
        let env = setup(dir.path());
        let stderr = dir.path().join("edgesecd.log");
        let mut e = Edge {
            dir,
            child: None,
            stderr,
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e.start_with_env(&env).expect("edgesecd starts");
        e
    }

    /// The config line that makes a probe (with request box `dir`) the agent.
    pub fn probe_agent(dir: &Path) -> String {
        format!(
            "command = \"{}\"\nargs = [\"{}\", \"{}\"]",
            python().display(),
            probe_script().display(),
            dir.display()
        )
    }

    /// The quickstart with a probe as the agent; returns the agent's request box.
    pub fn with_probe_agent(deployment: &str) -> (Edge, Probe) {
        let agent_box = tempfile::tempdir().unwrap().keep();
        let agent = format!(
            "command = \"{}\"\nargs = [\"{}\", \"{}\"]",
            python().display(),
            probe_script().display(),
            agent_box.display()
        );
        let e = Self::with_config(deployment, |c| {
            c.replace("command = \"edgesec-agent\"", &agent)
        });
        let p = Probe::new(&agent_box);
        p.wait_ready();
        (e, p)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts edgesecd and waits for its management socket. Err: exit code and stderr.
    pub fn start(&mut self) -> Result<(), (Option<i32>, String)> {
        self.start_with_env(&[])
    }

    pub fn start_with_env(&mut self, env: &[(&str, &str)]) -> Result<(), (Option<i32>, String)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgesecd"));
        cmd.arg("--config")
            .arg(self.path("config.toml"))
            .env("EDGESEC_LOG", "info,edgesecd=debug")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if std::os::unix::net::UnixStream::connect(self.path("run/mgmt.sock")).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err((status.code(), self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "edgesecd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGTERM; edgesecd must stop its modules and exit 0.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().unwrap();
            assert_eq!(status.code(), Some(0), "edgesecd exit: {}", self.log());
        }
    }

    /// A management API call from this test process (an admin: root).
    pub fn mgmt(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        curl(&self.path("run/mgmt.sock"), method, path, body, None)
    }

    /// `runtimeStatus.status` of a module, if it is listed.
    pub fn status(&self, module: &str) -> Option<String> {
        let (code, body) = self.mgmt("GET", &format!("/modules?{V}"), None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == module)
            .map(|m| {
                m["status"]["runtimeStatus"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
    }

    pub fn wait_status(&self, module: &str, want: &str) {
        wait_until(
            &format!("{module} {want}"),
            || self.status(module).as_deref() == Some(want),
            || self.log(),
        );
    }

    /// Pids of processes whose environment names this edgesecd's deployment and whose command
    /// line contains `needle`.
    pub fn pids(&self, needle: &str) -> Vec<i32> {
        let mark = format!(
            "IOTEDGE_WORKLOADURI=unix://{}",
            self.path("run/mnt").display()
        );
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(needle)
                && String::from_utf8_lossy(&env).contains(&mark)
            {
                out.push(pid);
            }
        }
        out
    }

    /// The audit records. They are written in the background, so this first waits until the
    /// log has stopped growing for a moment, and ignores a line still being written.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let path = self.path("state/edgesecd/audit.log");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = size();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = size();
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // stop modules properly even when a test failed
            edgesec_testing::terminate(c, Duration::from_secs(30));
        }
    }
}

pub fn wait_until(what: &str, ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    edgesec_testing::wait_until(what, DEADLINE, ok, context)
}

/// An HTTP call through curl: (status, body). `as_uid` runs curl as that uid and gid.
pub fn curl(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
    as_uid: Option<u32>,
) -> (u16, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "60",
        "--unix-socket",
    ])
    .arg(socket)
    .args(["-X", method, &format!("http://localhost{path}")]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    if let Some(uid) = as_uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A probe process's request box.
pub struct Probe {
    pub dir: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Probe {
    pub fn new(dir: &Path) -> Probe {
        Probe {
            dir: dir.to_owned(),
        }
    }

    /// A fresh box directory for a probe module.
    pub fn new_box() -> Probe {
        Probe {
            dir: tempfile::tempdir().unwrap().keep(),
        }
    }

    pub fn wait_ready(&self) {
        wait_until(
            "the probe to start",
            || self.dir.join("pid").exists(),
            String::new,
        );
    }

    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Has the probe make a call; returns (status, body). Status 0 means the call itself failed.
    pub fn call(
        &self,
        socket: &Path,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let req =
            serde_json::json!({ "socket": socket, "method": method, "path": path, "body": body });
        let v = self.exchange(&req);
        (
            v["status"].as_u64().unwrap() as u16,
            v["body"].as_str().unwrap().to_owned(),
        )
    }

    /// Has the probe make several calls in order; returns their statuses.
    pub fn batch(&self, socket: &Path, calls: &[(&str, String, Option<String>)]) -> Vec<u16> {
        let list: Vec<_> = calls.iter().map(|(m, p, b)| serde_json::json!({ "socket": socket, "method": m, "path": p, "body": b })).collect();
        let v = self.exchange(&serde_json::json!({ "batch": list }));
        v["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_u64().unwrap() as u16)
            .collect()
    }

    /// Has the probe send `first` on a connection it keeps open, exec `program` (running this
    /// probe script) and send `then` from the new executable on the same connection; returns
    /// both (status, body).
    pub fn exec_between(
        &self,
        program: &Path,
        socket: &Path,
        first: (&str, &str, Option<&str>),
        then: (&str, &str, Option<&str>),
    ) -> [(u16, String); 2] {
        let req = |(m, p, b): (&str, &str, Option<&str>)| serde_json::json!({ "socket": socket, "method": m, "path": p, "body": b });
        let v = self.exchange(
            &serde_json::json!({ "exec": program, "first": req(first), "then": req(then) }),
        );
        let pick = |r: &serde_json::Value| {
            (
                r["status"].as_u64().unwrap() as u16,
                r["body"].as_str().unwrap().to_owned(),
            )
        };
        [pick(&v["batch"][0]), pick(&v["batch"][1])]
    }

    fn exchange(&self, req: &serde_json::Value) -> serde_json::Value {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{n:08}.new"));
        std::fs::write(&tmp, req.to_string()).unwrap();
        std::fs::rename(&tmp, self.dir.join(format!("{n:08}.req"))).unwrap();
        let res = self.dir.join(format!("{n:08}.res"));
        wait_until("the probe to answer", || res.exists(), String::new);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
        std::fs::remove_file(&res).unwrap();
        v
    }
}

pub fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}
