//! `[provisioning]`: manual (connection string, SAS key, X.509) and DPS (symmetric key, X.509,
//! TPM). Keys move to the key store ([`Secret`]); the new config only refers to them.

use base64::Engine as _;
use edgesec_config::ConfigError;
use zeroize::Zeroizing;

use super::aziot::{AzAuth, AzKey, AzProvisioning, Method, Source};
use super::convert::{Cv, Secret};

pub const DEVICE_KEY_ID: &str = "edgesec/device-key";
pub const DPS_KEY_ID: &str = "edgesec/dps-key";

/// Refuses keys of `auth` that `method` does not use.
fn only(cv: &Cv<'_>, table: &str, a: &AzAuth, allowed: &[&str]) -> Result<(), ConfigError> {
    for (name, set) in [
        ("registration_id", a.registration_id.is_some()),
        ("device_id_pk", a.device_id_pk.is_some()),
        ("symmetric_key", a.symmetric_key.is_some()),
        ("identity_cert", a.identity_cert.is_some()),
        ("identity_pk", a.identity_pk.is_some()),
    ] {
        if set && !allowed.contains(&name) {
            return Err(cv.err(
                &format!("{table}.{name}"),
                format!(
                    "not used with method = {:?}: this mixes provisioning variants",
                    a.method.name()
                ),
            ));
        }
    }
    Ok(())
}

fn refuse(cv: &Cv<'_>, source: &str, keys: &[(&str, bool)]) -> Result<(), ConfigError> {
    for (k, set) in keys {
        if *set {
            return Err(cv.err(
                &format!("provisioning.{k}"),
                format!("not used with source = {source:?}: this mixes provisioning variants"),
            ));
        }
    }
    Ok(())
}

fn required<'a, T>(
    cv: &Cv<'_>,
    v: &'a Option<T>,
    key: &str,
    why: &str,
) -> Result<&'a T, ConfigError> {
    v.as_ref().ok_or_else(|| {
        let mut e = cv.err(key, format!("missing: {why}"));
        if e.line.is_none() {
            // point at the table the key belongs in
            let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or(key);
            e.line = cv.line(parent);
        }
        e
    })
}

/// The bytes of a symmetric key given as `{ value = b64 }` or `{ uri = "file:///..." }`. A
/// key file holds the raw key as aziot-keyd reads it; a file that is all base64 text is decoded.
fn key_bytes(cv: &Cv<'_>, key: &str, k: &AzKey) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match (&k.value, &k.uri) {
        (Some(_), Some(_)) => Err(cv.err(key, "give value or uri, not both")),
        (None, None) => Err(cv.err(
            key,
            "give value = \"<base64 key>\" or uri = \"file:///...\"",
        )),
        (Some(v), None) => {
            let bytes = b64
                .decode(v.trim())
                .map_err(|_| cv.err(&format!("{key}.value"), "not base64"))?;
            if bytes.is_empty() {
                return Err(cv.err(&format!("{key}.value"), "empty key"));
            }
            Ok(Zeroizing::new(bytes))
        }
        (None, Some(uri)) => {
            let ukey = format!("{key}.uri");
            let path = cv.file_uri(&ukey, uri)?;
            let raw = Zeroizing::new(
                std::fs::read(&path)
                    .map_err(|e| cv.err(&ukey, format!("cannot read {}: {e}", path.display())))?,
            );
            let text = std::str::from_utf8(&raw).map(str::trim).unwrap_or("");
            let decoded = b64
                .decode(text)
                .ok()
                .filter(|d| d.len() >= 16)
                .map(Zeroizing::new);
            let bytes = decoded.unwrap_or(raw);
            if bytes.is_empty() {
                return Err(cv.err(&ukey, format!("{} is empty", path.display())));
            }
            Ok(bytes)
        }
    }
}

fn secret(
    cv: &mut Cv<'_>,
    key_id: &'static str,
    bytes: Zeroizing<Vec<u8>>,
    table: &'static str,
    config_key: &'static str,
    from: &str,
) {
    // a placeholder until the key's place (keyd or a file) is known
    cv.doc.set(table, config_key, format!("keyd:{key_id}"));
    cv.secrets.push(Secret {
        key_id,
        bytes,
        table,
        config_key,
        from: from.into(),
    });
}

