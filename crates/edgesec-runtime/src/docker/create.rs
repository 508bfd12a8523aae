//! The container a module becomes: its `createOptions` (Docker `ContainerCreate` JSON) merged
//! with what edgesec adds, as IoT Edge does it.
//!
//! - Environment: the daemon's (IoT Edge variables, then the spec's `env`) first; entries of
//!   `createOptions.Env` replace those with the same key.
//! - Labels: the module's own, then edgesec's (`io.edgesec.*`: which daemon instance created
//!   it, for which module) and IoT Edge's owner and original-image labels, so existing tools
//!   (`iotedge list`, edgeAgent's own lists) recognise the container.
//! - Mounts: the daemon's bind mounts (the module's workload socket at the path
//!   `IOTEDGE_WORKLOADURI` names inside) as `HostConfig.Mounts` of type bind, which fail when the
//!   source is missing instead of creating a directory there as `Binds` would.
//! - Network: the configured one, unless `HostConfig.NetworkMode` is given.
//! - With `allow_elevated_docker_permissions = false`: `Privileged` forced off, `CapAdd`
//!   dropped, `CHOWN` and `SETUID` added to `CapDrop` (IoT Edge's rule).

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};

use crate::error::RuntimeError;
use crate::types::DockerSettings;

/// edgesec's labels.
pub const LABEL_INSTANCE: &str = "io.edgesec.instance";
pub const LABEL_MODULE: &str = "io.edgesec.module";
/// IoT Edge's labels.
pub const LABEL_OWNER: &str = "net.azure-devices.edge.owner";
pub const OWNER_VALUE: &str = "Microsoft.Azure.Devices.Edge.Agent";
pub const LABEL_ORIGINAL_IMAGE: &str = "net.azure-devices.edge.original-image";

/// Capabilities IoT Edge drops when elevated permissions are not allowed.
const DROPPED_CAPS: [&str; 2] = ["CHOWN", "SETUID"];

/// What, besides the module's settings, shapes its container.
#[derive(Debug, Clone)]
pub struct BuildOptions<'a> {
    pub network: &'a str,
    pub allow_elevated: bool,
    pub instance: &'a str,
}

/// The container name of a module: the name without a leading `$` (`$edgeHub` runs as
/// `edgeHub`, as in IoT Edge). Docker allows `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn container_name(module: &str) -> Result<String, RuntimeError> {
    let name = module.strip_prefix('$').unwrap_or(module);
    let mut bytes = name.bytes();
    let ok = name.len() >= 2
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(RuntimeError::InvalidName {
            name: module.to_owned(),
            reason: "a container module's name must be 2 or more of the characters \
                     [a-zA-Z0-9_.-], starting with a letter or digit (after an optional '$')"
                .into(),
        })
    }
}

/// The `ContainerCreate` body of a module. Warnings (what the restrictive setting removed) go
/// to the log.
pub fn build_body(
    module: &str,
    settings: &DockerSettings,
    env: Vec<(String, String)>,
    opts: &BuildOptions<'_>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidSettings {
        module: module.to_owned(),
        reason,
    };
    if settings.image.trim().is_empty() {
        return Err(invalid("settings.image must not be empty".into()));
    }
    let mut body: ContainerCreateBody =
        serde_json::from_value(serde_json::Value::Object(settings.create_options.clone()))
            .map_err(|e| invalid(format!("invalid Docker config: {e}")))?;
    body.image = Some(settings.image.clone());
    body.env = Some(merge_env(env, body.env.take().unwrap_or_default()));

    let labels = body.labels.get_or_insert_with(HashMap::new);
    labels.insert(LABEL_INSTANCE.into(), opts.instance.into());
    labels.insert(LABEL_MODULE.into(), module.into());
    labels.insert(LABEL_OWNER.into(), OWNER_VALUE.into());
    labels.insert(LABEL_ORIGINAL_IMAGE.into(), settings.image.clone());

    let host = body.host_config.get_or_insert_with(HostConfig::default);
    if host.network_mode.as_deref().is_none_or(str::is_empty) {
        host.network_mode = Some(opts.network.to_owned());
    }
    let mounts = host.mounts.get_or_insert_with(Vec::new);
    for m in &settings.mounts {
        let target = m.target.to_string_lossy().into_owned();
        mounts.retain(|existing| existing.target.as_deref() != Some(target.as_str()));
        mounts.push(Mount {
            target: Some(target),
            source: Some(m.source.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(m.read_only),
            ..Default::default()
        });
    }
    if !opts.allow_elevated {
        restrict(module, host);
    }
    Ok(body)
}

/// `base` first, then `overrides` (`KEY=value` strings) replacing entries with the same key.
fn merge_env(base: Vec<(String, String)>, overrides: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(base.len() + overrides.len());
    let key_of = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_owned();
    let over_keys: Vec<String> = overrides.iter().map(|o| key_of(o)).collect();
    for (k, v) in base {
        if !over_keys.contains(&k) {
            out.push(format!("{k}={v}"));
        }
    }
    out.extend(overrides);
    out
}

