//! Helpers of the cloud tests (`cloud.rs`, `cloud_modules.rs`): the quickstart turned into a
//! cloud device of `edgesec-cloudsim`, files the test owns, and a boot that must fail.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_cloudsim::CloudSim;

use crate::common::*;

pub const QUICKSTART_PROVISIONING: &str =
    "[provisioning]\nsource = \"local\"\ndevice_id = \"quickstart-device\"\n";

/// A key as DPS and IoT Hub hand them out: 32 random-looking bytes, base64.
pub fn key_b64(seed: u8) -> String {
    STANDARD.encode(
        (0..32u8)
            .map(|i| i.wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

pub fn hmac_b64(key: &[u8], data: &[u8]) -> String {
    STANDARD.encode(aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        data,
    ))
}

/// Files the test owns (keys, certificates, the sim's CA), outside the daemon's directory.
pub struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    pub fn new(sim: &CloudSim) -> Files {
        let f = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("sim-ca.pem", &sim.server_ca_pem());
        f
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The quickstart config turned into a cloud one: `top` keys first, `provisioning` in
    /// place of the local one, the sim's CA trusted and quick polls and backoff.
    pub fn config(&self, base: String, top: &str, provisioning: &str) -> String {
        assert!(base.contains(QUICKSTART_PROVISIONING));
        format!(
            "{top}\ncloud_timeout_sec = 20\n{}\n[cloud]\ntrusted_ca_certs = [\"{}\"]\ndps_poll_interval_secs = 1\nretry_base_delay_ms = 100\n",
            base.replace(QUICKSTART_PROVISIONING, provisioning),
            self.path("sim-ca.pem").display()
        )
    }
}

pub fn dps_symmetric(sim: &CloudSim, reg: &str, key_file: &Path, extra: &str) -> String {
    format!(
        "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"{}\"\nid_scope = \"0ne00TEST1\"\n{extra}\n\
         [provisioning.attestation]\nmethod = \"symmetric_key\"\nregistration_id = \"{reg}\"\nsymmetric_key = \"{}\"\n",
        sim.endpoint(),
        key_file.display()
    )
}

pub fn quickstart_config() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/config.toml"),
    )
    .unwrap()
}

/// Runs edgesecd on `config` (a copy of the quickstart directory) where the boot must fail;
/// returns its exit code and messages.
pub fn failed_boot(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/keyd.toml"),
        dir.path().join("keyd.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::write(dir.path().join("deployment.json"), deployment(&[])).unwrap();
    let log = dir.path().join("edgesecd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgesecd"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("EDGESEC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::os::unix::net::UnixStream::connect(dir.path().join("run/mgmt.sock")).is_ok() {
            let _ = child.kill();
            panic!(
                "edgesecd started but should not have:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "edgesecd neither failed nor started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

pub fn device_status(edge: &Edge) -> serde_json::Value {
    let (code, body) = edge.mgmt("GET", &format!("/status?{V}"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["device"].clone()
}
