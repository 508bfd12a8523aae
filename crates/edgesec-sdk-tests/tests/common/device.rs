//! A test device: the real `edgesecd` (which starts keyd and edgesec-agent) on a copy of
//! `examples/quickstart/` in a temp dir, with a deployment file the test writes. Modules report
//! their outcome in `out/<module>.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgesec_api::mgmt_client::MgmtClient;
use edgesec_http::UdsClient;
use edgesec_keyd::client::KeydClient;
use serde_json::{Value, json};

use super::{DEVICE, GATEWAY, HUB};

/// The device key's id in keyd (module keys are derived from it).
const DEVICE_KEY_ID: &str = "edgesec/device-key";

pub struct Device {
    pub dir: tempfile::TempDir,
    pub out: PathBuf,
    config: toml::Table,
    daemon: Child,
    modules: serde_json::Map<String, Value>,
}

/// A `process` module that runs once (never restarted), with the given environment.
pub fn process_module(command: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let env: serde_json::Map<String, Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), json!({ "value": v })))
        .collect();
    json!({
        "type": "process",
        "status": "running",
        "restartPolicy": "never",
        "settings": { "command": command.display().to_string(), "args": args },
        "env": env,
    })
}

fn table<'a>(t: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    t.entry(key)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .expect("a table")
}

impl Device {
    /// Starts edgesecd on a fresh copy of the quickstart and waits for its sockets.
    pub async fn start() -> Device {
        Self::start_with(|_| {}).await
    }

