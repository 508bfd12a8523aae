//! Management API types (IoT Edge `managementVersion_*` shapes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One environment variable, as IoT Edge sends them: `{"key": .., "value": ..}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

/// `config` of a module spec: type-specific settings plus environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleConfig {
    /// For `process` modules see [`ProcessSettings`]; for `docker` modules the IoT Edge docker
    /// settings (`image`, `createOptions`, ...).
    #[serde(default)]
    pub settings: serde_json::Value,
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

/// Body of `POST /modules`, `PUT /modules/{name}` and `POST /modules/{name}/prepareupdate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub module_type: String,
    #[serde(
        rename = "imagePullPolicy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_pull_policy: Option<String>,
    pub config: ModuleConfig,
}

/// Settings of a module of type `process`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSettings {
    /// An absolute path, a path relative to `workingDir`, or a name searched in `PATH` (and
    /// next to the edgesecd executable, for the binaries of this workspace).
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// A user name or numeric uid to run as (edgesecd must be root to use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    #[serde(rename = "exitTime")]
    pub exit_time: String,
    #[serde(rename = "statusCode")]
    pub status_code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    /// `running`, `stopped`, `failed`, `dead` or `unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(rename = "startTime", default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(
        rename = "exitStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exit_status: Option<ExitStatus>,
    #[serde(rename = "runtimeStatus")]
    pub runtime_status: RuntimeStatus,
}

/// One module as the management and workload APIs report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleDetails {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub module_type: String,
    pub config: ModuleConfig,
    pub status: Status,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleList {
    pub modules: Vec<ModuleDetails>,
}

/// Body of `POST /identities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySpec {
    #[serde(rename = "moduleId")]
    pub module_id: String,
    #[serde(rename = "managedBy", default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "moduleId")]
    pub module_id: String,
    #[serde(rename = "managedBy")]
    pub managed_by: String,
    #[serde(rename = "generationId")]
    pub generation_id: String,
    #[serde(rename = "authType")]
    pub auth_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityList {
    pub identities: Vec<Identity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningInfo {
    #[serde(rename = "type")]
    pub source: String,
    #[serde(rename = "dynamicReprovisioning")]
    pub dynamic_reprovisioning: bool,
    #[serde(rename = "alwaysReprovisionOnStartup")]
    pub always_reprovision_on_startup: bool,
}

/// `GET /systeminfo`. Field names as IoT Edge spells them (a mix of cases).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    #[serde(rename = "osType")]
    pub os_type: String,
    pub architecture: String,
    pub version: String,
    pub kernel_release: String,
    pub kernel_version: String,
    pub operating_system: Option<String>,
    pub operating_system_version: Option<String>,
    pub cpus: usize,
    pub total_memory: u64,
    pub virtualized: String,
    pub provisioning: ProvisioningInfo,
    /// edgesec's own additions, kept apart from IoT Edge's keys.
    #[serde(flatten)]
    pub additional: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub available_space: u64,
    pub total_space: u64,
    pub file_system: String,
    pub file_type: String,
}

/// `GET /systeminfo/resources`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemResources {
    pub host_uptime: u64,
    pub process_uptime: u64,
    pub used_cpu: f64,
    pub used_ram: u64,
    pub total_ram: u64,
    pub disks: Vec<Disk>,
    pub docker_stats: String,
}

/// `GET /status`: edgesec's own addition to the management API (IoT Edge has no such route),
/// for `edgesec system status` and `edgesec check`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub uptime_secs: u64,
    pub key_store: KeyStoreStatus,
    pub device: DeviceStatus,
    pub ca: CaChainStatus,
    pub modules: ModuleCounts,
}

/// The key service as the daemon sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStoreStatus {
    /// `soft`, `pkcs11`, `tpm`; absent when keyd did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default)]
    pub hardware_backed: bool,
    /// What the backend can do: `key-pair:ec-p256`, `sign:ecdsa-sha256`,
    /// `symmetric:hmac-sha256`, `derive`, `aead`, `import`, ...
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// For a routed store, each part and the key ids it holds: `tpm (hardware-backed): *`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Why keyd could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub id: String,
    pub hub: String,
    /// Provisioning source: `local`, `manual`, `dps`.
    pub source: String,
    /// How the device authenticates to the cloud: `sas`, `x509`, `tpm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// RFC 3339 time of the DPS assignment in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_at: Option<String>,
    /// Running from the cached DPS assignment rather than one made at this boot.
    #[serde(default)]
    pub from_cache: bool,
    /// `on-error`, `always-on-startup` or `dynamic`, for a hub-connected device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovisioning: Option<String>,
}

/// One certificate of the CA chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCert {
    pub subject: String,
    /// RFC 3339.
    pub not_after: String,
    pub days_left: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaChainStatus {
    /// `quickstart`, `provided` or `issued`.
    pub mode: String,
    /// A chain is loaded (it may still be expired).
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_subject: Option<String>,
    /// RFC 3339 not-after of the edge CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Whole days until the earliest expiry in the chain (negative once expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// The edge CA first, then each issuer up to the root where known.
    #[serde(default)]
    pub chain: Vec<ChainCert>,
    /// Why the clock is not trusted, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCounts {
    pub total: usize,
    pub running: usize,
    pub failed: usize,
    pub stopped: usize,
}
