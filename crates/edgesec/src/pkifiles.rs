//! The certificates edgesec keeps as files, read the way the daemon lays them out: the CA
//! chain in `<state>/certs/` (or the user's files for a provided or issued CA), the copies of
//! module certificates in `<state>/certs/modules/`, and the user's trust bundle.

use std::path::{Path, PathBuf};

use edgesec_pki::CaMode;
use edgesec_pki::certinfo::{CertInfo, raw_public_key};
use edgesec_pki::config::KeySource;
use edgesecd::config::Config;

/// One certificate file entry.
#[derive(Clone, Debug)]
pub struct CertEntry {
    /// `edge-ca`, `device-root-ca`, `upstream-ca`, `trust-bundle/1`, `module/<name>.server`.
    pub id: String,
    pub path: PathBuf,
    /// Every certificate in the file, first one first.
    pub certs: Vec<CertInfo>,
    /// Where the private key is: `keyd:<id>`, a file, or who holds it.
    pub key: String,
}

fn read(path: &Path) -> Result<Option<Vec<CertInfo>>, String> {
    let ders = edgesec_pki::store::read_certs(path).map_err(|e| e.to_string())?;
    let Some(ders) = ders else { return Ok(None) };
    ders.iter()
        .map(|d| {
            CertInfo::parse(d)
                .map_err(|e| format!("{}: unreadable certificate: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[derive(serde::Deserialize, Default)]
struct CaState {
    #[serde(default)]
    root_key: Option<String>,
    #[serde(default)]
    edge_key: Option<String>,
}

fn ca_state(state_dir: &Path) -> CaState {
    std::fs::read_to_string(state_dir.join("certs/ca-state.toml"))
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .map(|t| CaState {
            root_key: t
                .get("root_key")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            edge_key: t
                .get("edge_key")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        })
        .unwrap_or_default()
}

/// The key id the daemon imports a user's CA key under (see edgesec-pki's `resolve_user_key`).
fn user_key(source: &KeySource, cert: Option<&CertInfo>, role: &str) -> String {
    match source {
        KeySource::KeyStore(id) => format!("keyd:{id}"),
        KeySource::File(p) => match cert.and_then(|c| raw_public_key(&c.spki).ok()) {
            Some(raw) => {
                let fp = edgesec_pki::certinfo::fingerprint(&raw);
                format!(
                    "keyd:edgesec/ca/{role}-{} (imported from {})",
                    &fp[..16.min(fp.len())],
                    p.display()
                )
            }
            None => p.display().to_string(),
        },
    }
}

/// The CA certificates, edge CA first and then up its chain. Missing files are left out;
/// unreadable ones are errors.
pub fn ca_entries(c: &Config) -> Result<Vec<CertEntry>, String> {
    let certs_dir = c.state_dir.join("certs");
    let state = ca_state(&c.state_dir);
    let ca = &c.pki.edge_ca;
    let keyd = |k: &Option<String>| {
        k.as_ref()
            .map(|k| format!("keyd:{k}"))
            .unwrap_or_else(|| "keyd (id not recorded yet)".into())
    };
    let mut out = Vec::new();
    let mut push = |id: &str, path: PathBuf, key: String| -> Result<(), String> {
        if let Some(certs) = read(&path)? {
            out.push(CertEntry {
                id: id.into(),
                path,
                certs,
                key,
            });
        }
        Ok(())
    };
    match ca.mode {
        CaMode::Quickstart => {
            push(
                "edge-ca",
                certs_dir.join("edge-ca.pem"),
                keyd(&state.edge_key),
            )?;
            push(
                "device-root-ca",
                certs_dir.join("device-root-ca.pem"),
                keyd(&state.root_key),
            )?;
        }
        CaMode::Issued => {
            push(
                "edge-ca",
                certs_dir.join("edge-ca.pem"),
                keyd(&state.edge_key),
            )?;
            if let (Some(f), Some(k)) = (&ca.issuer_cert, &ca.issuer_pk) {
                let first = read(&f.0)?.and_then(|v| v.into_iter().next());
                push(
                    "upstream-ca",
                    f.0.clone(),
                    user_key(k, first.as_ref(), "upstream"),
                )?;
            }
        }
        CaMode::Provided => {
            if let (Some(f), Some(k)) = (&ca.cert, &ca.pk) {
                let first = read(&f.0)?.and_then(|v| v.into_iter().next());
                push(
                    "edge-ca",
                    f.0.clone(),
                    user_key(k, first.as_ref(), "provided"),
                )?;
            }
        }
    }
    Ok(out)
}

/// Every certificate file: the CA chain, the user's trust bundle, module certificates.
pub fn all_entries(c: &Config) -> Result<Vec<CertEntry>, String> {
    let mut out = ca_entries(c)?;
    if let Some(tb) = &c.pki.trust_bundle_cert
        && let Some(certs) = read(&tb.0)?
    {
        out.push(CertEntry {
            id: "trust-bundle".into(),
            path: tb.0.clone(),
            certs,
            key: "none (trusted CA certificates)".into(),
        });
    }
    let dir = c.state_dir.join("certs/modules");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".pem") else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        if let Some(certs) = read(&path)? {
            out.push(CertEntry {
                id: format!("module/{stem}"),
                path,
                certs,
                key: "held by the module only (edgesec keeps no module key)".into(),
            });
        }
    }
    Ok(out)
}

/// Whole days from `now` until `t` (negative once past).
pub fn days_left(t: time::OffsetDateTime, now: time::OffsetDateTime) -> i64 {
    (t - now).whole_days()
}

/// Subject alternative names of a certificate, as text.
pub fn sans(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::IPAddress(b) => match b.len() {
                4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                16 => {
                    let a: [u8; 16] = (*b).try_into().unwrap_or([0; 16]);
                    format!("IP:{}", std::net::Ipv6Addr::from(a))
                }
                _ => "IP:?".into(),
            },
            other => format!("{other}"),
        })
        .collect()
}

/// The issuer of a certificate, as text.
pub fn issuer(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.issuer().to_string())
        .unwrap_or_default()
}
