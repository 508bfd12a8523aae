//! The `[provisioning]` variants beyond `local` and a manual connection string: manual SAS with
//! the key in keyd (or in a file imported at boot), manual X.509, and DPS with a symmetric
//! key (individual or group enrollment), X.509 or TPM attestation. The cloud side of each is
//! in [`crate::cloud`].
//!
//! ```toml
//! [provisioning]
//! source = "manual"                       # or "dps"
//! iothub_hostname = "hub.azure-devices.net"
//! device_id = "line3"
//! [provisioning.authentication]           # manual only
//! method = "sas"                          # or "x509"
//! device_id_pk = "keyd:edgesec/device-key"   # sas: a key id in keyd, or a file (base64 key)
//! # identity_cert = "/etc/edgesec/device-id.pem"  identity_pk = "keyd:edgesec/device-id"  (x509)
//!
//! # source = "dps": global_endpoint, id_scope, an optional payload, then
//! # payload = { uri = "file:///etc/edgesec/dps-payload.json" }   # JSON sent with the registration
//! [provisioning.attestation]
//! method = "symmetric_key"                # or "x509" or "tpm"
//! registration_id = "line3"               # required for symmetric_key and tpm; x509: the cert's CN
//! symmetric_key = "keyd:edgesec/dps-key"  # an individual enrollment's key, or instead
//! # enrollment_group_key = "keyd:edgesec/dps-group-key"  # a group's key: the device key is
//! #                                        # HMAC-SHA256(group key, registration_id), made in keyd
//! # x509 takes identity_cert/identity_pk as manual x509 does
//! ```

use std::path::{Path, PathBuf};

use edgesec_config::{ConfigError, resolve};
use edgesec_pki::config::KeySource;
use serde::Deserialize;

