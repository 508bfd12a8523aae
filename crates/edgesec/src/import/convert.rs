//! The mapping from an IoT Edge super-config to an edgesec config. Every key of the input ends
//! up in a [`Note`]: carried over (and where to), or not carried over (and why).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgesec_config::ConfigError;
use zeroize::Zeroizing;

use super::aziot::{AzConfig, key_lines};
use super::emit::Doc;

pub const CONTAINER_REASON: &str =
    "no container runtime in edgesec yet: modules and the agent run as processes";

/// What happened to one key of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub key: String,
    pub line: Option<usize>,
    pub kind: NoteKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteKind {
    /// Carried over, to this place of the new config (with a remark, if any).
    Carried(String),
    /// Not carried over, for this reason.
    Dropped(String),
}

/// A key that must go to the key store, not into the config text.
pub struct Secret {
    pub key_id: &'static str,
    pub bytes: Zeroizing<Vec<u8>>,
    /// Where the reference to it goes in the new config: (table, key).
    pub table: &'static str,
    pub config_key: &'static str,
    /// The input key it came from.
    pub from: String,
}

pub struct Opts {
    pub state_dir: PathBuf,
    pub keyd_socket: PathBuf,
}

pub struct Converted {
    pub doc: Doc,
    pub notes: Vec<Note>,
    pub secrets: Vec<Secret>,
}

pub struct Cv<'a> {
    pub file: &'a Path,
    lines: BTreeMap<String, usize>,
    pub doc: Doc,
    pub notes: Vec<Note>,
    pub secrets: Vec<Secret>,
}

impl Cv<'_> {
    pub fn line(&self, key: &str) -> Option<usize> {
        self.lines.get(key).copied()
    }

    /// An error about `key`, with its line.
    pub fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: Some(key.to_owned()),
            line: self.line(key),
            message: message.into(),
        }
    }

    pub fn carried(&mut self, key: &str, to: impl Into<String>) {
        if self.lines.contains_key(key) {
            self.notes.push(Note {
                key: key.into(),
                line: self.line(key),
                kind: NoteKind::Carried(to.into()),
            });
        }
    }

    pub fn dropped(&mut self, key: &str, why: impl Into<String>) {
        if self.lines.contains_key(key) {
            self.notes.push(Note {
                key: key.into(),
                line: self.line(key),
                kind: NoteKind::Dropped(why.into()),
            });
        }
    }

    /// A `file://` URI (or an absolute path) of `key` as a path; the file must exist.
    pub fn file_uri(&self, key: &str, uri: &str) -> Result<PathBuf, ConfigError> {
        if uri.starts_with("pkcs11:") {
            return Err(self.err(
                key,
                "a PKCS#11 URI cannot be carried over by the import: put the key in keyd's \
                 PKCS#11 store and refer to it as \"keyd:<id>\" by hand",
            ));
        }
        let path = edgesec_pki::config::PemFile::try_from(uri.to_owned())
            .map_err(|e| self.err(key, e))?
            .0;
        if !path.is_absolute() {
            return Err(self.err(
                key,
                format!("{uri:?}: give a file:/// URI with an absolute path"),
            ));
        }
        if !path.is_file() {
            return Err(self.err(key, format!("the file {} does not exist", path.display())));
        }
        Ok(path)
    }

    fn covered(&self, key: &str) -> bool {
        self.notes.iter().any(|n| {
            key == n.key
                || key.starts_with(&format!("{}.", n.key))
                || key.starts_with(&format!("{}[", n.key))
                || n.key.starts_with(&format!("{key}."))
        })
    }
}

