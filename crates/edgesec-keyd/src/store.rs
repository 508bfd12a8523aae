//! The `[store]` section of keyd.toml, and opening the key store it describes.
//!
//! ```toml
//! [store]
//! backend = "soft"                  # "soft" or "pkcs11": where ids no route names live
//!
//! [store.pkcs11]                    # needed when anything uses pkcs11
//! library = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "edgesec"           # the token is found by label, never by slot number
//! pin_file = "pkcs11.pin"           # the user PIN; 0600, owned by keyd's user
//! max_sessions = 8                  # optional
//!
//! [[store.route]]                   # first match wins
//! keys = ["edgesec/ca/*", "edgesec/device-key"]
//! backend = "pkcs11"
//!
//! [store.preloaded]                 # keys made on the token beforehand (always pkcs11)
//! "device-key-from-factory" = "pkcs11:token=edgesec;object=factory-key"
//! ```
//!
//! The PIN is read from `pin_file` only: never a command-line argument or an environment
//! variable, which other local users could read from `/proc`. (A `pin_key` kept in the soft store
//! would add nothing yet: the soft store's master key is a file beside it, with the same
//! protection as a 0600 PIN file, until it is sealed to a TPM.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgesec_config::ConfigError;
use edgesec_keys::pkcs11::uri::Pkcs11Uri;
use edgesec_keys::pkcs11::{Pkcs11Config, Pkcs11KeyStore};
use edgesec_keys::soft::SoftKeyStore;
use edgesec_keys::{KeyId, KeyStore, RoutedKeyStore};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Soft,
    Pkcs11,
    /// The TPM (`[tpm]`; see `platform.rs` and `edgesec_keys::tpm`).
    Tpm,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Soft => "soft",
            Backend::Pkcs11 => "pkcs11",
            Backend::Tpm => "tpm",
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    #[serde(default)]
    backend: Backend,
    #[serde(default)]
    pkcs11: Option<RawPkcs11>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    preloaded: BTreeMap<String, String>,
    /// `"tpm"`: the soft store's master key is sealed to the TPM (see `sealing.rs`).
    #[serde(default)]
    seal_master_key: Option<SealWith>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum SealWith {
    Tpm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPkcs11 {
    library: PathBuf,
    token_label: String,
    pin_file: PathBuf,
    #[serde(default)]
    max_sessions: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    keys: Vec<String>,
    backend: Backend,
}

/// `[store.pkcs11]`, with absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Settings {
    pub library: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    pub max_sessions: usize,
}

/// One `[[store.route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub keys: Vec<String>,
    pub backend: Backend,
}

/// A validated `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: Backend,
    pub pkcs11: Option<Pkcs11Settings>,
    pub routes: Vec<Route>,
    pub preloaded: Vec<(KeyId, String)>,
    /// The soft store's master key is sealed to the TPM.
    pub seal_master_key: bool,
}

impl StoreConfig {
    pub(crate) fn from_raw(file: &Path, raw: RawStore) -> Result<Self, ConfigError> {
        let bad = |key: &str, msg: String| ConfigError::invalid(file, key, msg);
        let pkcs11 = match raw.pkcs11 {
            None => None,
            Some(p) => {
                if p.token_label.is_empty() || p.token_label.len() > 32 {
                    return Err(bad(
                        "store.pkcs11.token_label",
                        "must be 1 to 32 bytes (a PKCS#11 token label)".into(),
                    ));
                }
                let max_sessions = p.max_sessions.unwrap_or(Pkcs11Config::DEFAULT_MAX_SESSIONS);
                if !(1..=64).contains(&max_sessions) {
                    return Err(bad(
                        "store.pkcs11.max_sessions",
                        "must be between 1 and 64".into(),
                    ));
                }
                Some(Pkcs11Settings {
                    library: edgesec_config::resolve(file, &p.library),
                    token_label: p.token_label,
                    pin_file: edgesec_config::resolve(file, &p.pin_file),
                    max_sessions,
                })
            }
        };
        let mut routes = Vec::new();
        for (i, r) in raw.route.into_iter().enumerate() {
            if r.keys.is_empty() || r.keys.iter().any(|k| k.is_empty() || k.len() > 200) {
                return Err(bad(
                    &format!("store.route[{i}].keys"),
                    "must list 1 or more key id patterns of 1 to 200 bytes".into(),
                ));
            }
            routes.push(Route {
                keys: r.keys,
                backend: r.backend,
            });
        }
        let mut preloaded = Vec::new();
        for (id, uri) in raw.preloaded {
            let key = format!("store.preloaded.{id:?}");
            let kid = KeyId::new(id.as_str()).map_err(|e| bad(&key, e.to_string()))?;
            let Some(p) = &pkcs11 else {
                return Err(bad(
                    "store.pkcs11",
                    "is required: preloaded keys live on a PKCS#11 token".into(),
                ));
            };
            Pkcs11Uri::parse(&uri)
                .and_then(|u| u.check_preloaded(&p.token_label, &p.library.display().to_string()))
                .map_err(|e| bad(&key, format!("{uri:?}: {e}")))?;
            preloaded.push((kid, uri));
        }
        let uses_pkcs11 =
            raw.backend == Backend::Pkcs11 || routes.iter().any(|r| r.backend == Backend::Pkcs11);
        if uses_pkcs11 && pkcs11.is_none() {
            return Err(bad(
                "store.pkcs11",
                "is required: the store's backend or a route is \"pkcs11\"".into(),
            ));
        }
        Ok(StoreConfig {
            backend: raw.backend,
            pkcs11,
            routes,
            preloaded,
            seal_master_key: raw.seal_master_key == Some(SealWith::Tpm),
        })
    }

