//! How edgesecd talks to the cloud (DPS and IoT Hub), and when it provisions again.
//!
//! ```toml
//! auto_reprovisioning_mode = "on-error"   # or "always-on-startup", "dynamic"; IoT Edge's
//!                                         # OnErrorOnly, AlwaysOnStartup, Dynamic too
//! cloud_timeout_sec = 70                  # one request: connect, TLS, answer (IoT Edge's key)
//! cloud_retries = 1                       # retries of a failed request (IoT Edge's key)
//!
//! [cloud]                                 # all optional
//! trusted_ca_certs = ["/etc/edgesec/cloud-ca.pem"]  # trusted besides the system's roots
//! proxy = "http://proxy.lan:3128"         # else HTTPS_PROXY / https_proxy; NO_PROXY is honoured
//! dps_poll_interval_secs = 5              # DPS polls when the service gives no Retry-After
//! retry_base_delay_ms = 1000              # first backoff; doubles per retry, with jitter
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgesec_config::{ConfigError, resolve};
use serde::Deserialize;

/// When the device provisions again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReprovisionMode {
    /// At boot the cached assignment is used; DPS is asked only when there is none or the hub
    /// refuses the device at boot.
    #[default]
    OnError,
    /// DPS is asked at every boot (the cache is the fallback when it cannot be reached).
    AlwaysOnStartup,
    /// As on-error, and whenever the hub refuses the device (401) while running.
    Dynamic,
}

impl ReprovisionMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "on-error" | "OnErrorOnly" => ReprovisionMode::OnError,
            "always-on-startup" | "AlwaysOnStartup" => ReprovisionMode::AlwaysOnStartup,
            "dynamic" | "Dynamic" => ReprovisionMode::Dynamic,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReprovisionMode::OnError => "on-error",
            ReprovisionMode::AlwaysOnStartup => "always-on-startup",
            ReprovisionMode::Dynamic => "dynamic",
        }
    }
}

/// The validated cloud settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSettings {
    pub trusted_ca_certs: Vec<PathBuf>,
    /// `None`: from the environment.
    pub proxy: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_base_delay: Duration,
    pub dps_poll_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCloud {
    trusted_ca_certs: Vec<PathBuf>,
    proxy: Option<String>,
    dps_poll_interval_secs: u64,
    retry_base_delay_ms: u64,
}

impl Default for RawCloud {
    fn default() -> Self {
        RawCloud {
            trusted_ca_certs: Vec::new(),
            proxy: None,
            dps_poll_interval_secs: 5,
            retry_base_delay_ms: 1000,
        }
    }
}

/// The top-level keys IoT Edge also has.
pub(super) struct TopLevel {
    pub auto_reprovisioning_mode: Option<String>,
    pub cloud_timeout_sec: Option<u64>,
    pub cloud_retries: Option<u32>,
}

pub(super) fn validate(
    file: &Path,
    top: TopLevel,
    raw: RawCloud,
) -> Result<(ReprovisionMode, CloudSettings), ConfigError> {
    let mode = match top.auto_reprovisioning_mode.as_deref() {
        None => ReprovisionMode::default(),
        Some(s) => ReprovisionMode::parse(s).ok_or_else(|| {
            ConfigError::invalid(
                file,
                "auto_reprovisioning_mode",
                format!(
                    "{s:?}: expected \"on-error\", \"always-on-startup\" or \"dynamic\" (or IoT Edge's OnErrorOnly, AlwaysOnStartup, Dynamic)"
                ),
            )
        })?,
    };
    let timeout = top.cloud_timeout_sec.unwrap_or(70);
    if !(1..=600).contains(&timeout) {
        return Err(ConfigError::invalid(
            file,
            "cloud_timeout_sec",
            "must be between 1 and 600",
        ));
    }
    let retries = top.cloud_retries.unwrap_or(1);
    if retries > 20 {
        return Err(ConfigError::invalid(
            file,
            "cloud_retries",
            "must be at most 20",
        ));
    }
    if !(1..=300).contains(&raw.dps_poll_interval_secs) {
        return Err(ConfigError::invalid(
            file,
            "cloud.dps_poll_interval_secs",
            "must be between 1 and 300",
        ));
    }
    if !(1..=60_000).contains(&raw.retry_base_delay_ms) {
        return Err(ConfigError::invalid(
            file,
            "cloud.retry_base_delay_ms",
            "must be between 1 and 60000",
        ));
    }
    if let Some(p) = &raw.proxy
        && !p.starts_with("http://")
    {
        return Err(ConfigError::invalid(
            file,
            "cloud.proxy",
            "expected an http:// proxy URL (the TLS session to the cloud runs inside its tunnel)",
        ));
    }
    Ok((
        mode,
        CloudSettings {
            trusted_ca_certs: raw
                .trusted_ca_certs
                .iter()
                .map(|p| resolve(file, p))
                .collect(),
            proxy: raw.proxy,
            timeout: Duration::from_secs(timeout),
            retries,
            retry_base_delay: Duration::from_millis(raw.retry_base_delay_ms),
            dps_poll_interval: Duration::from_secs(raw.dps_poll_interval_secs),
        },
    ))
}
