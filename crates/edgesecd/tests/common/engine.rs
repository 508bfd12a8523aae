//! The container engine for the end-to-end tests: found at `EDGESEC_DOCKER_SOCKET` or
//! /var/run/docker.sock (dockerd; podman's service answers the same API), driven with the
//! `docker` CLI; absent, the tests skip, except with CI=true, where they fail. The images are
//! built locally, once per test process, by `examples/quickstart-containers/build-images.sh`
//! from the workspace's debug binaries (nothing can be pulled).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const BUSYBOX: &str = "localhost/edgesec/busybox:1";
pub const DEMO: &str = "localhost/edgesec/demo:quickstart";
pub const AGENT: &str = "localhost/edgesec/agent:quickstart";

pub struct Engine {
    pub socket: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The engine, with the test images built; `None` (skip) when there is none outside CI.
pub fn engine() -> Option<Engine> {
    let socket = std::env::var_os("EDGESEC_DOCKER_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no container engine at {} (CI=true, so this fails; .ci/run starts dockerd)",
            socket.display()
        );
        eprintln!(
            "SKIPPED: no container engine at {} (start dockerd, or set EDGESEC_DOCKER_SOCKET)",
            socket.display()
        );
        return None;
    }
    let e = Engine { socket };
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bins = Path::new(env!("CARGO_BIN_EXE_edgesecd")).parent().unwrap();
        let out = e
            .cmd("bash")
            .arg(workspace().join("examples/quickstart-containers/build-images.sh"))
            .arg(bins)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "build-images.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    Some(e)
}

impl Engine {
    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", self.uri());
        c
    }

    /// `docker ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd("docker")
            .args(args)
            .output()
            .expect("docker CLI runs")
    }

    /// `docker ARGS`, which must succeed; its stdout, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker inspect -f FORMAT NAME`, or None when there is no such container.
    pub fn inspect(&self, name: &str, format: &str) -> Option<String> {
        let out = self.docker(&["inspect", "--type", "container", "-f", format, name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Removes these containers now and again when the guard drops (a failed test leaves
    /// nothing behind that the next run would collide with).
    pub fn cleanup(&self, names: &[&str]) -> Cleanup {
        let c = Cleanup {
            socket: self.socket.clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        c.run();
        c
    }
}

pub struct Cleanup {
    socket: PathBuf,
    names: Vec<String>,
}

impl Cleanup {
    /// One by one, last first: a container that joined another's network namespace must go
    /// before it (podman refuses otherwise).
    fn run(&self) {
        for name in self.names.iter().rev() {
            let _ = Command::new("docker")
                .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
                .args(["rm", "-f", name])
                .output();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// createOptions `HostConfig.Binds` that let a dynamically linked host program (python3) run
/// in the busybox image: the host's /usr, /lib and /lib64 read-only, plus `extra`.
pub fn host_binds(extra: &[String]) -> Vec<String> {
    let mut b: Vec<String> = ["/usr", "/lib", "/lib64"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p}:{p}:ro"))
        .collect();
    b.extend_from_slice(extra);
    b
}

/// `[moby_runtime]` for a test config.
pub fn moby_section(e: &Engine, allow_elevated: bool) -> String {
    format!(
        "\n[moby_runtime]\nuri = \"{}\"\nnetwork = \"none\"\nallow_elevated_docker_permissions = {allow_elevated}\n",
        e.uri()
    )
}
