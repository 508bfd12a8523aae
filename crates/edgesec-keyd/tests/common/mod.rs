//! Starts the real `edgesec-keyd` binary on a temporary directory and talks to it over its socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgesec_keyd::client::KeydClient;

pub const V: &str = "api-version=2026-12-01";

pub struct Keyd {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub client: KeydClient,
}

/// The config every test starts from; `extra` is appended (principals, limits).
pub fn config(extra: &str) -> String {
    format!("socket = \"run/keyd.sock\"\nstate_dir = \"state\"\n{extra}")
}

pub const ALL_KEYS: &str = "[[principal]]\nuid = \"self\"\nkeys = [\"*\"]\nexport = [\"*\"]\n";

impl Keyd {
    pub fn start(extra: &str) -> Keyd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keyd.toml"), config(extra)).unwrap();
        let mut k = Keyd {
            client: KeydClient::new(dir.path().join("run/keyd.sock")),
            dir,
            child: None,
        };
        k.spawn().expect("keyd starts");
        k
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/keyd.sock")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts keyd and waits for its socket. On failure returns the exit status and stderr.
    pub fn spawn(&mut self) -> Result<(), (Option<i32>, String)> {
        let _ = std::fs::remove_file(self.socket());
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgesec-keyd"))
            .arg("--config")
            .arg(self.dir.path().join("keyd.toml"))
            .env("EDGESEC_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("keyd.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err((status.code(), self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "keyd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keyd.log")).unwrap_or_default()
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "keyd exited with {status}: {}",
                self.log()
            );
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("keyd restarts");
    }

    /// A raw request through curl: (status, body). `as_uid` runs curl as that uid and gid.
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        as_uid: Option<u32>,
    ) -> (u16, String) {
        curl(&self.socket(), method, path, body, as_uid)
    }
}

impl Drop for Keyd {
    fn drop(&mut self) {
        self.kill9();
    }
}

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
        // std drops supplementary groups when root sets a uid.
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// True when a tool is on PATH; when it is not, a test may skip, except in CI.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required in CI but is not installed"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// Every file under the store with its contents, to prove a request changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