/// How the device proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAuth {
    /// `local` (a key made in keyd) or a manual connection string (its key imported at boot).
    SharedKey,
    /// Manual SAS: the device key is in keyd already, or in a file imported at boot.
    SasKey(KeySource),
    /// Manual X.509: an identity certificate and its key.
    X509 {
        identity_cert: PathBuf,
        identity_pk: KeySource,
    },
    /// The Device Provisioning Service.
    Dps {
        global_endpoint: String,
        id_scope: String,
        /// Required for symmetric keys; X.509 and TPM may leave it to the certificate's CN or
        /// the TPM's endorsement key.
        registration_id: Option<String>,
        attestation: DpsAttestation,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpsAttestation {
    /// An individual enrollment's key.
    SymmetricKey(KeySource),
    /// An enrollment group's key; keyd derives the device key from it over the registration id.
    GroupKey(KeySource),
    X509 {
        identity_cert: PathBuf,
        identity_pk: KeySource,
    },
    Tpm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Method {
    Sas,
    X509,
    SymmetricKey,
    Tpm,
}

/// `[provisioning.authentication]` and `[provisioning.attestation]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    method: Method,
    #[serde(default)]
    registration_id: Option<String>,
    #[serde(default)]
    device_id_pk: Option<KeySource>,
    #[serde(default)]
    symmetric_key: Option<KeySource>,
    #[serde(default)]
    enrollment_group_key: Option<KeySource>,
    #[serde(default)]
    identity_cert: Option<PathBuf>,
    #[serde(default)]
    identity_pk: Option<KeySource>,
}

fn resolve_key(file: &Path, k: KeySource) -> KeySource {
    match k {
        KeySource::File(p) => KeySource::File(resolve(file, &p)),
        other => other,
    }
}

impl RawAuth {
    fn only(&self, file: &Path, table: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        for (name, set) in [
            ("registration_id", self.registration_id.is_some()),
            ("device_id_pk", self.device_id_pk.is_some()),
            ("symmetric_key", self.symmetric_key.is_some()),
            ("enrollment_group_key", self.enrollment_group_key.is_some()),
            ("identity_cert", self.identity_cert.is_some()),
            ("identity_pk", self.identity_pk.is_some()),
        ] {
            if set && !allowed.contains(&name) {
                return Err(ConfigError::invalid(
                    file,
                    &format!("{table}.{name}"),
                    format!("not used with method = {:?}", self.method_name()),
                ));
            }
        }
        Ok(())
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            Method::Sas => "sas",
            Method::X509 => "x509",
            Method::SymmetricKey => "symmetric_key",
            Method::Tpm => "tpm",
        }
    }

    fn x509(self, file: &Path, table: &str) -> Result<(PathBuf, KeySource), ConfigError> {
        let need = |k: &str| {
            ConfigError::invalid(
                file,
                &format!("{table}.{k}"),
                "required with method = \"x509\"",
            )
        };
        let cert = self.identity_cert.ok_or_else(|| need("identity_cert"))?;
        let pk = self.identity_pk.ok_or_else(|| need("identity_pk"))?;
        Ok((resolve(file, &cert), resolve_key(file, pk)))
    }

    /// `[provisioning.authentication]` of `source = "manual"`.
    pub(super) fn manual(self, file: &Path) -> Result<DeviceAuth, ConfigError> {
        let t = "provisioning.authentication";
        match self.method {
            Method::Sas => {
                self.only(file, t, &["device_id_pk"])?;
                let k = self.device_id_pk.ok_or_else(|| {
                    ConfigError::invalid(
                        file,
                        &format!("{t}.device_id_pk"),
                        "required with method = \"sas\"",
                    )
                })?;
                Ok(DeviceAuth::SasKey(resolve_key(file, k)))
            }
            Method::X509 => {
                self.only(file, t, &["identity_cert", "identity_pk"])?;
                let (identity_cert, identity_pk) = self.x509(file, t)?;
                Ok(DeviceAuth::X509 {
                    identity_cert,
                    identity_pk,
                })
            }
            _ => Err(ConfigError::invalid(
                file,
                &format!("{t}.method"),
                format!(
                    "{:?} is for [provisioning.attestation] of source = \"dps\"; use \"sas\" or \"x509\"",
                    self.method_name()
                ),
            )),
        }
    }

    /// `[provisioning.attestation]` of `source = "dps"`; returns the registration id too.
    pub(super) fn dps(self, file: &Path) -> Result<(Option<String>, DpsAttestation), ConfigError> {
        let t = "provisioning.attestation";
        let reg = self.registration_id.clone().filter(|r| !r.is_empty());
        let reg_required =
            || ConfigError::invalid(file, &format!("{t}.registration_id"), "required");
        let attestation = match self.method {
            Method::SymmetricKey => {
                self.only(
                    file,
                    t,
                    &["registration_id", "symmetric_key", "enrollment_group_key"],
                )?;
                match (self.symmetric_key, self.enrollment_group_key) {
                    (Some(k), None) => DpsAttestation::SymmetricKey(resolve_key(file, k)),
                    (None, Some(k)) => DpsAttestation::GroupKey(resolve_key(file, k)),
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::invalid(
                            file,
                            &format!("{t}.enrollment_group_key"),
                            "give symmetric_key (individual enrollment) or enrollment_group_key (group enrollment), not both",
                        ));
                    }
                    (None, None) => {
                        return Err(ConfigError::invalid(
                            file,
                            &format!("{t}.symmetric_key"),
                            "required with method = \"symmetric_key\" (or enrollment_group_key for a group enrollment)",
                        ));
                    }
                }
            }
            Method::X509 => {
                self.only(
                    file,
                    t,
                    &["registration_id", "identity_cert", "identity_pk"],
                )?;
                let (identity_cert, identity_pk) = self.x509(file, t)?;
                DpsAttestation::X509 {
                    identity_cert,
                    identity_pk,
                }
            }
            Method::Tpm => {
                self.only(file, t, &["registration_id"])?;
                DpsAttestation::Tpm
            }
            Method::Sas => {
                return Err(ConfigError::invalid(
                    file,
                    &format!("{t}.method"),
                    "\"sas\" is for [provisioning.authentication] of source = \"manual\"; use \"symmetric_key\", \"x509\" or \"tpm\"",
                ));
            }
        };
        if !matches!(attestation, DpsAttestation::X509 { .. }) && reg.is_none() {
            return Err(reg_required());
        }
        Ok((reg, attestation))
    }
}

