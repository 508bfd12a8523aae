//! The config file as written, and its validation into [`super::Config`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgesec_config::{ConfigError, resolve};
use edgesec_pki::config::{EdgeCaConfig, ModuleCertConfig, PemFile, PkiConfig};
use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    hostname: Option<String>,
    state_dir: PathBuf,
    provisioning: super::provisioning::RawProvisioning,
    keyd: RawKeyd,
    #[serde(default)]
    management: RawManagement,
    #[serde(default)]
    workload: RawWorkload,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    watchdog: RawWatchdog,
    #[serde(default)]
    edge_ca: EdgeCaConfig,
    #[serde(default)]
    module_certs: ModuleCertConfig,
    #[serde(default)]
    trust_bundle_cert: Option<PemFile>,
    #[serde(default)]
    audit_log: Option<PathBuf>,
    #[serde(default)]
    allow_elevated_docker_permissions: Option<bool>,
    #[serde(default)]
    moby_runtime: Option<super::moby::RawMoby>,
    #[serde(default)]
    auto_reprovisioning_mode: Option<String>,
    #[serde(default)]
    cloud_timeout_sec: Option<u64>,
    #[serde(default)]
    cloud_retries: Option<u32>,
    #[serde(default)]
    cloud: super::cloud::RawCloud,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyd {
    socket: PathBuf,
    #[serde(default)]
    config: Option<PathBuf>,
    #[serde(default)]
    binary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawManagement {
    socket: PathBuf,
    admin_uids: Option<Vec<AdminUid>>,
    admin_gid: Option<u32>,
    max_connections_per_uid: usize,
}

impl Default for RawManagement {
    fn default() -> Self {
        RawManagement {
            socket: "run/mgmt.sock".into(),
            admin_uids: None,
            admin_gid: None,
            max_connections_per_uid: 50,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AdminUid {
    Number(u32),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWorkload {
    socket: PathBuf,
    module_socket_dir: PathBuf,
    max_connections_per_uid: usize,
}

impl Default for RawWorkload {
    fn default() -> Self {
        RawWorkload {
            socket: "run/workload.sock".into(),
            module_socket_dir: "run/mnt".into(),
            max_connections_per_uid: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAgent {
    name: String,
    #[serde(rename = "type")]
    agent_type: String,
    command: String,
    args: Vec<String>,
    deployment: PathBuf,
    env: BTreeMap<String, String>,
    /// `type = "docker"`: the image, its createOptions and pull policy.
    image: Option<String>,
    create_options: Option<toml::Table>,
    image_pull_policy: Option<String>,
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            name: "edgeAgent".into(),
            agent_type: "process".into(),
            command: "edgesec-agent".into(),
            args: Vec::new(),
            deployment: "deployment.json".into(),
            env: BTreeMap::new(),
            image: None,
            create_options: None,
            image_pull_policy: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatchdog {
    interval_secs: u64,
    max_backoff_secs: u64,
}

impl Default for RawWatchdog {
    fn default() -> Self {
        RawWatchdog {
            interval_secs: 5,
            max_backoff_secs: 60,
        }
    }
}

/// Parses `HostName=..;DeviceId=..;SharedAccessKey=..` (order free, other keys refused).
pub(super) fn parse_connection_string(
    file: &Path,
    s: &str,
) -> Result<(String, String, String), ConfigError> {
    let key = "provisioning.connection_string";
    let (mut host, mut device, mut sak) = (None, None, None);
    for part in s.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            ConfigError::invalid(file, key, format!("{part:?} is not Name=value"))
        })?;
        let slot = match k.trim() {
            "HostName" => &mut host,
            "DeviceId" => &mut device,
            "SharedAccessKey" => &mut sak,
            other => {
                return Err(ConfigError::invalid(
                    file,
                    key,
                    format!(
                        "unsupported part {other:?}; expected HostName, DeviceId and SharedAccessKey"
                    ),
                ));
            }
        };
        *slot = Some(v.trim().to_owned());
    }
    match (host, device, sak) {
        (Some(h), Some(d), Some(k)) if !h.is_empty() && !d.is_empty() && !k.is_empty() => {
            Ok((h, d, k))
        }
        _ => Err(ConfigError::invalid(
            file,
            key,
            "needs HostName, DeviceId and SharedAccessKey",
        )),
    }
}

/// Device ids as IoT Hub allows them: up to 128 ASCII letters, digits and `-.%_*?!(),:=@$'+`.
pub(super) fn check_device_id(file: &Path, id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.%_*?!(),:=@$'+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            file,
            "provisioning.device_id",
            format!("{id:?} is not a valid device id"),
        ))
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

impl RawConfig {
    pub(super) fn validate(self, file: &Path) -> Result<Config, ConfigError> {
        let state_dir = resolve(file, &self.state_dir);
        let mut provisioning = self.provisioning.validate(file)?;
        let (reprovisioning, cloud) = super::cloud::validate(
            file,
            super::cloud::TopLevel {
                auto_reprovisioning_mode: self.auto_reprovisioning_mode,
                cloud_timeout_sec: self.cloud_timeout_sec,
                cloud_retries: self.cloud_retries,
            },
            self.cloud,
        )?;
        provisioning.reprovisioning = reprovisioning;

        let hostname = self.hostname.unwrap_or_else(system_hostname);
        if hostname.is_empty()
            || hostname.len() > 253
            || !hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(ConfigError::invalid(
                file,
                "hostname",
                format!("{hostname:?} is not a valid host name"),
            ));
        }

        let m = self.management;
        // SAFETY: geteuid has no preconditions.
        let own_uid = unsafe { libc::geteuid() };
        let admin_uids = match m.admin_uids {
            None => {
                let mut v = vec![0, own_uid];
                v.dedup();
                v
            }
            Some(list) => list
                .into_iter()
                .map(|u| match u {
                    AdminUid::Number(n) => Ok(n),
                    AdminUid::Name(s) if s == "self" => Ok(own_uid),
                    AdminUid::Name(s) => Err(ConfigError::invalid(
                        file,
                        "management.admin_uids",
                        format!("expected numbers or \"self\", found {s:?}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        for (key, n) in [
            (
                "management.max_connections_per_uid",
                m.max_connections_per_uid,
            ),
            (
                "workload.max_connections_per_uid",
                self.workload.max_connections_per_uid,
            ),
        ] {
            if n == 0 || n > 10_000 {
                return Err(ConfigError::invalid(
                    file,
                    key,
                    "must be between 1 and 10000",
                ));
            }
        }

        let a = self.agent;
        let agent_is_container = match a.agent_type.as_str() {
            "process" => false,
            "docker" => true,
            other => {
                return Err(ConfigError::invalid(
                    file,
                    "agent.type",
                    format!("{other:?} is not a module type; use \"process\" or \"docker\""),
                ));
            }
        };
        if agent_is_container && a.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            return Err(ConfigError::invalid(
                file,
                "agent.image",
                "required for type = \"docker\"",
            ));
        }
        if let Some(p) = &a.image_pull_policy
            && edgesec_runtime::PullPolicy::parse(p).is_none()
        {
            return Err(ConfigError::invalid(
                file,
                "agent.image_pull_policy",
                format!("{p:?}: expected \"on-create\" or \"never\""),
            ));
        }
        let agent_create_options = super::moby::create_options_json(file, a.create_options)?;
        let moby = super::moby::validate(
            file,
            self.moby_runtime,
            self.allow_elevated_docker_permissions,
            agent_is_container,
        )?;
        edgesec_runtime::validate_module_name(&a.name)
            .map_err(|e| ConfigError::invalid(file, "agent.name", e))?;
        if a.command.is_empty() {
            return Err(ConfigError::invalid(
                file,
                "agent.command",
                "must not be empty",
            ));
        }
        let w = self.watchdog;
        if w.interval_secs == 0
            || w.interval_secs > 3600
            || w.max_backoff_secs == 0
            || w.max_backoff_secs > 86_400
        {
            return Err(ConfigError::invalid(
                file,
                "watchdog",
                "interval_secs must be 1..=3600 and max_backoff_secs 1..=86400",
            ));
        }

        let mut pki = PkiConfig {
            edge_ca: self.edge_ca,
            module_certs: self.module_certs,
            trust_bundle_cert: self.trust_bundle_cert,
        };
        pki.resolve_relative(file.parent().unwrap_or(Path::new(".")));
        pki.validate()
            .map_err(|e| ConfigError::invalid(file, "edge_ca", e.to_string()))?;

        Ok(Config {
            file: file.to_owned(),
            hostname,
            audit_log: self
                .audit_log
                .map(|p| resolve(file, &p))
                .unwrap_or_else(|| state_dir.join("audit.log")),
            state_dir,
            provisioning,
            keyd: KeydLink {
                socket: resolve(file, &self.keyd.socket),
                start_with_config: self.keyd.config.map(|c| resolve(file, &c)),
                binary: find_program(file, self.keyd.binary.as_deref().unwrap_or("edgesec-keyd")),
            },
            management: ManagementConfig {
                socket: resolve(file, &m.socket),
                admin_uids,
                admin_gid: m.admin_gid,
                max_connections_per_uid: m.max_connections_per_uid,
            },
            workload: WorkloadConfig {
                socket: resolve(file, &self.workload.socket),
                module_socket_dir: resolve(file, &self.workload.module_socket_dir),
                max_connections_per_uid: self.workload.max_connections_per_uid,
            },
            agent: AgentConfig {
                name: a.name,
                command: find_program(file, &a.command),
                args: a.args,
                deployment: resolve(file, &a.deployment),
                env: a.env,
                agent_type: a.agent_type,
                image: a.image,
                create_options: agent_create_options,
                image_pull_policy: a.image_pull_policy,
            },
            moby,
            cloud,
            watchdog: WatchdogConfig {
                interval: Duration::from_secs(w.interval_secs),
                max_backoff: Duration::from_secs(w.max_backoff_secs),
            },
            pki,
        })
    }
}
