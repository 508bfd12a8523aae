//! What the SDK tests share: finding the daemon binaries and the SDKs, and the skip rule.
//!
//! Skip rule: a missing SDK (venv, node_modules, node) skips the test with a message, except
//! when `CI=true`, where it fails. Missing daemon binaries always fail: `cargo build --workspace`
//! (or `cargo test --workspace`) makes them.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod device;
pub mod mqtt;
pub mod sas;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hub, device and gateway names the test device is configured with.
pub const HUB: &str = "sdk-test-hub.azure-devices.net";
pub const DEVICE: &str = "sdk-test-device";
/// The SDKs connect to `IOTEDGE_GATEWAYHOSTNAME`, which edgesecd sets to its `hostname`.
pub const GATEWAY: &str = "localhost";

/// The pinned SDK versions (`.ci/run` installs these).
pub const PY_SDK_VERSION: &str = "2.14.0";
pub const NODE_SDK_VERSION: &str = "1.18.4";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `target/debug`: this test executable is `target/debug/deps/<name>-<hash>`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_owned()
}

/// `target/debug/edgesecd`, after checking it and the binaries it starts are there.
pub fn edgesecd() -> PathBuf {
    let dir = bin_dir();
    for name in ["edgesecd", "edgesec-keyd", "edgesec-agent"] {
        let p = dir.join(name);
        assert!(
            p.is_file(),
            "{} is missing: these tests start the real daemon; build it first with `cargo build --workspace` \
             (`cargo test --workspace` builds it too)",
            p.display()
        );
    }
    dir.join("edgesecd")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports a missing prerequisite: in CI a failure, elsewhere a skip (returns `None`).
pub fn unavailable<T>(what: &str, setup: &str) -> Option<T> {
    if ci() {
        panic!("{what}; CI=true, so this is a failure. Set it up with: {setup}");
    }
    eprintln!("SKIPPED: {what}. To run this test: {setup}");
    None
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(default))
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The Python SDK: the venv's interpreter.
pub struct PythonSdk {
    /// `<venv>/bin/python`. It is a symlink to the real interpreter binary: the daemon measures
    /// the file it resolves to, and the kernel reports that same file as `/proc/<pid>/exe`, so
    /// attestation matches; started by this path, Python finds the venv's `pyvenv.cfg`.
    pub python: PathBuf,
}

pub fn python_sdk() -> Option<PythonSdk> {
    let venv = env_path("EDGESEC_SDK_VENV", "target/sdk-venv");
    let setup = format!(
        "python3 -m venv {v} && {v}/bin/pip install azure-iot-device=={PY_SDK_VERSION} (or set EDGESEC_SDK_VENV)",
        v = venv.display()
    );
    let python = venv.join("bin/python");
    if !python.exists() {
        return unavailable(&format!("no Python venv at {}", venv.display()), &setup);
    }
    let real = python.canonicalize().expect("resolve the venv's python");
    assert!(
        is_elf(&real),
        "{} resolves to {}, which is not an executable binary (a shim or script?): the daemon attests modules \
         by the executable the kernel reports, so the module command must be the real interpreter",
        python.display(),
        real.display()
    );
    let version = Command::new(&python).args(["-c", "import azure.iot.device; from importlib.metadata import version; print(version('azure-iot-device'))"]).output();
    match version {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            assert_eq!(
                v,
                PY_SDK_VERSION,
                "the venv at {} has azure-iot-device {v}; the tests pin {PY_SDK_VERSION}",
                venv.display()
            );
            Some(PythonSdk { python })
        }
        _ => unavailable(
            &format!("azure-iot-device is not installed in {}", venv.display()),
            &setup,
        ),
    }
}

/// The Node SDK: the real `node` binary and the node_modules holding the SDK.
pub struct NodeSdk {
    pub node: PathBuf,
    pub node_modules: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn node_sdk() -> Option<NodeSdk> {
    let dir = env_path("EDGESEC_SDK_NODE", "target/sdk-node");
    let setup = format!(
        "npm install --prefix {} azure-iot-device@{NODE_SDK_VERSION} azure-iot-device-mqtt@1.16.4 (or set EDGESEC_SDK_NODE)",
        dir.display()
    );
    let node = match std::env::var_os("EDGESEC_NODE")
        .map(PathBuf::from)
        .or_else(|| find_in_path("node"))
    {
        Some(n) => n.canonicalize().expect("resolve node"),
        None => {
            return unavailable(
                "no `node` in PATH (or EDGESEC_NODE)",
                "apt-get install nodejs npm",
            );
        }
    };
    assert!(
        is_elf(&node),
        "{} is not an executable binary; the module command must be the real node",
        node.display()
    );
    let node_modules = dir.join("node_modules");
    let package = node_modules.join("azure-iot-device/package.json");
    let Ok(text) = std::fs::read_to_string(&package) else {
        return unavailable(
            &format!(
                "azure-iot-device is not installed in {}",
                node_modules.display()
            ),
            &setup,
        );
    };
    if !node_modules
        .join("azure-iot-device-mqtt/package.json")
        .is_file()
    {
        return unavailable(
            &format!(
                "azure-iot-device-mqtt is not installed in {}",
                node_modules.display()
            ),
            &setup,
        );
    }
    let v: serde_json::Value = serde_json::from_str(&text).expect("package.json");
    assert_eq!(
        v["version"],
        NODE_SDK_VERSION,
        "{} has another version than the pinned one",
        package.display()
    );
    Some(NodeSdk { node, node_modules })
}