    /// `start`, with the config changed by `edit` first (e.g. a `[moby_runtime]` table).
    pub async fn start_with(edit: impl FnOnce(&mut toml::Table)) -> Device {
        let edgesecd = super::edgesecd();
        let dir = tempfile::Builder::new()
            .prefix("edgesec-sdk-")
            .tempdir()
            .expect("temp dir");
        let quickstart = super::workspace().join("examples/quickstart");
        for entry in std::fs::read_dir(&quickstart).expect("examples/quickstart") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name()))
                    .expect("copy quickstart file");
            }
        }
        let path = dir.path().join("config.toml");
        let mut config: toml::Table = std::fs::read_to_string(&path)
            .expect("config.toml")
            .parse()
            .expect("quickstart config.toml");
        config.insert("hostname".into(), GATEWAY.into());
        let p = table(&mut config, "provisioning");
        p.insert("device_id".into(), DEVICE.into());
        p.insert("iothub_hostname".into(), HUB.into());
        table(&mut config, "agent").insert("deployment".into(), "deployment.json".into());
        edit(&mut config);
        std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config.toml");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out dir");
        let mut device = Device {
            out,
            config,
            daemon: spawn(&edgesecd, dir.path()),
            dir,
            modules: Default::default(),
        };
        device.write_deployment();
        device.wait_ready().await;
        device
    }

    /// A socket path from config (relative to the config's directory).
    fn socket(&self, section: &str) -> PathBuf {
        let rel = self
            .config
            .get(section)
            .and_then(|s| s.get("socket"))
            .and_then(|s| s.as_str())
            .unwrap_or("");
        assert!(
            !rel.is_empty(),
            "quickstart config has no [{section}] socket"
        );
        self.dir.path().join(rel)
    }

    fn audit_path(&self) -> PathBuf {
        match self.config.get("audit_log").and_then(|v| v.as_str()) {
            Some(p) => self.dir.path().join(p),
            None => self
                .dir
                .path()
                .join(self.config["state_dir"].as_str().expect("state_dir"))
                .join("audit.log"),
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let sockets = [
            self.socket("management"),
            self.socket("workload"),
            self.socket("keyd"),
        ];
        while !sockets
            .iter()
            .all(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
        {
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!("edgesecd exited at start ({status})\n{}", self.daemon_log());
            }
            assert!(
                Instant::now() < deadline,
                "edgesecd did not open its sockets within 60 s\n{}",
                self.daemon_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Adds a module to the deployment (written atomically; the agent picks it up within ~1 s).
    pub fn deploy(&mut self, name: &str, module: Value) {
        self.modules.insert(name.into(), module);
        self.write_deployment();
    }

    fn write_deployment(&self) {
        let path = self.dir.path().join("deployment.json");
        let tmp = path.with_extension("json.tmp");
        let doc = json!({ "schemaVersion": "1.0", "modules": self.modules });
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc).expect("json"))
            .expect("write deployment");
        std::fs::rename(&tmp, &path).expect("rename deployment");
    }

    /// The module's `out/<module>.json`, once it has written it. Fails (with the daemon's log and
    /// the module's output) if the module stops without one or takes longer than `secs`.
    pub async fn wait_result(&self, module: &str, secs: u64) -> Value {
        let file = self.out.join(format!("{module}.json"));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut stopped_since: Option<Instant> = None;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                return serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}: {text}", file.display()));
            }
            let status = self
                .mgmt()
                .get_module(module)
                .await
                .map(|m| m.status.runtime_status.status)
                .unwrap_or_default();
            if matches!(status.as_str(), "stopped" | "failed" | "dead") {
                let since = *stopped_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    panic!(
                        "module {module} is {status} and wrote no result\n{}",
                        self.diagnostics(module).await
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "module {module} wrote no result within {secs} s (status {status:?})\n{}",
                    self.diagnostics(module).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn mgmt(&self) -> MgmtClient {
        MgmtClient::new(self.socket("management"))
    }

    /// The module's output as edgesecd kept it, and the tail of the daemon's log.
    pub async fn diagnostics(&self, module: &str) -> String {
        let logs = match self.mgmt().logs(module, "tail=200").await {
            Ok(body) => decode_log_frames(&body),
            Err(e) => format!("(cannot read the module's logs: {e})"),
        };
        format!("--- module {module} output:\n{logs}\n{}", self.daemon_log())
    }

    pub fn daemon_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("edgesecd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- edgesecd log (last 60 lines):\n{}",
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }

    /// The module's generation id, as the management API reports it (this test is an admin).
    pub async fn generation_id(&self, module: &str) -> String {
        let ids = self
            .mgmt()
            .list_identities()
            .await
            .expect("GET /identities");
        ids.into_iter()
            .find(|i| i.module_id == module)
            .unwrap_or_else(|| panic!("no identity for {module}"))
            .generation_id
    }

    /// The module's SAS key, from keyd as the test's own uid (keyd's principal "self", which
    /// may export derived keys): the device key, derived over `<module>:<generation>:primary`.
    pub async fn module_key(&self, module: &str, generation: &str) -> Vec<u8> {
        let keyd = KeydClient::new(self.socket("keyd"));
        let device = keyd
            .load_key(DEVICE_KEY_ID)
            .await
            .expect("load the device key")
            .key_handle;
        let label = format!("{module}:{generation}:primary");
        let derived = keyd
            .derive(&device, label.as_bytes())
            .await
            .expect("derive the module key")
            .key_handle;
        keyd.export_derived(&derived)
            .await
            .expect("export the module key")
            .to_vec()
    }

    /// `GET /trust-bundle` on the shared workload socket (an open route).
    pub async fn trust_bundle(&self) -> String {
        let client = UdsClient::new(self.socket("workload"));
        let v: Value = client
            .get_json("/trust-bundle?api-version=2018-06-28")
            .await
            .expect("GET /trust-bundle");
        v["certificate"].as_str().expect("certificate").to_owned()
    }

    /// The audit records of a module's calls, once there are at least `min` of them (records
    /// are written in the background).
    pub async fn audit_of(&self, module: &str, min: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
            let records: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| {
                    r["socket"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("workload"))
                        && r["module"] == module
                })
                .collect();
            if records.len() >= min || Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn spawn(edgesecd: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("edgesecd.log")).expect("log file");
    Command::new(edgesecd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("NO_COLOR", "1")
        .env("EDGESEC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", edgesecd.display()))
}

/// Docker-style log frames (stream byte, 3 zero bytes, u32 BE length, payload) to text.
fn decode_log_frames(mut body: &[u8]) -> String {
    let mut out = String::new();
    while body.len() >= 8 {
        let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let end = (8 + len).min(body.len());
        out.push_str(&String::from_utf8_lossy(&body[8..end]));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        body = &body[end..];
    }
    out
}

impl Drop for Device {
    /// SIGTERM (edgesecd stops its modules and keyd), then SIGKILL after 15 s.
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
