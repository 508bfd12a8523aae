//! Running the real edgesecd on a copy of the quickstart, and reading it through the
//! management API as an admin.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use edgesec_http::{NO_BODY, UdsClient};
use http::{Method, StatusCode};
use serde_json::{Value, json};

pub const API: &str = "api-version=2022-08-03";

/// The workspace's binaries (`target/debug`), checked to be built.
pub fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_edgesec-demo"))
        .parent()
        .expect("the binary has a directory")
        .to_owned();
    for name in ["edgesecd", "edgesec-keyd", "edgesec-agent"] {
        assert!(
            dir.join(name).is_file(),
            "{} is not built: build the workspace first (`cargo build --workspace`; \
             `cargo test --workspace` builds it too)",
            dir.join(name).display()
        );
    }
    dir
}

/// The example directory of the repository.
pub fn quickstart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

/// Copies the quickstart's files (not a `run/` or `state/` left by a manual run) into `to`.
pub fn copy_quickstart(to: &Path) {
    copy_example("quickstart", to);
}

/// Copies the files of `examples/<name>` (not a `run/` or `state/` left by a manual run).
pub fn copy_example(name: &str, to: &Path) {
    let dir = quickstart_dir().with_file_name(name);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// edgesecd running on a directory; stopped with SIGTERM (SIGKILL if it hangs) when dropped.
pub struct Edgesecd {
    pub dir: PathBuf,
    child: Option<Child>,
    pub mgmt: UdsClient,
    rt: tokio::runtime::Runtime,
}

impl Edgesecd {
    pub fn start(bin_dir: &Path, dir: &Path) -> Self {
        let log = std::fs::File::create(dir.join("edgesecd.log")).unwrap();
        let child = Command::new(bin_dir.join("edgesecd"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start edgesecd");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Edgesecd {
            dir: dir.to_owned(),
            child: Some(child),
            mgmt: UdsClient::new(dir.join("run/mgmt.sock")),
            rt,
        }
    }

    /// A management API GET: status and body (errors, e.g. no socket yet, as `None`).
    pub fn get(&self, path: &str) -> Option<(StatusCode, Vec<u8>)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!("{path}{sep}{API}");
        self.rt
            .block_on(self.mgmt.request(Method::GET, &full, NO_BODY))
            .ok()
            .map(|(s, b)| (s, b.to_vec()))
    }

    /// A module's log lines, decoded from Docker's multiplexed frames.
    pub fn logs(&self, module: &str) -> Vec<String> {
        match self.get(&format!("/modules/{module}/logs")) {
            Some((StatusCode::OK, body)) => decode_frames(&body),
            _ => Vec::new(),
        }
    }

    /// A module as the management API lists it.
    pub fn module(&self, name: &str) -> Option<serde_json::Value> {
        let (status, body) = self.get(&format!("/modules/{name}"))?;
        (status == StatusCode::OK).then(|| serde_json::from_slice(&body).unwrap())
    }

    /// Everything useful when a wait fails.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let log = std::fs::read_to_string(self.dir.join("edgesecd.log")).unwrap_or_default();
        out.push_str(&format!("--- edgesecd log\n{log}"));
        for m in ["edgeAgent", "demo-server", "demo-client", "demo-wrongname"] {
            out.push_str(&format!("--- {m}: {:?}\n", self.module(m)));
            for line in self.logs(m) {
                out.push_str(&format!("{line}\n"));
            }
        }
        out
    }

    /// Polls `check` every 300 ms until it returns something or `limit` passes.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = check(self) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Sends SIGTERM and waits (at most `limit`, then SIGKILL) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        edgesec_testing::terminate(&mut self.child.take()?, limit)
    }
}

impl Drop for Edgesecd {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(30));
    }
}

/// Docker's multiplexed log frames: [stream, 0, 0, 0, length u32 BE] then the payload.
pub fn decode_frames(mut body: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    while body.len() >= 8 {
        assert!(
            matches!(body[0], 1 | 2) && body[1..4] == [0, 0, 0],
            "bad frame header"
        );
        let len = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
        let end = (8 + len).min(body.len());
        let text = String::from_utf8_lossy(&body[8..end]);
        lines.push(text.trim_end_matches('\n').to_owned());
        body = &body[end..];
    }
    lines
}

/// True when a tool is on PATH; when it is not, a test may skip, except in CI.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required in CI but is not installed"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// `openssl verify` of a dumped leaf: its output and whether it passed.
pub fn openssl_verify(dir: &Path, prefix: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("bundle.pem"))
        .arg("-untrusted")
        .arg(dir.join(format!("{prefix}-chain.pem")))
        .args(extra)
        .arg(dir.join(format!("{prefix}-leaf.pem")))
        .output()
        .expect("cannot run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The quickstart's deployment with `port` instead of 8443, a dump directory for each demo
/// module, and one more client that expects the wrong server name and gives up after 5 s.
pub fn test_deployment(dir: &std::path::Path, port: u16) {
    let path = dir.join("deployment.json");
    let mut d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut replaced = 0;
    for (name, dump) in [
        ("demo-server", "dump/server"),
        ("demo-client", "dump/client"),
    ] {
        let args = d["modules"][name]["settings"]["args"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("the quickstart has no {name} with args"));
        for a in args.iter_mut() {
            if a == "127.0.0.1:8443" {
                *a = json!(addr);
                replaced += 1;
            }
        }
        args.push(json!("--dump-dir"));
        args.push(json!(dir.join(dump)));
    }
    assert_eq!(replaced, 2, "both demo modules use 127.0.0.1:8443");
    d["modules"]["demo-wrongname"] = json!({
        "type": "process",
        "restartPolicy": "never",
        "startupOrder": 3,
        "settings": {
            "command": "edgesec-demo",
            "args": ["client", "--connect", addr, "--server-name", "wrong.example",
                     "--once", "--timeout", "5s"]
        }
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&d).unwrap()).unwrap();
}
