//! Parsing and validating the deployment file. Every error names the JSON path it is about.

use std::collections::BTreeMap;

use edgesec_api::mgmt::{EnvVar, ModuleConfig, ModuleSpec, ProcessSettings};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    DEFAULT_STARTUP_ORDER, Deployment, DeploymentError, DesiredModule, DesiredStatus, ModuleType,
    RestartPolicy, SCHEMA_VERSIONS,
};
use crate::name::check_module_name;
use crate::strict::{Object, unique_map};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    #[allow(dead_code)] // checked first, through `Probe`
    schema_version: String,
    #[serde(default, deserialize_with = "unique_map")]
    modules: BTreeMap<String, Object<RawModule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawModule {
    #[serde(rename = "type")]
    module_type: ModuleType,
    #[serde(default)]
    status: DesiredStatus,
    #[serde(default)]
    restart_policy: RestartPolicy,
    #[serde(default = "default_order")]
    startup_order: u32,
    #[serde(default)]
    image_pull_policy: Option<String>,
    settings: Map<String, Value>,
    #[serde(default, deserialize_with = "unique_map")]
    env: BTreeMap<String, Object<RawEnv>>,
}

fn default_order() -> u32 {
    DEFAULT_STARTUP_ORDER
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    value: String,
}

/// `settings` of a `docker` module: passed to the daemon as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DockerSettings {
    image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    create_options: Option<Map<String, Value>>,
}

/// Only `schemaVersion`, read before the rest so that a file of a newer schema is reported as
/// such rather than as a list of unknown fields.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<Value>,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> DeploymentError {
    DeploymentError {
        path: printable(&path.into()),
        message: message.into(),
    }
}

/// Parses and validates a whole deployment file.
pub fn parse(text: &[u8]) -> Result<Deployment, DeploymentError> {
    if let Ok(Probe {
        schema_version: Some(Value::String(version)),
    }) = serde_json::from_slice(text)
        && !SCHEMA_VERSIONS.contains(&version.as_str())
    {
        return Err(err(
            "schemaVersion",
            format!(
                "unsupported schema version {version:?}; this agent reads {}",
                SCHEMA_VERSIONS.join(", ")
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let Object(raw): Object<RawFile> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        err(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    de.end().map_err(|e| err("", e.to_string()))?;

    let mut modules = BTreeMap::new();
    for (name, Object(raw)) in raw.modules {
        check_module_name(&name)
            .map_err(|why| err("modules", format!("invalid module name {name:?}: {why}")))?;
        let module = module(&name, raw)?;
        modules.insert(name, module);
    }
    Ok(Deployment { modules })
}

fn module(name: &str, raw: RawModule) -> Result<DesiredModule, DeploymentError> {
    let at = |rest: &str| format!("modules.{name}.{rest}");
    let settings = match raw.module_type {
        ModuleType::Process => {
            let s: ProcessSettings = typed(&at("settings"), raw.settings)?;
            if s.command.is_empty() {
                return Err(err(at("settings.command"), "must not be empty"));
            }
            to_value(&s)
        }
        ModuleType::Docker => {
            let s: DockerSettings = typed(&at("settings"), raw.settings)?;
            if s.image.is_empty() {
                return Err(err(at("settings.image"), "must not be empty"));
            }
            to_value(&s)
        }
    };
    if let Some(policy) = &raw.image_pull_policy
        && !["on-create", "never"]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(policy))
    {
        return Err(err(
            at("imagePullPolicy"),
            format!("unknown value {policy:?}, expected \"on-create\" or \"never\""),
        ));
    }
    let mut env = Vec::with_capacity(raw.env.len());
    for (key, Object(RawEnv { value })) in raw.env {
        if let Err(why) = check_env_name(&key) {
            return Err(err(
                at("env"),
                format!("invalid variable name {key:?}: {why}"),
            ));
        }
        if value.contains('\0') {
            return Err(err(at(&format!("env.{key}.value")), "must not contain NUL"));
        }
        env.push(EnvVar { key, value });
    }
    // `raw.env` is a BTreeMap, so `env` is sorted by key: the same file always gives the
    // same spec, and comparing it with what the daemon reports is stable.
    Ok(DesiredModule {
        spec: ModuleSpec {
            name: name.to_owned(),
            module_type: raw.module_type.as_str().to_owned(),
            image_pull_policy: raw.image_pull_policy,
            config: ModuleConfig { settings, env },
        },
        status: raw.status,
        restart_policy: raw.restart_policy,
        startup_order: raw.startup_order,
    })
}

/// Reads `settings` as the type-specific struct, naming the path below `prefix` on error.
fn typed<T: DeserializeOwned>(
    prefix: &str,
    settings: Map<String, Value>,
) -> Result<T, DeploymentError> {
    serde_path_to_error::deserialize(Value::Object(settings)).map_err(|e| {
        let inner = e.path().to_string();
        let path = match inner.as_str() {
            "." => prefix.to_owned(),
            p if p.starts_with('[') => format!("{prefix}{p}"),
            p => format!("{prefix}.{p}"),
        };
        err(path, e.into_inner().to_string())
    })
}

fn to_value<T: Serialize>(settings: &T) -> Value {
    // These types hold only strings, lists and JSON objects: serializing cannot fail.
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

fn check_env_name(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("must not be empty");
    }
    if key.contains('=') {
        return Err("must not contain '='");
    }
    if key.chars().any(char::is_control) {
        return Err("must not contain NUL or other control characters");
    }
    Ok(())
}

/// A path safe to print in one log line: control characters (possible in names, which
/// serde reports raw) are escaped.
fn printable(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
