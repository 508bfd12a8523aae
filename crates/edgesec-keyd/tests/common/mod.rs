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
    /// The SoftHSM token keyd uses, when it runs on the PKCS#11 backend.
    pub softhsm: Option<SoftHsm>,
    /// The swtpm keyd uses, when it runs on the TPM backend (or a test gave it one).
    pub swtpm: Option<edgesec_keys::tpm::testing::Swtpm>,
}

pub const SOFTHSM_LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The backend the whole suite runs against: `EDGESEC_TEST_BACKEND=pkcs11` starts every keyd
/// of every test on its own SoftHSM token (CI runs the suite both ways); unset or `soft` is the
/// software store.
pub fn backend() -> &'static str {
    match std::env::var("EDGESEC_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("soft") => "soft",
        Ok("pkcs11") => "pkcs11",
        Ok("tpm") => "tpm",
        Ok(other) => panic!("EDGESEC_TEST_BACKEND={other:?}: expected soft, pkcs11 or tpm"),
    }
}

/// True when the test is about the software store's own files, and the suite runs on another
/// backend: such a test then says so and does nothing.
pub fn soft_store_only() -> bool {
    let other = backend() != "soft";
    if other {
        eprintln!("skipping: this test is about the software store's files");
    }
    other
}

/// True when SoftHSM2 and its tools are installed; when they are not, a test may skip, except
/// in CI (or when the suite was asked to run on PKCS#11).
pub fn have_softhsm() -> bool {
    let must = std::env::var("CI").as_deref() == Ok("true") || backend() == "pkcs11";
    let found = Path::new(SOFTHSM_LIBRARY).exists()
        && Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        found || !must,
        "SoftHSM2 (softhsm2-util, {SOFTHSM_LIBRARY}) is required here but is not installed"
    );
    if !found {
        eprintln!("skipping: SoftHSM2 is not installed");
    }
    found
}

/// A SoftHSM token of one test: its own token directory and `SOFTHSM2_CONF`, so tests share
/// nothing. User PIN 1234 (in `pkcs11.pin` beside keyd.toml, mode 0600), SO PIN 5678.
pub struct SoftHsm {
    pub conf: PathBuf,
    pub label: String,
}