/// Converts the text of a super-config. Errors name the key and its line.
pub fn convert(file: &Path, text: &str, opts: &Opts) -> Result<Converted, ConfigError> {
    let az: AzConfig = edgesec_config::parse(file, text)?;
    let mut cv = Cv {
        file,
        lines: key_lines(text),
        doc: Doc::default(),
        notes: Vec::new(),
        secrets: Vec::new(),
    };
    top(&mut cv, &az, opts)?;
    super::provisioning::provisioning(&mut cv, az.provisioning.as_ref())?;
    super::provisioning::cloud(&mut cv, &az)?;
    sockets(&mut cv, &az, opts)?;
    agent(&mut cv, &az)?;
    super::edge_ca::edge_ca(
        &mut cv,
        az.edge_ca.as_ref(),
        az.cert_issuance.as_ref().and_then(|c| c.local_ca.as_ref()),
    )?;
    known_but_unsupported(&mut cv);
    let keys: Vec<String> = cv.lines.keys().cloned().collect();
    for k in keys {
        if !cv.covered(&k) {
            cv.dropped(&k, "not a key edgesec config import knows");
        }
    }
    cv.notes.sort_by_key(|n| (n.line, n.key.clone()));
    Ok(Converted {
        doc: cv.doc,
        notes: cv.notes,
        secrets: cv.secrets,
    })
}

fn top(cv: &mut Cv<'_>, az: &AzConfig, opts: &Opts) -> Result<(), ConfigError> {
    if let Some(h) = &az.hostname {
        cv.doc.set("", "hostname", h.as_str());
        cv.carried("hostname", "hostname");
    }
    cv.doc
        .set("", "state_dir", opts.state_dir.display().to_string());
    if let Some(t) = &az.trust_bundle_cert {
        let p = cv.file_uri("trust_bundle_cert", t)?;
        cv.doc
            .set("", "trust_bundle_cert", format!("file://{}", p.display()));
        cv.carried(
            "trust_bundle_cert",
            "trust_bundle_cert (added to the trust bundle)",
        );
    }
    Ok(())
}

fn sockets(cv: &mut Cv<'_>, az: &AzConfig, opts: &Opts) -> Result<(), ConfigError> {
    cv.doc
        .set("keyd", "socket", opts.keyd_socket.display().to_string());
    let socket = |cv: &mut Cv<'_>,
                  which: &str,
                  table: &str,
                  default: &str|
     -> Result<(), ConfigError> {
        let mut chosen: Option<(String, PathBuf)> = None;
        // listen is where the daemon binds; connect is what clients use. edgesec binds and
        // tells clients one path, so a unix listen URI wins over connect.
        for (src, uri) in [
            ("listen", az.listen.as_ref().and_then(|l| uri_of(l, which))),
            (
                "connect",
                az.connect.as_ref().and_then(|c| uri_of(c, which)),
            ),
        ] {
            let Some(uri) = uri else { continue };
            let key = format!("{src}.{which}_uri");
            if uri.starts_with("fd://") {
                cv.dropped(&key, format!("systemd socket activation ({uri}) is not supported yet; edgesecd creates the socket itself"));
                continue;
            }
            let path =
                edgesec_http::parse_unix_uri(uri).map_err(|e| cv.err(&key, e.to_string()))?;
            match &chosen {
                None => {
                    cv.carried(&key, format!("{table}.socket"));
                    chosen = Some((key, path));
                }
                Some((k, p)) if *p == path => {
                    cv.carried(&key, format!("{table}.socket (same path as {k})"))
                }
                Some((k, _)) => cv.dropped(
                    &key,
                    format!("edgesec serves one path per socket; {k} is used"),
                ),
            }
        }
        let path = chosen
            .map(|(_, p)| p)
            .unwrap_or_else(|| PathBuf::from(default));
        cv.doc.set(table, "socket", path.display().to_string());
        Ok(())
    };
    socket(cv, "management", "management", "/run/edgesec/mgmt.sock")?;
    socket(cv, "workload", "workload", "/run/edgesec/workload.sock")?;
    cv.doc
        .set("workload", "module_socket_dir", "/run/edgesec/mnt");
    if let Some(m) = &az.iotedge_max_requests {
        for (k, v) in [("management", m.management), ("workload", m.workload)] {
            if let Some(n) = v {
                if n == 0 || n > 10_000 {
                    return Err(cv.err(
                        &format!("iotedge_max_requests.{k}"),
                        "must be between 1 and 10000",
                    ));
                }
                cv.doc.set(k, "max_connections_per_uid", n as i64);
                cv.carried(
                    &format!("iotedge_max_requests.{k}"),
                    format!("{k}.max_connections_per_uid"),
                );
            }
        }
    }
    if let Some(w) = &az.watchdog {
        match &w.max_retries {
            Some(toml::Value::String(s)) if s == "infinite" => cv.carried(
                "watchdog.max_retries",
                "edgesecd's watchdog (it always retries, with backoff up to watchdog.max_backoff_secs)",
            ),
            Some(_) => cv.dropped(
                "watchdog.max_retries",
                "edgesecd's watchdog never gives up on the agent; it backs off up to watchdog.max_backoff_secs",
            ),
            None => {}
        }
    }
    cv.dropped(
        "listen.min_tls_version",
        "edgesec's APIs are served on Unix sockets; TLS settings do not apply",
    );
    Ok(())
}