/// IoT Edge's rule for `allow_elevated_docker_permissions = false`.
fn restrict(module: &str, host: &mut HostConfig) {
    if host.privileged == Some(true) {
        tracing::warn!(
            module,
            "createOptions asks for a privileged container; not allowed here (allow_elevated_docker_permissions = false): running it unprivileged"
        );
    }
    host.privileged = Some(false);
    if let Some(added) = host.cap_add.take().filter(|c| !c.is_empty()) {
        tracing::warn!(module, capabilities = ?added, "createOptions adds capabilities; not allowed here (allow_elevated_docker_permissions = false): dropped");
    }
    let drop = host.cap_drop.get_or_insert_with(Vec::new);
    for cap in DROPPED_CAPS {
        let present = drop.iter().any(|c| {
            let c = c.to_ascii_uppercase();
            c == cap || c.strip_prefix("CAP_") == Some(cap)
        });
        if !present {
            drop.push(cap.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::types::{BindMount, PullPolicy};

    fn settings(create_options: serde_json::Value) -> DockerSettings {
        DockerSettings {
            image: "localhost/demo:1".into(),
            create_options: create_options.as_object().cloned().unwrap_or_default(),
            pull_policy: PullPolicy::Never,
            mounts: vec![BindMount {
                source: PathBuf::from("/run/edgesec/mnt/m1.sock"),
                target: PathBuf::from("/var/run/iotedge/workload.sock"),
                read_only: false,
            }],
        }
    }

    fn opts(allow_elevated: bool) -> BuildOptions<'static> {
        BuildOptions {
            network: "none",
            allow_elevated,
            instance: "edgesec-abc",
        }
    }

    fn env() -> Vec<(String, String)> {
        vec![
            ("IOTEDGE_MODULEID".into(), "m1".into()),
            ("A".into(), "from-spec".into()),
        ]
    }

    #[test]
    fn merges_env_labels_mounts_and_network() {
        let s = settings(json!({
            "Env": ["A=from-create-options", "B=2"],
            "Labels": {"mine": "yes", "io.edgesec.module": "forged"},
            "Cmd": ["sleep", "1"],
            "HostConfig": {"Memory": 67108864,
                "Mounts": [{"Type": "bind", "Source": "/tmp/x", "Target": "/var/run/iotedge/workload.sock"}]}
        }));
        let b = build_body("m1", &s, env(), &opts(true)).unwrap();
        assert_eq!(b.image.as_deref(), Some("localhost/demo:1"));
        assert_eq!(
            b.env.unwrap(),
            ["IOTEDGE_MODULEID=m1", "A=from-create-options", "B=2"]
        );
        let labels = b.labels.unwrap();
        assert_eq!(labels["mine"], "yes");
        assert_eq!(labels[LABEL_MODULE], "m1", "our labels win");
        assert_eq!(labels[LABEL_INSTANCE], "edgesec-abc");
        assert_eq!(labels[LABEL_OWNER], OWNER_VALUE);
        assert_eq!(labels[LABEL_ORIGINAL_IMAGE], "localhost/demo:1");
        assert_eq!(b.cmd.unwrap(), ["sleep", "1"]);
        let h = b.host_config.unwrap();
        assert_eq!(h.memory, Some(67108864));
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        let mounts = h.mounts.unwrap();
        assert_eq!(
            mounts.len(),
            1,
            "the module cannot replace its socket mount"
        );
        assert_eq!(
            mounts[0].source.as_deref(),
            Some("/run/edgesec/mnt/m1.sock")
        );
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert_eq!(h.privileged, None, "untouched when elevated is allowed");
    }

    #[test]
    fn a_given_network_mode_stays() {
        let s = settings(json!({"HostConfig": {"NetworkMode": "container:demo-server"}}));
        let b = build_body("m1", &s, env(), &opts(true)).unwrap();
        assert_eq!(
            b.host_config.unwrap().network_mode.as_deref(),
            Some("container:demo-server")
        );
    }

    #[test]
    fn restrictive_setting_strips_privileged_and_capabilities() {
        let s = settings(
            json!({"HostConfig": {"Privileged": true, "CapAdd": ["NET_ADMIN", "SYS_ADMIN"],
            "CapDrop": ["cap_chown"]}}),
        );
        let h = build_body("m1", &s, env(), &opts(false))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.cap_add, None);
        assert_eq!(h.cap_drop.unwrap(), ["cap_chown", "SETUID"]);
        let h = build_body("m1", &settings(json!({})), env(), &opts(false))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(h.cap_drop.unwrap(), ["CHOWN", "SETUID"]);
    }

    #[test]
    fn bad_create_options_are_named() {
        let s = settings(json!({"HostConfig": {"Privileged": "yes"}}));
        let e = build_body("m1", &s, env(), &opts(true))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("module m1: invalid Docker config:"), "{e}");
        let mut s = settings(json!({}));
        s.image = " ".into();
        assert!(build_body("m1", &s, env(), &opts(true)).is_err());
    }

    #[test]
    fn container_names() {
        assert_eq!(container_name("$edgeHub").unwrap(), "edgeHub");
        assert_eq!(container_name("demo-server").unwrap(), "demo-server");
        for bad in ["a", "-x", "my module", "ü1", "$"] {
            assert!(container_name(bad).is_err(), "{bad}");
        }
    }
}
