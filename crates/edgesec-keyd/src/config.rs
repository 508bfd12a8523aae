//! `keyd.toml`. Relative paths resolve against the file's own directory.
//!
//! ```toml
//! socket = "run/keyd.sock"        # the Unix socket keyd serves (mode 0660)
//! socket_group = 990              # optional gid for the socket (the daemon's group)
//! state_dir = "state/keyd"        # the key store: 0700, refused when others can write it
//!
//! [store]
//! backend = "soft"                # or "pkcs11"; routes, the token and preloaded keys: store.rs
//!
//! [limits]                        # all optional
//! max_body_bytes = 65536
//! max_connections_per_uid = 32
//! request_timeout_secs = 30
//!
//! [[principal]]
//! uid = "self"                    # a number, or "self" for the uid keyd runs as
//! keys = ["*"]                    # key id patterns this uid may use (* and ?)
//! export = ["device-id"]          # optional: whose derived keys it may export
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgesec_config::ConfigError;
use serde::Deserialize;

use crate::principals::{Principal, Principals};
use crate::store::RawStore;
pub use crate::store::{Backend, Pkcs11Settings, Route, StoreConfig};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    socket: PathBuf,
    #[serde(default)]
    socket_group: Option<u32>,
    state_dir: PathBuf,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default, rename = "principal")]
    principals: Vec<RawPrincipal>,
    #[serde(default)]
    tpm: Option<crate::platform::RawTpm>,
    #[serde(default)]
    measure: Option<crate::platform::RawMeasure>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_connections_per_uid: usize,
    pub request_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            max_connections_per_uid: 32,
            request_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Uid {
    Number(u32),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    uid: Uid,
    keys: Vec<String>,
    #[serde(default)]
    export: Vec<String>,
}

/// A validated keyd config with absolute paths.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub socket: PathBuf,
    pub socket_group: Option<u32>,
    pub state_dir: PathBuf,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub principals: Principals,
    /// `[tpm]` (see `platform.rs`).
    pub tpm: crate::platform::TpmSettings,
    /// `[measure]` (see `platform.rs`).
    pub measure: crate::platform::MeasureSettings,
}