/// The identity certificate and key of X.509 provisioning.
fn x509(cv: &mut Cv<'_>, t: &'static str, a: &AzAuth) -> Result<std::path::PathBuf, ConfigError> {
    let ck = format!("{t}.identity_cert");
    let cert = match required(
        cv,
        &a.identity_cert,
        &ck,
        "method = \"x509\" needs identity_cert",
    )? {
        toml::Value::String(s) => cv.file_uri(&ck, s)?,
        toml::Value::Table(_) => {
            return Err(cv.err(&ck, "issued identity certificates (EST or a local CA) cannot be carried over yet: give a certificate file"));
        }
        _ => return Err(cv.err(&ck, "expected a file:/// URI")),
    };
    let kk = format!("{t}.identity_pk");
    let pk = required(
        cv,
        &a.identity_pk,
        &kk,
        "method = \"x509\" needs identity_pk",
    )?
    .clone();
    let pk = cv.file_uri(&kk, &pk)?;
    cv.doc.set(t, "identity_cert", cert.display().to_string());
    cv.doc
        .set(t, "identity_pk", format!("file://{}", pk.display()));
    cv.carried(&ck, format!("{t}.identity_cert"));
    cv.carried(
        &kk,
        format!("{t}.identity_pk (the key file; edgesec imports it into keyd)"),
    );
    Ok(cert)
}