/// Checks a DPS endpoint and scope.
pub(super) fn check_dps(file: &Path, endpoint: &str, scope: &str) -> Result<(), ConfigError> {
    if !endpoint.starts_with("https://") || endpoint.len() <= "https://".len() {
        return Err(ConfigError::invalid(
            file,
            "provisioning.global_endpoint",
            format!("{endpoint:?} is not an https:// URL"),
        ));
    }
    if scope.is_empty() || !scope.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::invalid(
            file,
            "provisioning.id_scope",
            format!("{scope:?} is not an ID scope (letters and digits, like 0ne00000A0A)"),
        ));
    }
    Ok(())
}

/// Where the device identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningSource {
    /// A standalone device: the device id from config, its key made in keyd.
    Local,
    /// IoT Hub with a connection string (its key is imported into keyd), a SAS key or X.509.
    Manual,
    /// The Device Provisioning Service.
    Dps,
}

/// `[provisioning]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvisioning {
    source: ProvisioningSource,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    iothub_hostname: Option<String>,
    #[serde(default)]
    connection_string: Option<String>,
    #[serde(default)]
    global_endpoint: Option<String>,
    #[serde(default)]
    id_scope: Option<String>,
    #[serde(default)]
    authentication: Option<RawAuth>,
    #[serde(default)]
    attestation: Option<RawAuth>,
    /// DPS: `{ uri = "file:///...json" }`, sent with the registration.
    #[serde(default)]
    payload: Option<RawPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPayload {
    uri: String,
}

impl RawPayload {
    fn path(&self, file: &Path) -> Result<PathBuf, ConfigError> {
        let bad =
            |why: &str| ConfigError::invalid(file, "provisioning.payload.uri", why.to_owned());
        match self.uri.strip_prefix("file://") {
            Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
            Some(_) => Err(bad("a file URI needs an absolute path (file:///...)")),
            None if self.uri.contains("://") => {
                Err(bad("only file:// URIs and paths are supported"))
            }
            None if self.uri.is_empty() => Err(bad("empty")),
            None => Ok(resolve(file, Path::new(&self.uri))),
        }
    }
}