fn uri_of<'a>(u: &'a super::aziot::AzUris, which: &str) -> Option<&'a str> {
    match which {
        "management" => u.management_uri.as_deref(),
        _ => u.workload_uri.as_deref(),
    }
}

fn agent(cv: &mut Cv<'_>, az: &AzConfig) -> Result<(), ConfigError> {
    cv.doc.set("agent", "name", "edgeAgent");
    if let Some(a) = &az.agent {
        if let Some(n) = &a.name {
            edgesecd_name_check(cv, n)?;
            cv.doc.set("agent", "name", n.as_str());
            cv.carried("agent.name", "agent.name");
        }
        match a.agent_type.as_deref() {
            Some("docker") | None => {
                let why = format!(
                    "{CONTAINER_REASON}; the converted config runs edgesec-agent, which reconciles \
                     /etc/edgesec/deployment.json, instead of the agent image"
                );
                cv.dropped("agent.type", why.clone());
                cv.dropped("agent.config", why.clone());
                cv.dropped("agent.imagePullPolicy", why);
            }
            Some(other) => {
                return Err(cv.err(
                    "agent.type",
                    format!("unknown agent type {other:?}; IoT Edge knows \"docker\""),
                ));
            }
        }
        if let Some(env) = &a.env {
            for (k, v) in env {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        v.to_string()
                    }
                    _ => {
                        return Err(cv.err(
                            &format!("agent.env.{k}"),
                            "expected a string, number or boolean",
                        ));
                    }
                };
                cv.doc.set("agent.env", k, s);
            }
            cv.carried("agent.env", "agent.env (environment of the agent process)");
        }
    }
    cv.doc.set("agent", "type", "process");
    cv.doc.set("agent", "command", "edgesec-agent");
    cv.doc
        .set("agent", "deployment", "/etc/edgesec/deployment.json");
    Ok(())
}

fn edgesecd_name_check(cv: &Cv<'_>, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.$".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(cv.err(
            "agent.name",
            format!("{name:?} is not a usable module name"),
        ))
    }
}

fn known_but_unsupported(cv: &mut Cv<'_>) {
    for (k, why) in [
        (
            "parent_hostname",
            "nested edge (a parent gateway) is not supported yet".to_string(),
        ),
        (
            "allow_elevated_docker_permissions",
            CONTAINER_REASON.to_string(),
        ),
        (
            "prefer_module_identity_cache",
            "edgesecd asks the hub first and uses its local records when the hub cannot be reached"
                .into(),
        ),
        (
            "additional_info",
            "edgesecd reports its own system information".into(),
        ),
        (
            "moby_runtime",
            format!("container runtime not available yet ({CONTAINER_REASON})"),
        ),
        (
            "image_garbage_collection",
            format!("no images to collect ({CONTAINER_REASON})"),
        ),
        (
            "tpm",
            "TPM settings belong in keyd's config (keyd.toml, [store]), not the daemon's".into(),
        ),
        (
            "aziot_keys",
            "key service settings belong in keyd's config (keyd.toml)".into(),
        ),
        (
            "cert_issuance.est",
            "EST issuance is not supported yet".into(),
        ),
        ("cert_issuance", "not used by the converted config".into()),
        (
            "homedir",
            "the converted config keeps its state in state_dir".into(),
        ),
    ] {
        if !cv.covered(k) {
            cv.dropped(k, why);
        }
    }
}