/// The CN of a certificate file: DPS takes it as the registration id of X.509 attestation.
fn common_name(path: &std::path::Path) -> Option<String> {
    let ders = edgesec_pki::store::read_certs(path).ok()??;
    let (_, cert) = x509_parser::parse_x509_certificate(ders.first()?).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

/// The cloud settings: `auto_reprovisioning_mode` (or IoT Edge 1.1's booleans in
/// `[provisioning]`), `cloud_timeout_sec`, `cloud_retries`, and a DPS `payload`.
pub fn cloud(cv: &mut Cv<'_>, az: &super::aziot::AzConfig) -> Result<(), ConfigError> {
    use edgesecd::config::ReprovisionMode;
    let p = az.provisioning.as_ref();
    let legacy = [
        (
            "provisioning.dynamic_reprovisioning",
            p.and_then(|p| p.dynamic_reprovisioning),
            ReprovisionMode::Dynamic,
        ),
        (
            "provisioning.always_reprovision_on_startup",
            p.and_then(|p| p.always_reprovision_on_startup),
            ReprovisionMode::AlwaysOnStartup,
        ),
    ];
    let mut mode = None;
    for (key, on, m) in legacy {
        if let Some(on) = on {
            if on {
                mode = Some(m);
            }
            cv.carried(key, "auto_reprovisioning_mode");
        }
    }
    if let Some(s) = &az.auto_reprovisioning_mode {
        let m = ReprovisionMode::parse(s).ok_or_else(|| {
            cv.err(
                "auto_reprovisioning_mode",
                format!("{s:?}: expected Dynamic, AlwaysOnStartup or OnErrorOnly"),
            )
        })?;
        mode = Some(m);
        cv.carried("auto_reprovisioning_mode", "auto_reprovisioning_mode");
    }
    if let Some(m) = mode {
        cv.doc.set("", "auto_reprovisioning_mode", m.as_str());
    }
    if let Some(t) = az.cloud_timeout_sec {
        cv.doc.set("", "cloud_timeout_sec", t as i64);
        cv.carried("cloud_timeout_sec", "cloud_timeout_sec");
    }
    if let Some(r) = az.cloud_retries {
        cv.doc.set("", "cloud_retries", i64::from(r));
        cv.carried("cloud_retries", "cloud_retries");
    }
    if let Some(payload) = p.and_then(|p| p.payload.as_ref()) {
        let key = "provisioning.payload";
        if p.is_some_and(|p| p.source != Source::Dps) {
            return Err(cv.err(key, "a payload is sent to DPS; it needs source = \"dps\""));
        }
        let path = cv.file_uri(&format!("{key}.uri"), &payload.uri)?;
        let mut t = toml::Table::new();
        t.insert("uri".into(), format!("file://{}", path.display()).into());
        cv.doc.set("provisioning", "payload", toml::Value::Table(t));
        cv.carried(key, "provisioning.payload (sent with the DPS registration)");
    }
    Ok(())
}

pub fn provisioning(cv: &mut Cv<'_>, p: Option<&AzProvisioning>) -> Result<(), ConfigError> {
    let Some(p) = p else {
        return Err(ConfigError {
            file: cv.file.to_owned(),
            key: Some("provisioning".into()),
            line: None,
            message: "missing: an IoT Edge config needs a [provisioning] table".into(),
        });
    };
    match p.source {
        Source::Manual => manual(cv, p),
        Source::Dps => dps(cv, p),
    }
}

fn manual(cv: &mut Cv<'_>, p: &AzProvisioning) -> Result<(), ConfigError> {
    refuse(
        cv,
        "manual",
        &[
            ("global_endpoint", p.global_endpoint.is_some()),
            ("id_scope", p.id_scope.is_some()),
            ("attestation", p.attestation.is_some()),
        ],
    )?;
    cv.doc.set("provisioning", "source", "manual");
    cv.carried("provisioning.source", "provisioning.source");
    if let Some(cs) = &p.connection_string {
        refuse(cv, "manual", &[
            ("authentication", p.authentication.is_some()),
            ("iothub_hostname", p.iothub_hostname.is_some()),
            ("device_id", p.device_id.is_some()),
        ])
        .map_err(|mut e| {
            e.message = "give either connection_string or iothub_hostname, device_id and [provisioning.authentication], not both".into();
            e
        })?;
        let key = "provisioning.connection_string";
        let (mut host, mut device, mut sak, mut gateway) = (None, None, None, false);
        for part in cs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                cv.err(
                    key,
                    "expected HostName=...;DeviceId=...;SharedAccessKey=...",
                )
            })?;
            match k {
                "HostName" => host = Some(v.to_owned()),
                "DeviceId" => device = Some(v.to_owned()),
                "SharedAccessKey" => sak = Some(Zeroizing::new(v.to_owned())),
                "GatewayHostName" => gateway = true,
                "x509" => return Err(cv.err(key, "X.509 connection strings carry no key: use [provisioning.authentication] method = \"x509\"")),
                other => return Err(cv.err(key, format!("unsupported part {other:?}"))),
            }
        }
        let (Some(host), Some(device), Some(sak)) = (host, device, sak) else {
            return Err(cv.err(key, "needs HostName, DeviceId and SharedAccessKey"));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sak.trim())
            .map_err(|_| cv.err(key, "SharedAccessKey is not base64"))?;
        cv.doc.set("provisioning", "iothub_hostname", host);
        cv.doc.set("provisioning", "device_id", device);
        cv.doc.set("provisioning.authentication", "method", "sas");
        secret(
            cv,
            DEVICE_KEY_ID,
            Zeroizing::new(bytes),
            "provisioning.authentication",
            "device_id_pk",
            key,
        );
        let gw = if gateway {
            "; GatewayHostName is not carried over (nested edge is not supported yet)"
        } else {
            ""
        };
        cv.carried(key, format!("provisioning.iothub_hostname, device_id and authentication (method = \"sas\"; the key goes to keyd as {DEVICE_KEY_ID}){gw}"));
        return Ok(());
    }
    let t = "provisioning.authentication";
    let Some(a) = &p.authentication else {
        return Err(cv.err("provisioning.source", "source = \"manual\" needs connection_string, or iothub_hostname, device_id and [provisioning.authentication]"));
    };
    let hub = required(
        cv,
        &p.iothub_hostname,
        "provisioning.iothub_hostname",
        "needed with [provisioning.authentication]",
    )?;
    let device = required(
        cv,
        &p.device_id,
        "provisioning.device_id",
        "needed with [provisioning.authentication]",
    )?;
    cv.doc.set("provisioning", "iothub_hostname", hub.as_str());
    cv.doc.set("provisioning", "device_id", device.as_str());
    cv.carried(
        "provisioning.iothub_hostname",
        "provisioning.iothub_hostname",
    );
    cv.carried("provisioning.device_id", "provisioning.device_id");
    cv.doc.set(t, "method", a.method.name());
    cv.carried(&format!("{t}.method"), format!("{t}.method"));
    match a.method {
        Method::Sas => {
            only(cv, t, a, &["device_id_pk"])?;
            let k = format!("{t}.device_id_pk");
            let key = required(
                cv,
                &a.device_id_pk,
                &k,
                "method = \"sas\" needs device_id_pk",
            )?;
            let bytes = key_bytes(cv, &k, key)?;
            secret(cv, DEVICE_KEY_ID, bytes, t, "device_id_pk", &k);
            cv.carried(&k, format!("{k} (the key goes to keyd as {DEVICE_KEY_ID})"));
        }
        Method::X509 => {
            only(cv, t, a, &["identity_cert", "identity_pk"])?;
            x509(cv, t, a)?;
        }
        Method::Est | Method::LocalCa => {
            return Err(cv.err(
                &format!("{t}.method"),
                "issued identity certificates (EST or a local CA) cannot be carried over yet",
            ));
        }
        other => {
            return Err(cv.err(&format!("{t}.method"), format!("{:?} belongs to [provisioning.attestation] of source = \"dps\"; manual provisioning takes \"sas\" or \"x509\"", other.name())));
        }
    }
    Ok(())
}