impl RawProvisioning {
    /// Refuses keys that belong to another source.
    fn refuse(&self, file: &Path, keys: &[&str]) -> Result<(), ConfigError> {
        for k in keys {
            let set = match *k {
                "device_id" => self.device_id.is_some(),
                "iothub_hostname" => self.iothub_hostname.is_some(),
                "connection_string" => self.connection_string.is_some(),
                "global_endpoint" => self.global_endpoint.is_some(),
                "id_scope" => self.id_scope.is_some(),
                "authentication" => self.authentication.is_some(),
                "attestation" => self.attestation.is_some(),
                "payload" => self.payload.is_some(),
                _ => false,
            };
            if set {
                let source = format!("{:?}", self.source).to_lowercase();
                return Err(ConfigError::invalid(
                    file,
                    &format!("provisioning.{k}"),
                    format!("not used with source = \"{source}\""),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn validate(self, file: &Path) -> Result<super::Provisioning, ConfigError> {
        use super::raw::{check_device_id, parse_connection_string};
        let required = |key: &str, source: &str| {
            ConfigError::invalid(
                file,
                &format!("provisioning.{key}"),
                format!("required for source = \"{source}\""),
            )
        };
        let dps_keys = ["global_endpoint", "id_scope", "attestation", "payload"];
        let p = match self.source {
            ProvisioningSource::Local => {
                self.refuse(file, &["connection_string", "authentication"])?;
                self.refuse(file, &dps_keys)?;
                let device_id = self
                    .device_id
                    .ok_or_else(|| required("device_id", "local"))?;
                check_device_id(file, &device_id)?;
                super::Provisioning {
                    source: self.source,
                    iothub_hostname: self.iothub_hostname.unwrap_or_else(|| "localhost".into()),
                    device_id,
                    shared_access_key: None,
                    auth: DeviceAuth::SharedKey,
                    dps_payload: None,
                    reprovisioning: Default::default(),
                }
            }
            ProvisioningSource::Manual if self.connection_string.is_some() => {
                self.refuse(file, &dps_keys)?;
                if self.device_id.is_some()
                    || self.iothub_hostname.is_some()
                    || self.authentication.is_some()
                {
                    return Err(ConfigError::invalid(
                        file,
                        "provisioning",
                        "with a connection_string, give neither device_id, iothub_hostname nor [provisioning.authentication]",
                    ));
                }
                let cs = self.connection_string.unwrap_or_default();
                let (host, device, key) = parse_connection_string(file, &cs)?;
                check_device_id(file, &device)?;
                super::Provisioning {
                    source: self.source,
                    device_id: device,
                    iothub_hostname: host,
                    shared_access_key: Some(key.into()),
                    auth: DeviceAuth::SharedKey,
                    dps_payload: None,
                    reprovisioning: Default::default(),
                }
            }
            ProvisioningSource::Manual => {
                self.refuse(file, &dps_keys)?;
                let auth = self.authentication.ok_or_else(|| {
                    ConfigError::invalid(
                        file,
                        "provisioning.connection_string",
                        "source = \"manual\" needs a connection_string, or iothub_hostname, device_id and [provisioning.authentication]",
                    )
                })?;
                let device_id = self
                    .device_id
                    .ok_or_else(|| required("device_id", "manual"))?;
                let hub = self
                    .iothub_hostname
                    .ok_or_else(|| required("iothub_hostname", "manual"))?;
                check_device_id(file, &device_id)?;
                super::Provisioning {
                    source: self.source,
                    device_id,
                    iothub_hostname: hub,
                    shared_access_key: None,
                    auth: auth.manual(file)?,
                    dps_payload: None,
                    reprovisioning: Default::default(),
                }
            }
            ProvisioningSource::Dps => {
                self.refuse(
                    file,
                    &[
                        "device_id",
                        "iothub_hostname",
                        "connection_string",
                        "authentication",
                    ],
                )?;
                let endpoint = self
                    .global_endpoint
                    .ok_or_else(|| required("global_endpoint", "dps"))?;
                let scope = self.id_scope.ok_or_else(|| required("id_scope", "dps"))?;
                check_dps(file, &endpoint, &scope)?;
                let att = self
                    .attestation
                    .ok_or_else(|| required("attestation", "dps"))?;
                let (registration_id, attestation) = att.dps(file)?;
                let dps_payload = self.payload.as_ref().map(|p| p.path(file)).transpose()?;
                if let Some(r) = &registration_id {
                    check_device_id(file, r).map_err(|_| {
                        ConfigError::invalid(
                            file,
                            "provisioning.attestation.registration_id",
                            format!("{r:?} is not a valid registration id"),
                        )
                    })?;
                }
                super::Provisioning {
                    source: self.source,
                    // what DPS assigns is known only after registration
                    device_id: registration_id.clone().unwrap_or_default(),
                    iothub_hostname: String::new(),
                    shared_access_key: None,
                    auth: DeviceAuth::Dps {
                        global_endpoint: endpoint,
                        id_scope: scope,
                        registration_id,
                        attestation,
                    },
                    dps_payload,
                    reprovisioning: Default::default(),
                }
            }
        };
        Ok(p)
    }
}
