//! The certificate settings of the daemon's config file: `[edge_ca]`, `[edge_ca.auto_renew]`,
//! `[module_certs]` and the top-level `trust_bundle_cert`.
//!
//! Paths may be written as `file://` URIs or plain paths. Relative paths are resolved by the
//! caller against the config file's directory ([`PkiConfig::resolve_relative`] does it); this
//! crate expects absolute paths.

use std::fmt;
use std::path::{Path, PathBuf};

use edgesec_keys::{KeyId, KeyPairAlgorithm};
use serde::Deserialize;
use time::Duration;

use crate::error::{PkiError, Result};

/// Every certificate setting, in the shape of the daemon's config file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    #[serde(default)]
    pub edge_ca: EdgeCaConfig,
    #[serde(default)]
    pub module_certs: ModuleCertConfig,
    /// Extra CA certificates (PEM) that modules should trust, added to the trust bundle.
    #[serde(default)]
    pub trust_bundle_cert: Option<PemFile>,
}

/// How the edge CA comes to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaMode {
    /// A device root CA and an edge CA under it, both made here with keys in the key store.
    #[default]
    Quickstart,
    /// The user's CA certificate chain and key; never renewed.
    Provided,
    /// An edge CA key made in the key store, its certificate signed by the user's upstream CA.
    Issued,
}

impl fmt::Display for CaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaMode::Quickstart => "quickstart",
            CaMode::Provided => "provided",
            CaMode::Issued => "issued",
        })
    }
}

/// `[edge_ca]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeCaConfig {
    pub mode: CaMode,
    /// Algorithm of the CA keys edgesec makes in the key store.
    pub key_algorithm: KeyPairAlgorithm,
    /// Lifetime of the edge CA certificate (quickstart and issued).
    pub expiry_days: u32,
    /// Lifetime of the quickstart device root CA.
    pub root_expiry_days: u32,
    /// Subject CN of the edge CA (quickstart and issued).
    pub common_name: Option<String>,
    /// Subject CN of the quickstart device root CA.
    pub root_common_name: Option<String>,
    /// provided: the edge CA certificate, followed by its intermediates (and optionally root).
    pub cert: Option<PemFile>,
    /// provided: the edge CA's private key.
    pub pk: Option<KeySource>,
    /// issued: the upstream CA certificate that signs the edge CA, followed by its chain.
    pub issuer_cert: Option<PemFile>,
    /// issued: the upstream CA's private key.
    pub issuer_pk: Option<KeySource>,
    pub auto_renew: RenewalPolicy,
}

impl Default for EdgeCaConfig {
    fn default() -> Self {
        EdgeCaConfig {
            mode: CaMode::Quickstart,
            key_algorithm: KeyPairAlgorithm::EcP256,
            expiry_days: 90,
            root_expiry_days: 3650,
            common_name: None,
            root_common_name: None,
            cert: None,
            pk: None,
            issuer_cert: None,
            issuer_pk: None,
            auto_renew: RenewalPolicy::default(),
        }
    }
}

/// `[module_certs]`: the certificates issued to modules.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleCertConfig {
    /// Lifetime of module certificates; they are also cut off at the edge CA's expiry.
    pub expiry_days: u32,
    /// Algorithm of the module keys: `ec-p256` (default), `ec-p384`, `rsa-2048` or `rsa-4096`.
    pub key_algorithm: KeyPairAlgorithm,
    /// Names added to every server certificate's SANs (DNS names or IP addresses).
    pub extra_hostnames: Vec<String>,
    /// Keep a copy of every module's latest certificate (chain, no key) under
    /// `<state>/certs/modules/`, written in the background.
    pub persist: bool,
}

impl Default for ModuleCertConfig {
    fn default() -> Self {
        ModuleCertConfig {
            expiry_days: 30,
            key_algorithm: KeyPairAlgorithm::EcP256,
            extra_hostnames: Vec::new(),
            persist: true,
        }
    }
}

/// `[edge_ca.auto_renew]`. Defaults: renew at 80 % of the lifetime, retry every 4 %, new key.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalPolicy {
    pub threshold: Threshold,
    pub retry: Threshold,
    pub rotate_key: bool,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            threshold: Threshold::Percent(80),
            retry: Threshold::Percent(4),
            rotate_key: true,
        }
    }
}

/// A point in a certificate's life: a share of the lifetime (`"80%"`) or a time before expiry
/// (`"10min"`, `"12h"`, `"7day"`). As a retry interval: that share of the lifetime, or that time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Threshold {
    /// Percent of the lifetime, 1 to 99.
    Percent(u8),
    /// A positive duration.
    Before(Duration),
}

impl TryFrom<String> for Threshold {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "invalid value {s:?}: expected a percentage of the lifetime like \"80%\" or a \
                 time like \"30min\", \"12h\" or \"7day\""
            )
        };
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(digits_end);
        let n: u32 = num.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("invalid value {s:?}: must be positive"));
        }
        let n = i64::from(n);
        match unit.trim() {
            "%" if n < 100 => Ok(Threshold::Percent(n as u8)),
            "%" => Err(format!(
                "invalid value {s:?}: a percentage must be below 100"
            )),
            "min" | "mins" | "minute" | "minutes" => Ok(Threshold::Before(Duration::minutes(n))),
            "h" | "hour" | "hours" => Ok(Threshold::Before(Duration::hours(n))),
            "d" | "day" | "days" => Ok(Threshold::Before(Duration::days(n))),
            _ => Err(bad()),
        }
    }
}

