//! The files the IoT Edge fixtures (tests/fixtures/aziot/) refer to, and their secrets.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use edgesecd::config::Config;

use super::edgesec_bin;

pub const CS_KEY: &str = "bGluZTMtZ2F0ZXdheS1zYXMta2V5LW5vdC1yZWFsLTEyMzQ=";
pub const SAS_KEY: &str = "cHJlc3M3LWRldmljZS1rZXktbm90LXJlYWwtMDAwMDAwMDA=";
pub const DPS_KEY: &str = "c2FtcGxlLWtleS1ub3QtcmVhbC1zYW1wbGUta2V5LW5vdC1yZWFs";
pub const RAW_KEY: &[u8; 32] = b"packer2 raw key bytes, not real\x01";

pub fn ca(cn: &str) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let k = rcgen::KeyPair::generate().unwrap();
    (p.self_signed(&k).unwrap().pem(), k.serialize_pem())
}

pub fn leaf(cn: &str) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let k = rcgen::KeyPair::generate().unwrap();
    (p.self_signed(&k).unwrap().pem(), k.serialize_pem())
}

/// The files the fixtures refer to, under `dir`.
pub fn files(dir: &Path) {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::create_dir_all(dir.join("private")).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let put = |rel: &str, data: &[u8]| std::fs::write(dir.join(rel), data).unwrap();
    put("certs/plant-root-ca.pem", ca("plant1 root CA").0.as_bytes());
    let (c, k) = ca("press7 edge CA");
    put("certs/edge-ca.pem", c.as_bytes());
    put("private/edge-ca.key.pem", k.as_bytes());
    let (c, k) = ca("plant1 issuing CA");
    put("certs/plant-ca.pem", c.as_bytes());
    put("private/plant-ca.key.pem", k.as_bytes());
    for name in ["robot12", "kiosk-19"] {
        let (c, k) = leaf(name);
        put(&format!("certs/{name}.pem"), c.as_bytes());
        put(&format!("private/{name}.key.pem"), k.as_bytes());
    }
    put("private/device-id", RAW_KEY);
    put(
        "private/group-derived-key",
        format!("{DPS_KEY}\n").as_bytes(),
    );
    put(
        "dps-payload.json",
        br#"{"modelId":"dtmi:plant1:sensorhub;1"}"#,
    );
}

pub struct Import {
    pub out: Output,
    pub config: PathBuf,
    pub text: String,
    pub fixture: String,
}

impl Import {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn load(&self) -> Config {
        assert!(self.out.status.success(), "{}", self.stderr());
        Config::load(&self.config)
            .unwrap_or_else(|e| panic!("converted config does not load: {e}\n{}", self.text))
    }

    /// The 1-based line of the first line of the fixture that starts with `prefix`.
    pub fn line(&self, prefix: &str) -> usize {
        self.fixture
            .lines()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}"))
            + 1
    }

    /// Asserts the report names `key` at its line as not carried over, for `why`.
    pub fn dropped(&self, key: &str, line_prefix: &str, why: &str) {
        let want = format!("  {key} (line {}): ", self.line(line_prefix));
        let err = self.stderr();
        let l = err
            .lines()
            .find(|l| l.starts_with(&want))
            .unwrap_or_else(|| panic!("{want} in\n{err}"));
        assert!(l.contains(why), "{l}");
        assert!(
            self.text.contains(&format!("# {want}")),
            "the config names it too:\n{}",
            self.text
        );
    }
}

/// Imports a fixture (with `@DIR@` set to `dir`) into `dir/<name>/config.toml`.
pub fn import(dir: &Path, name: &str, keyd: &Path, extra: &[&str]) -> Import {
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/aziot")
            .join(name),
    )
    .unwrap()
    .replace("@DIR@", &dir.display().to_string());
    let src = dir.join(name);
    std::fs::write(&src, &fixture).unwrap();
    let out_dir = dir.join(name.trim_end_matches(".toml"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let config = out_dir.join("config.toml");
    let out = Command::new(edgesec_bin())
        .args(["config", "import"])
        .arg(&src)
        .arg("-o")
        .arg(&config)
        .arg("--keyd-socket")
        .arg(keyd)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    Import {
        out,
        config,
        text,
        fixture,
    }
}

pub fn key_file(path: &Path) -> Vec<u8> {
    assert_eq!(
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(path).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

pub fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