impl SoftHsm {
    pub fn init(dir: &Path, label: &str) -> SoftHsm {
        use std::os::unix::fs::PermissionsExt;
        let tokens = dir.join("softhsm/tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm/softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm {
            conf,
            label: label.into(),
        };
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", "1234", "--so-pin", "5678"])
            .env("SOFTHSM2_CONF", &hsm.conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "softhsm2-util: {out:?}");
        let pin = dir.join("pkcs11.pin");
        std::fs::write(&pin, "1234\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        hsm
    }

    /// Runs OpenSC's pkcs11-tool on this token, logged in; (success, stdout + stderr).
    pub fn tool(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("pkcs11-tool")
            .args(["--module", SOFTHSM_LIBRARY, "--token-label", &self.label])
            .args(["--login", "--pin", "1234"])
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("pkcs11-tool runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Every file of the token, to prove a request changed nothing.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        snapshot(&self.conf.with_file_name("tokens"))
    }
}

/// The `[store]` of a keyd that keeps every key on the SoftHSM token `label`.
pub fn pkcs11_store(label: &str) -> String {
    format!(
        "[store]\nbackend = \"pkcs11\"\n[store.pkcs11]\nlibrary = \"{SOFTHSM_LIBRARY}\"\ntoken_label = \"{label}\"\npin_file = \"pkcs11.pin\"\n"
    )
}

/// The config every test starts from; `extra` is appended (principals, limits).
pub fn config(extra: &str) -> String {
    format!("socket = \"run/keyd.sock\"\nstate_dir = \"state\"\n{extra}")
}

pub const ALL_KEYS: &str = "[[principal]]\nuid = \"self\"\nkeys = [\"*\"]\nexport = [\"*\"]\n";

impl Keyd {
    /// keyd on the suite's backend (see [`backend`]) with `extra` appended to its config.
    pub fn start(extra: &str) -> Keyd {
        if backend() == "pkcs11" {
            return Keyd::start_with_token(&format!("{extra}{}", pkcs11_store("keyd-test")));
        }
        if backend() == "tpm" {
            // A TPM serves one command at a time, so 32 busy clients queue up: allow for the
            // connections waiting behind them.
            let store = if extra.contains("[limits]") {
                "[store]\nbackend = \"tpm\"\n"
            } else {
                "[store]\nbackend = \"tpm\"\n[limits]\nmax_connections_per_uid = 128\n"
            };
            let mut k =
                Keyd::with_swtpm(extra, store).expect("EDGESEC_TEST_BACKEND=tpm needs swtpm");
            k.spawn().expect("keyd starts");
            return k;
        }
        let mut k = Keyd::prepare(extra, None);
        k.spawn().expect("keyd starts");
        k
    }

    /// keyd with a fresh SoftHSM token labelled `keyd-test`; `extra` holds the `[store]`.
    pub fn start_with_token(extra: &str) -> Keyd {
        let mut k = Keyd::prepare(extra, Some("keyd-test"));
        k.spawn().expect("keyd starts");
        k
    }

    /// keyd's directory and config with its own swtpm, not started: `store` (a `[store]`
    /// section, may be empty) and a `[tpm]` section naming the swtpm follow `extra`. `None`
    /// when swtpm is not installed (outside CI).
    pub fn with_swtpm(extra: &str, store: &str) -> Option<Keyd> {
        let mut k = Keyd::prepare("", None);
        let swtpm = edgesec_keys::tpm::testing::Swtpm::start(&k.dir.path().join("tpmstate"))?;
        let text = format!("{extra}{store}[tpm]\ntcti = \"{}\"\n", swtpm.tcti());
        std::fs::write(k.dir.path().join("keyd.toml"), config(&text)).unwrap();
        k.swtpm = Some(swtpm);
        Some(k)
    }

    /// keyd's directory and config, not started; with a SoftHSM token labelled `token`.
    pub fn prepare(extra: &str, token: Option<&str>) -> Keyd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keyd.toml"), config(extra)).unwrap();
        Keyd {
            client: KeydClient::new(dir.path().join("run/keyd.sock")),
            softhsm: token.map(|label| SoftHsm::init(dir.path(), label)),
            swtpm: None,
            dir,
            child: None,
        }
    }

    /// Every file keyd keeps keys in: the soft store (its master key and key files, not the
    /// rest of the state dir, such as the measurement log) and the token.
    pub fn store_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = snapshot(&self.state().join("keys"));
        if let Ok(master) = std::fs::read(self.state().join("master.key")) {
            files.push((self.state().join("master.key"), master));
        }
        if let Some(h) = &self.softhsm {
            files.extend(h.snapshot());
        }
        files
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/keyd.sock")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts keyd and waits for its socket. On failure returns the exit status and stderr.
    pub fn spawn(&mut self) -> Result<(), (Option<i32>, String)> {
        self.spawn_bin(Path::new(env!("CARGO_BIN_EXE_edgesec-keyd")))
    }

    /// As [`Keyd::spawn`], running the keyd binary at `bin`.
    pub fn spawn_bin(&mut self, bin: &Path) -> Result<(), (Option<i32>, String)> {
        let _ = std::fs::remove_file(self.socket());
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(self.dir.path().join("keyd.toml"))
            .env("EDGESEC_LOG", "debug")
            .envs(
                self.softhsm
                    .as_ref()
                    .map(|h| ("SOFTHSM2_CONF", h.conf.clone())),
            )
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
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue; // not there (a store that is not used)
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.ends_with("measure") {
                continue; // the measurement log grows with each new client, by design
            }
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
