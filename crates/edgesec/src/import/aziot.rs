//! The IoT Edge super-config (`/etc/aziot/config.toml`) as far as the import reads it. Types are
//! checked by serde (so a wrong type is answered with its key and line); keys this file does not
//! name are found by walking the document ([`key_lines`]) and reported, never dropped silently.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct AzConfig {
    pub hostname: Option<String>,
    pub trust_bundle_cert: Option<String>,
    pub iotedge_max_requests: Option<MaxRequests>,
    pub provisioning: Option<AzProvisioning>,
    pub agent: Option<AzAgent>,
    pub connect: Option<AzUris>,
    pub listen: Option<AzUris>,
    pub watchdog: Option<AzWatchdog>,
    pub edge_ca: Option<AzEdgeCa>,
    pub cert_issuance: Option<AzCertIssuance>,
    pub auto_reprovisioning_mode: Option<String>,
    pub cloud_timeout_sec: Option<u64>,
    pub cloud_retries: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRequests {
    pub management: Option<usize>,
    pub workload: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Manual,
    Dps,
}

#[derive(Debug, Deserialize)]
pub struct AzProvisioning {
    pub source: Source,
    pub connection_string: Option<String>,
    pub iothub_hostname: Option<String>,
    pub device_id: Option<String>,
    pub global_endpoint: Option<String>,
    pub id_scope: Option<String>,
    pub authentication: Option<AzAuth>,
    pub attestation: Option<AzAuth>,
    pub payload: Option<AzPayload>,
    /// IoT Edge 1.1's spellings of the reprovisioning mode.
    pub dynamic_reprovisioning: Option<bool>,
    pub always_reprovision_on_startup: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzPayload {
    pub uri: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Sas,
    X509,
    SymmetricKey,
    Tpm,
    Est,
    LocalCa,
    SelfSigned,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Sas => "sas",
            Method::X509 => "x509",
            Method::SymmetricKey => "symmetric_key",
            Method::Tpm => "tpm",
            Method::Est => "est",
            Method::LocalCa => "local_ca",
            Method::SelfSigned => "self_signed",
        }
    }
}

/// `[provisioning.authentication]` or `[provisioning.attestation]`.
#[derive(Debug, Deserialize)]
pub struct AzAuth {
    pub method: Method,
    pub registration_id: Option<String>,
    pub device_id_pk: Option<AzKey>,
    pub symmetric_key: Option<AzKey>,
    /// A file URI, or a table asking for an issued certificate.
    pub identity_cert: Option<toml::Value>,
    pub identity_pk: Option<String>,
}

/// A symmetric key: `{ value = "<base64>" }` or `{ uri = "file:///..." | "pkcs11:..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzKey {
    pub value: Option<String>,
    pub uri: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AzAgent {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub agent_type: Option<String>,
    pub env: Option<BTreeMap<String, toml::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct AzUris {
    pub workload_uri: Option<String>,
    pub management_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AzWatchdog {
    pub max_retries: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct AzEdgeCa {
    pub cert: Option<String>,
    pub pk: Option<String>,
    pub method: Option<Method>,
    pub common_name: Option<String>,
    pub subject: Option<toml::Value>,
    pub expiry_days: Option<u32>,
    pub auto_generated_edge_ca_expiry_days: Option<u32>,
    pub auto_renew: Option<AzAutoRenew>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzAutoRenew {
    pub rotate_key: Option<bool>,
    pub threshold: Option<String>,
    pub retry: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AzCertIssuance {
    pub local_ca: Option<AzLocalCa>,
}

#[derive(Debug, Deserialize)]
pub struct AzLocalCa {
    pub cert: Option<String>,
    pub pk: Option<String>,
}

/// Every key of the document as a dotted path (`provisioning.attestation.method`, arrays as
/// `a[0].b`), with its 1-based line.
pub fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Ok(root) = toml::de::DeTable::parse(text) else {
        return out;
    };
    let line = |pos: usize| text[..pos.min(text.len())].matches('\n').count() + 1;
    fn walk(
        table: &toml::de::DeTable<'_>,
        prefix: &str,
        line: &dyn Fn(usize) -> usize,
        out: &mut BTreeMap<String, usize>,
    ) {
        for (k, v) in table.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            out.entry(path.clone()).or_insert(line(k.span().start));
            walk_value(v.get_ref(), &path, line, out);
        }
    }
    fn walk_value(
        v: &toml::de::DeValue<'_>,
        path: &str,
        line: &dyn Fn(usize) -> usize,
        out: &mut BTreeMap<String, usize>,
    ) {
        match v {
            toml::de::DeValue::Table(t) => walk(t, path, line, out),
            toml::de::DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    if let toml::de::DeValue::Table(t) = item.get_ref() {
                        walk(t, &format!("{path}[{i}]"), line, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(root.get_ref(), "", &line, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_line() {
        let text = "hostname = \"h\"\n\n[provisioning]\nsource = \"dps\"\n[provisioning.attestation]\nmethod = \"tpm\"\n\
                    [agent.config]\nimage = \"x\"\ncreateOptions = { HostConfig = { Binds = [] } }\n";
        let k = key_lines(text);
        assert_eq!(k["hostname"], 1);
        assert_eq!(k["provisioning"], 3);
        assert_eq!(k["provisioning.source"], 4);
        assert_eq!(k["provisioning.attestation.method"], 6);
        assert_eq!(k["agent.config.createOptions.HostConfig.Binds"], 9);
    }
}