impl Config {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = edgesec_config::load(file)?;
        Self::from_raw(file, raw)
    }

    /// Parses config text as if it came from `file` (for tests and `config check`).
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = edgesec_config::parse(file, text)?;
        Self::from_raw(file, raw)
    }

    fn from_raw(file: &Path, raw: RawConfig) -> Result<Self, ConfigError> {
        let l = raw.limits;
        if l.max_body_bytes < 1024 || l.max_body_bytes > 16 << 20 {
            return Err(ConfigError::invalid(
                file,
                "limits.max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if l.max_connections_per_uid == 0 || l.max_connections_per_uid > 10_000 {
            return Err(ConfigError::invalid(
                file,
                "limits.max_connections_per_uid",
                "must be between 1 and 10000",
            ));
        }
        if l.request_timeout_secs == 0 || l.request_timeout_secs > 3600 {
            return Err(ConfigError::invalid(
                file,
                "limits.request_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        // SAFETY: geteuid has no preconditions.
        let own_uid = unsafe { libc::geteuid() };
        let mut principals = Vec::new();
        for (i, p) in raw.principals.into_iter().enumerate() {
            let uid = match p.uid {
                Uid::Number(n) => n,
                Uid::Name(s) if s == "self" => own_uid,
                Uid::Name(s) => {
                    return Err(ConfigError::invalid(
                        file,
                        &format!("principal[{i}].uid"),
                        format!("expected a number or \"self\", found {s:?}"),
                    ));
                }
            };
            for pat in p.keys.iter().chain(&p.export) {
                if pat.is_empty() || pat.len() > 200 {
                    return Err(ConfigError::invalid(
                        file,
                        &format!("principal[{i}].keys"),
                        "patterns must be 1 to 200 bytes",
                    ));
                }
            }
            principals.push(Principal {
                uid,
                keys: p.keys,
                export: p.export,
            });
        }
        Ok(Config {
            file: file.to_owned(),
            socket: edgesec_config::resolve(file, &raw.socket),
            socket_group: raw.socket_group,
            state_dir: edgesec_config::resolve(file, &raw.state_dir),
            store: StoreConfig::from_raw(file, raw.store)?,
            limits: l,
            principals: Principals::new(principals),
            tpm: crate::platform::TpmSettings::from_raw(file, raw.tpm)?,
            measure: crate::platform::MeasureSettings::from_raw(file, raw.measure)?,
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/edgesec/keyd.toml";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new(FILE), text).map_err(|e| e.to_string())
    }

    #[test]
    fn quickstart_config_parses() {
        let text = include_str!("../../../examples/quickstart/keyd.toml");
        let c = parse(text).unwrap();
        assert!(c.socket.is_absolute() && c.state_dir.is_absolute());
        assert_eq!(c.store.backend, Backend::Soft);
    }

    #[test]
    fn full_config_parses_with_relative_paths() {
        let c = parse(
            "socket = \"run/k.sock\"\nstate_dir = \"/var/lib/k\"\nsocket_group = 7\n[limits]\nmax_body_bytes = 2048\n\
             [[principal]]\nuid = 1000\nkeys = [\"a*\"]\nexport = [\"dev\"]\n[[principal]]\nuid = \"self\"\nkeys = [\"*\"]\n",
        )
        .unwrap();
        assert_eq!(c.socket, Path::new("/etc/edgesec/run/k.sock"));
        assert_eq!(c.state_dir, Path::new("/var/lib/k"));
        assert_eq!(c.socket_group, Some(7));
        assert_eq!(c.limits.max_body_bytes, 2048);
        assert_eq!(c.limits.max_connections_per_uid, 32);
        assert!(c.principals.may_use(1000, "abc"));
        assert!(c.principals.may_export(1000, "dev"));
        assert!(c.principals.may_use(unsafe { libc::geteuid() }, "anything"));
    }

    #[test]
    fn tpm_owner_auth_keys_parse() {
        let base = "socket = \"s\"\nstate_dir = \"s\"\n[store]\nseal_master_key = \"tpm\"\n";
        let c = parse(&format!(
            "{base}[tpm]\nowner_auth_file = \"secrets/owner.auth\"\nallow_empty_owner_auth = true\n"
        ))
        .unwrap();
        assert_eq!(
            c.tpm.owner_auth_file.as_deref(),
            Some(Path::new("/etc/edgesec/secrets/owner.auth"))
        );
        assert!(c.tpm.allow_empty_owner_auth && c.store.seal_master_key);
        let c = parse(&format!(
            "{base}[tpm]\nowner_auth_file = \"/run/keys/owner\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.tpm.owner_auth_file.as_deref(),
            Some(Path::new("/run/keys/owner"))
        );
        assert!(!c.tpm.allow_empty_owner_auth);
        // Neither key given (or no [tpm] at all): no file, and an empty owner auth is refused.
        for text in [base.to_string(), format!("{base}[tpm]\n")] {
            let c = parse(&text).unwrap();
            assert_eq!(c.tpm.owner_auth_file, None);
            assert!(!c.tpm.allow_empty_owner_auth);
        }
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (text, needle) in [
            ("state_dir = \"s\"\n", "missing field `socket`"),
            ("socket = 5\nstate_dir = \"s\"\n", "key `socket`"),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[store]\nbackend = \"hsm\"\n",
                "key `store.backend`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[limits]\nmax_body_bytes = 1\n",
                "key `limits.max_body_bytes`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[[principal]]\nuid = \"root\"\nkeys = []\n",
                "key `principal[0].uid`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[[principal]]\nuid = 1\nkeys = [\"\"]\n",
                "key `principal[0].keys`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\nsokcet = 1\n",
                "unknown field `sokcet`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[tpm]\nallow_empty_owner_auth = \"yes\"\n",
                "key `tpm.allow_empty_owner_auth`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[tpm]\nowner_auth_file = \"\"\n",
                "key `tpm.owner_auth_file`",
            ),
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[tpm]\nowner_auth_file = 5\n",
                "key `tpm.owner_auth_file`",
            ),
            // The value itself never goes in keyd.toml.
            (
                "socket = \"s\"\nstate_dir = \"s\"\n[tpm]\nowner_auth = \"x\"\n",
                "unknown field `owner_auth`",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(FILE) && e.contains(needle), "{text:?}: {e}");
        }
    }
}
