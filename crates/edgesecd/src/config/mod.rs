//! `config.toml` of edgesecd. Relative paths resolve against the file's own directory, and a
//! binary named without a path (the agent, keyd) is looked up next to the running edgesecd
//! first, so a copied quickstart directory runs as it is. See `docs/config.md`.

mod cloud;
mod moby;
mod provisioning;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgesec_config::ConfigError;
use edgesec_pki::config::PkiConfig;

pub use cloud::{CloudSettings, ReprovisionMode};
pub use moby::MobyConfig;
pub use provisioning::{DeviceAuth, DpsAttestation, ProvisioningSource};

/// The validated config: absolute paths, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub hostname: String,
    pub state_dir: PathBuf,
    pub provisioning: Provisioning,
    pub keyd: KeydLink,
    pub management: ManagementConfig,
    pub workload: WorkloadConfig,
    pub agent: AgentConfig,
    pub watchdog: WatchdogConfig,
    pub pki: PkiConfig,
    pub audit_log: PathBuf,
    /// The container engine (`[moby_runtime]`), when container modules are used.
    pub moby: Option<MobyConfig>,
    /// How DPS and IoT Hub are reached.
    pub cloud: CloudSettings,
}

/// Who this device is.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub source: ProvisioningSource,
    pub device_id: String,
    pub iothub_hostname: String,
    /// A manual connection string's key, imported into keyd at boot. Held only as long as
    /// needed; the key store keeps it from then on.
    pub shared_access_key: Option<zeroize::Zeroizing<String>>,
    /// How the device proves who it is.
    pub auth: DeviceAuth,
    /// DPS: a JSON file sent with the registration.
    pub dps_payload: Option<PathBuf>,
    /// When to provision again.
    pub reprovisioning: ReprovisionMode,
}

impl Provisioning {
    /// Whether the device has a hub (manual with a hub, or DPS), rather than standing alone.
    pub fn has_hub(&self) -> bool {
        self.source != ProvisioningSource::Local
    }
}

#[derive(Debug, Clone)]
pub struct KeydLink {
    pub socket: PathBuf,
    /// When set and keyd's socket is absent, edgesecd starts keyd with this config (quickstart).
    pub start_with_config: Option<PathBuf>,
    pub binary: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ManagementConfig {
    pub socket: PathBuf,
    /// uids that may read, start, stop, restart and fetch logs (besides the agent).
    pub admin_uids: Vec<u32>,
    pub admin_gid: Option<u32>,
    pub max_connections_per_uid: usize,
}

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub socket: PathBuf,
    pub module_socket_dir: PathBuf,
    pub max_connections_per_uid: usize,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub command: PathBuf,
    pub args: Vec<String>,
    pub deployment: PathBuf,
    pub env: BTreeMap<String, String>,
    /// `process` or `docker`.
    pub agent_type: String,
    /// For `docker`: the image, its createOptions (Docker JSON) and pull policy.
    pub image: Option<String>,
    pub create_options: serde_json::Map<String, serde_json::Value>,
    pub image_pull_policy: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct WatchdogConfig {
    pub interval: Duration,
    pub max_backoff: Duration,
}

impl Config {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = edgesec_config::load(file)?;
        raw.validate(file)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = edgesec_config::parse(file, text)?;
        raw.validate(file)
    }
}

/// Finds a program named in a config: a path (absolute, or relative to the config file) is taken
/// as it is; a bare name is looked up next to the running edgesecd first (the workspace's own
/// binaries), then in `PATH`. Unresolved names are returned as they are, for a clear error later.
pub fn find_program(config_file: &Path, name: &str) -> PathBuf {
    if name.contains('/') {
        return edgesec_config::resolve(config_file, Path::new(name));
    }
    let beside_us = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)));
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name));
    beside_us
        .into_iter()
        .chain(in_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}
