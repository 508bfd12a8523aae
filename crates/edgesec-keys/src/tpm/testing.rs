//! A private swtpm per test: free TCP ports, state in a temporary directory, killed on drop.
//! For this crate's tests and the key service's and daemon's integration tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    /// The server (command) port; the control port is separate.
    pub port: u16,
    pub ctrl_port: u16,
    state: PathBuf,
}

/// A free port P whose neighbour P+1 is free too: the `swtpm` TCTI finds the control channel at
/// the command port plus one.
fn free_port_pair() -> Option<u16> {
    let a = TcpListener::bind("127.0.0.1:0").ok()?;
    let port = a.local_addr().ok()?.port();
    let _b = TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
    Some(port)
}

/// True when swtpm is installed. In CI (`CI=true`) a missing swtpm is a failure, not a skip.
pub fn available() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v swtpm"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "swtpm is required in CI but is not installed"
        );
        eprintln!("skipping: swtpm is not installed");
    }
    found
}

impl Swtpm {
    /// Starts swtpm with its state in `state` (created if needed); `None` when swtpm is missing
    /// outside CI. A state directory can be reused by a later `start` (a "reboot").
    pub fn start(state: &Path) -> Option<Swtpm> {
        if !available() {
            return None;
        }
        std::fs::create_dir_all(state).expect("swtpm state dir");
        let mut last_error = String::new();
        for attempt in 0..20u64 {
            // A little more patience each time: the state directory's lock of an instance that
            // was just stopped, or a port another test took, needs a moment to clear.
            std::thread::sleep(Duration::from_millis(25 * attempt));
            let Some(port) = free_port_pair() else {
                continue;
            };
            let ctrl_port = port + 1;
            let mut child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl_port},bindaddr=127.0.0.1"))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("swtpm starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Swtpm {
                        child,
                        port,
                        ctrl_port,
                        state: state.to_owned(),
                    });
                }
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let mut why = String::new();
                    if let Some(mut err) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut err, &mut why);
                    }
                    last_error = why;
                    break; // a port was taken meanwhile: try others
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("swtpm did not start: {last_error}");
    }

    /// The TCTI string for this instance.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