fn dps(cv: &mut Cv<'_>, p: &AzProvisioning) -> Result<(), ConfigError> {
    refuse(
        cv,
        "dps",
        &[
            ("connection_string", p.connection_string.is_some()),
            ("iothub_hostname", p.iothub_hostname.is_some()),
            ("device_id", p.device_id.is_some()),
            ("authentication", p.authentication.is_some()),
        ],
    )?;
    let endpoint = required(
        cv,
        &p.global_endpoint,
        "provisioning.global_endpoint",
        "source = \"dps\" needs global_endpoint",
    )?;
    let scope = required(
        cv,
        &p.id_scope,
        "provisioning.id_scope",
        "source = \"dps\" needs id_scope",
    )?;
    cv.doc.set("provisioning", "source", "dps");
    cv.doc
        .set("provisioning", "global_endpoint", endpoint.as_str());
    cv.doc.set("provisioning", "id_scope", scope.as_str());
    for k in ["source", "global_endpoint", "id_scope"] {
        cv.carried(&format!("provisioning.{k}"), format!("provisioning.{k}"));
    }
    let t = "provisioning.attestation";
    let a = required(
        cv,
        &p.attestation,
        t,
        "source = \"dps\" needs [provisioning.attestation]",
    )?;
    cv.doc.set(t, "method", a.method.name());
    cv.carried(&format!("{t}.method"), format!("{t}.method"));
    let reg_key = format!("{t}.registration_id");
    match a.method {
        Method::SymmetricKey => {
            only(cv, t, a, &["registration_id", "symmetric_key"])?;
            let reg = required(
                cv,
                &a.registration_id,
                &reg_key,
                "method = \"symmetric_key\" needs registration_id",
            )?;
            cv.doc.set(t, "registration_id", reg.as_str());
            let k = format!("{t}.symmetric_key");
            let key = required(
                cv,
                &a.symmetric_key,
                &k,
                "method = \"symmetric_key\" needs symmetric_key",
            )?;
            let bytes = key_bytes(cv, &k, key)?;
            secret(cv, DPS_KEY_ID, bytes, t, "symmetric_key", &k);
            cv.carried(&k, format!("{k} (the key goes to keyd as {DPS_KEY_ID})"));
        }
        Method::X509 => {
            only(
                cv,
                t,
                a,
                &["registration_id", "identity_cert", "identity_pk"],
            )?;
            let cert = x509(cv, t, a)?;
            let reg = match &a.registration_id {
                Some(r) => r.clone(),
                None => common_name(&cert).ok_or_else(|| {
                    cv.err(
                        &format!("{t}.identity_cert"),
                        "no registration_id given and the certificate has no CN to take it from",
                    )
                })?,
            };
            cv.doc.set(t, "registration_id", reg);
        }
        Method::Tpm => {
            only(cv, t, a, &["registration_id"])?;
            if let Some(r) = &a.registration_id {
                cv.doc.set(t, "registration_id", r.as_str());
            }
            cv.carried(
                &format!("{t}.method"),
                format!("{t}.method = \"tpm\" (keyd's TPM store holds the endorsement key)"),
            );
        }
        other => {
            return Err(cv.err(&format!("{t}.method"), format!("{:?} is not a DPS attestation method; use \"symmetric_key\", \"x509\" or \"tpm\"", other.name())));
        }
    }
    cv.carried(&reg_key, reg_key.clone());
    Ok(())
}