    /// Whether any key id can land on `backend`.
    pub fn uses(&self, backend: Backend) -> bool {
        self.backend == backend
            || self.routes.iter().any(|r| r.backend == backend)
            || (backend == Backend::Pkcs11 && !self.preloaded.is_empty())
    }

    /// One line for the log: which backend serves what.
    pub fn describe(&self) -> String {
        let mut s = format!("default {}", self.backend.name());
        for r in &self.routes {
            s.push_str(&format!("; {} -> {}", r.keys.join(","), r.backend.name()));
        }
        if !self.preloaded.is_empty() {
            s.push_str(&format!("; {} preloaded -> pkcs11", self.preloaded.len()));
        }
        s
    }
}

/// Opens the store `[store]` describes: the soft store in `state_dir`, the PKCS#11 token, or
/// both behind a [`RoutedKeyStore`] (preloaded ids first, then the routes in order, then the
/// default). A failure names what is wrong: the token label, the PIN file, the library.
pub fn open(config: &StoreConfig, state_dir: &Path) -> Result<Arc<dyn KeyStore>, String> {
    open_with(config, state_dir, Extras::default())
}

/// What keyd's start gives the store besides its config: the one TPM connection and the soft
/// store's unsealed master key.
#[derive(Default)]
pub struct Extras {
    pub tpm: Option<edgesec_keys::tpm::Tpm>,
    pub soft_master: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// As [`open`], with a TPM (for `backend = "tpm"` and routes to it; its keys live under
/// `state_dir/tpm`) and a master key unsealed from it.
pub fn open_with(
    config: &StoreConfig,
    state_dir: &Path,
    extras: Extras,
) -> Result<Arc<dyn KeyStore>, String> {
    let soft = || -> Result<Arc<dyn KeyStore>, String> {
        let store = match &extras.soft_master {
            Some(k) => SoftKeyStore::open_with_master_key(state_dir, k),
            None => SoftKeyStore::open(state_dir),
        };
        Ok(Arc::new(store.map_err(|e| e.to_string())?))
    };
    let tpm_store = || -> Result<Arc<dyn KeyStore>, String> {
        let tpm = extras
            .tpm
            .clone()
            .ok_or("the store uses the TPM but none is connected")?;
        Ok(Arc::new(
            edgesec_keys::tpm::TpmKeyStore::open(&state_dir.join("tpm"), tpm)
                .map_err(|e| format!("cannot open the TPM key store: {e}"))?,
        ))
    };
    if config.uses(Backend::Tpm) && !config.uses(Backend::Pkcs11) {
        if !config.uses(Backend::Soft) {
            return tpm_store();
        }
        let rules = config
            .routes
            .iter()
            .flat_map(|r| {
                r.keys
                    .iter()
                    .map(|k| (k.clone(), r.backend.name().to_owned()))
            })
            .collect();
        let routed = RoutedKeyStore::new(
            vec![("soft".into(), soft()?), ("tpm".into(), tpm_store()?)],
            rules,
            config.backend.name(),
        )
        .map_err(|e| e.to_string())?;
        return Ok(Arc::new(routed));
    }
    if !config.uses(Backend::Pkcs11) {
        if config.pkcs11.is_some() {
            tracing::warn!(
                "[store.pkcs11] is configured but no key uses it; the token is not opened"
            );
        }
        return soft();
    }
    let p = config
        .pkcs11
        .as_ref()
        .expect("validated: pkcs11 is configured");
    let token: Arc<dyn KeyStore> = Arc::new(
        Pkcs11KeyStore::open(&Pkcs11Config {
            library: p.library.clone(),
            token_label: p.token_label.clone(),
            pin_file: p.pin_file.clone(),
            max_sessions: p.max_sessions,
            preloaded: config.preloaded.clone(),
        })
        .map_err(|e| format!("cannot open the PKCS#11 token: {e}"))?,
    );
    if !config.uses(Backend::Soft) && !config.uses(Backend::Tpm) {
        return Ok(token);
    }
    let mut rules: Vec<(String, String)> = config
        .preloaded
        .iter()
        .map(|(id, _)| (id.to_string(), "pkcs11".to_owned()))
        .collect();
    for r in &config.routes {
        rules.extend(
            r.keys
                .iter()
                .map(|k| (k.clone(), r.backend.name().to_owned())),
        );
    }
    let mut parts = vec![("soft".into(), soft()?), ("pkcs11".into(), token)];
    if config.uses(Backend::Tpm) {
        parts.push(("tpm".into(), tpm_store()?));
    }
    let routed =
        RoutedKeyStore::new(parts, rules, config.backend.name()).map_err(|e| e.to_string())?;
    Ok(Arc::new(routed))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const FILE: &str = "/etc/edgesec/keyd.toml";
    const HEAD: &str = "socket = \"s\"\nstate_dir = \"d\"\n";
    const P11: &str = "[store.pkcs11]\nlibrary = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"edgesec\"\npin_file = \"pkcs11.pin\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(std::path::Path::new(FILE), &format!("{HEAD}{text}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn softhsm_example_parses() {
        let text = include_str!("../../../examples/softhsm/keyd.toml");
        let c = Config::parse(std::path::Path::new(FILE), text).unwrap();
        let s = &c.store;
        assert_eq!(s.backend, super::Backend::Soft);
        let p = s.pkcs11.as_ref().unwrap();
        assert_eq!(p.pin_file, std::path::Path::new("/etc/edgesec/pkcs11.pin"));
        assert_eq!(p.token_label, "edgesec");
        assert!(s.routes[0].keys.contains(&"edgesec/ca/*".to_owned()));
        assert_eq!(s.routes[0].backend, super::Backend::Pkcs11);
    }

    #[test]
    fn routes_preloaded_keys_and_defaults() {
        let c = parse(&format!(
            "[store]\nbackend = \"pkcs11\"\n{P11}max_sessions = 3\n[[store.route]]\nkeys = [\"tmp/*\"]\nbackend = \"soft\"\n\
             [store.preloaded]\n\"factory\" = \"pkcs11:token=edgesec;object=factory-key\"\n"
        ))
        .unwrap();
        let s = &c.store;
        assert_eq!(s.backend, super::Backend::Pkcs11);
        assert_eq!(s.pkcs11.as_ref().unwrap().max_sessions, 3);
        assert_eq!(s.routes.len(), 1);
        assert_eq!(s.preloaded[0].0.as_str(), "factory");
        assert!(s.describe().contains("tmp/* -> soft"), "{}", s.describe());
        let c = parse(
            P11.replace("[store.pkcs11]", "[store]\n[store.pkcs11]")
                .as_str(),
        )
        .unwrap();
        assert_eq!(
            c.store.pkcs11.unwrap().max_sessions,
            edgesec_keys::pkcs11::Pkcs11Config::DEFAULT_MAX_SESSIONS
        );
    }

    #[test]
    fn bad_store_sections_name_the_key() {
        for (text, needle) in [
            ("[store]\nbackend = \"pkcs11\"\n", "key `store.pkcs11`"),
            (
                "[[store.route]]\nkeys = [\"a\"]\nbackend = \"pkcs11\"\n",
                "key `store.pkcs11`",
            ),
            (
                "[store.preloaded]\n\"k\" = \"pkcs11:object=x\"\n",
                "key `store.pkcs11`",
            ),
            (
                &format!("{P11}[[store.route]]\nkeys = []\nbackend = \"pkcs11\"\n"),
                "key `store.route[0].keys`",
            ),
            (
                &format!("{P11}[[store.route]]\nkeys = [\"a\"]\nbackend = \"tpm2\"\n"),
                "store.route",
            ),
            (
                &format!("{P11}[store.preloaded]\n\"k\" = \"pkcs11:token=other;object=x\"\n"),
                "key `store.preloaded.\"k\"`",
            ),
            (
                &format!("{P11}[store.preloaded]\n\"../k\" = \"pkcs11:object=x\"\n"),
                "key id",
            ),
            (
                &format!("{P11}[store.preloaded]\n\"k\" = \"pkcs11:object=x?pin-value=1234\"\n"),
                "PIN",
            ),
            (
                &P11.replace("token_label = \"edgesec\"", "token_label = \"\""),
                "key `store.pkcs11.token_label`",
            ),
            (
                &format!("{P11}max_sessions = 0\n"),
                "key `store.pkcs11.max_sessions`",
            ),
            (
                &P11.replace("pin_file = \"pkcs11.pin\"", "pin = \"1234\""),
                "unknown field `pin`",
            ),
            (
                &P11.replace("pin_file = \"pkcs11.pin\"\n", ""),
                "missing field `pin_file`",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(FILE) && e.contains(needle), "{text:?}: {e}");
        }
    }
}