/// A PEM file, written as a `file://` URI or a path.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PemFile(pub PathBuf);

impl TryFrom<String> for PemFile {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        parse_path(&s).map(PemFile)
    }
}

/// Where a CA private key comes from: a PEM file (imported into the key store on first use) or
/// a key already in the key store, written `keyd:<key id>`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum KeySource {
    File(PathBuf),
    KeyStore(KeyId),
}

impl TryFrom<String> for KeySource {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        if let Some(id) = s.strip_prefix("keyd:") {
            return KeyId::new(id)
                .map(KeySource::KeyStore)
                .map_err(|e| e.to_string());
        }
        parse_path(&s).map(KeySource::File)
    }
}

fn parse_path(s: &str) -> std::result::Result<PathBuf, String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    let Some(rest) = s.strip_prefix("file://") else {
        if s.contains("://") {
            return Err(format!(
                "{s:?}: only file:// URIs and plain paths are supported"
            ));
        }
        return Ok(PathBuf::from(s));
    };
    // file:///abs/path or file://localhost/abs/path
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(format!("{s:?}: a file URI needs an absolute path"));
    }
    percent_decode(path).ok_or_else(|| format!("{s:?}: bad percent-encoding"))
}

fn percent_decode(s: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

impl PkiConfig {
    /// Parses the certificate settings out of a TOML document.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| PkiError::Config(e.to_string()))
    }

    /// Makes every relative path absolute against `base` (the config file's directory).
    pub fn resolve_relative(&mut self, base: &Path) {
        let ca = &mut self.edge_ca;
        for f in [
            &mut ca.cert,
            &mut ca.issuer_cert,
            &mut self.trust_bundle_cert,
        ]
        .into_iter()
        .flatten()
        {
            resolve(base, &mut f.0);
        }
        for k in [&mut ca.pk, &mut ca.issuer_pk].into_iter().flatten() {
            if let KeySource::File(p) = k {
                resolve(base, p);
            }
        }
    }

    /// Checks the settings that depend on each other.
    pub fn validate(&self) -> Result<()> {
        self.edge_ca.validate()?;
        self.module_certs.validate()
    }
}

impl EdgeCaConfig {
    pub fn validate(&self) -> Result<()> {
        let err = |s: String| Err(PkiError::Config(format!("[edge_ca] {s}")));
        let has = |set: bool, name: &str| -> Result<()> {
            if set {
                Ok(())
            } else {
                Err(PkiError::Config(format!(
                    "[edge_ca] mode = \"{}\" needs `{name}`",
                    self.mode
                )))
            }
        };
        let unused = |set: bool, name: &str, mode: &str| -> Result<()> {
            if set {
                Err(PkiError::Config(format!(
                    "[edge_ca] `{name}` is only used with mode = \"{mode}\", not \"{}\"",
                    self.mode
                )))
            } else {
                Ok(())
            }
        };
        match self.mode {
            CaMode::Quickstart => {
                unused(self.cert.is_some(), "cert", "provided")?;
                unused(self.pk.is_some(), "pk", "provided")?;
                unused(self.issuer_cert.is_some(), "issuer_cert", "issued")?;
                unused(self.issuer_pk.is_some(), "issuer_pk", "issued")?;
            }
            CaMode::Provided => {
                has(self.cert.is_some(), "cert")?;
                has(self.pk.is_some(), "pk")?;
                unused(self.issuer_cert.is_some(), "issuer_cert", "issued")?;
                unused(self.issuer_pk.is_some(), "issuer_pk", "issued")?;
            }
            CaMode::Issued => {
                has(self.issuer_cert.is_some(), "issuer_cert")?;
                has(self.issuer_pk.is_some(), "issuer_pk")?;
                unused(self.cert.is_some(), "cert", "provided")?;
                unused(self.pk.is_some(), "pk", "provided")?;
            }
        }
        if self.expiry_days == 0 || self.root_expiry_days == 0 {
            return err("expiry_days and root_expiry_days must be positive".into());
        }
        if let Threshold::Before(d) = self.auto_renew.threshold {
            let shortest = match self.mode {
                CaMode::Quickstart => self.expiry_days.min(self.root_expiry_days),
                _ => self.expiry_days,
            };
            if d >= Duration::days(i64::from(shortest)) {
                return err(format!(
                    "auto_renew.threshold ({} days) must be shorter than the CA lifetime ({shortest} days)",
                    d.whole_days()
                ));
            }
        }
        for (name, cn) in [
            ("common_name", &self.common_name),
            ("root_common_name", &self.root_common_name),
        ] {
            if cn.as_ref().is_some_and(|s| s.is_empty() || s.len() > 64) {
                return err(format!("{name} must be 1 to 64 bytes"));
            }
        }
        Ok(())
    }
}

impl ModuleCertConfig {
    pub fn validate(&self) -> Result<()> {
        if self.expiry_days == 0 {
            return Err(PkiError::Config(
                "[module_certs] expiry_days must be positive".into(),
            ));
        }
        if self.key_algorithm == KeyPairAlgorithm::Ed25519 {
            return Err(PkiError::Config(
                "[module_certs] key_algorithm must be ec-p256, ec-p384, rsa-2048 or rsa-4096"
                    .into(),
            ));
        }
        for name in &self.extra_hostnames {
            crate::issue::san_for(name)
                .map_err(|e| PkiError::Config(format!("[module_certs] extra_hostnames: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
