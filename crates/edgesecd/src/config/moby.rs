//! `[moby_runtime]`: the container engine (dockerd, or podman's Docker-compatible service), and
//! the container settings of `[agent]` when the agent runs as a container.
//!
//! ```toml
//! allow_elevated_docker_permissions = false   # IoT Edge's place for it; [moby_runtime] too
//! [moby_runtime]
//! uri = "unix:///var/run/docker.sock"         # or unix:///run/podman/podman.sock
//! network = "azure-iot-edge"                  # NetworkMode of modules whose createOptions give none
//! allow_elevated_docker_permissions = true    # false: no Privileged, no CapAdd, CHOWN/SETUID dropped
//! remove_orphans = false                      # remove this daemon's containers no module owns
//! ```

use std::path::Path;

use edgesec_config::ConfigError;
use serde::Deserialize;

/// The container engine edgesecd talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobyConfig {
    pub uri: String,
    pub network: String,
    pub allow_elevated_docker_permissions: bool,
    pub remove_orphans: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMoby {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    allow_elevated_docker_permissions: Option<bool>,
    #[serde(default)]
    remove_orphans: bool,
}

pub const DEFAULT_URI: &str = "unix:///var/run/docker.sock";
pub const DEFAULT_NETWORK: &str = "azure-iot-edge";

/// Validates `[moby_runtime]` and the top-level `allow_elevated_docker_permissions`. The engine
/// is configured when the table is present, or when the agent is a container (defaults then).
pub(super) fn validate(
    file: &Path,
    raw: Option<RawMoby>,
    top_level_elevated: Option<bool>,
    agent_is_container: bool,
) -> Result<Option<MobyConfig>, ConfigError> {
    let raw = match raw {
        Some(r) => r,
        None if agent_is_container || top_level_elevated.is_some() => RawMoby {
            uri: None,
            network: None,
            allow_elevated_docker_permissions: None,
            remove_orphans: false,
        },
        None => return Ok(None),
    };
    let uri = raw.uri.unwrap_or_else(|| DEFAULT_URI.into());
    let path = uri.strip_prefix("unix://").unwrap_or("");
    if !path.starts_with('/') {
        return Err(ConfigError::invalid(
            file,
            "moby_runtime.uri",
            format!("{uri:?}: expected unix:///absolute/path/to/the/engine.sock"),
        ));
    }
    let network = raw.network.unwrap_or_else(|| DEFAULT_NETWORK.into());
    if network.is_empty() || network.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid(
            file,
            "moby_runtime.network",
            format!("{network:?} is not a network name"),
        ));
    }
    let elevated = match (top_level_elevated, raw.allow_elevated_docker_permissions) {
        (Some(a), Some(b)) if a != b => {
            return Err(ConfigError::invalid(
                file,
                "moby_runtime.allow_elevated_docker_permissions",
                "differs from the top-level allow_elevated_docker_permissions; give it once",
            ));
        }
        (a, b) => a.or(b).unwrap_or(true),
    };
    Ok(Some(MobyConfig {
        uri,
        network,
        allow_elevated_docker_permissions: elevated,
        remove_orphans: raw.remove_orphans,
    }))
}

/// `createOptions` of a container agent, from a TOML table (Docker's JSON shape).
pub(super) fn create_options_json(
    file: &Path,
    table: Option<toml::Table>,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let Some(table) = table else {
        return Ok(Default::default());
    };
    match serde_json::to_value(table) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) | Err(_) => Err(ConfigError::invalid(
            file,
            "agent.create_options",
            "must be a table in Docker's ContainerCreate shape",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    const BASE: &str = "state_dir = \"s\"\n[keyd]\nsocket = \"k\"\n[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/edgesec/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_container_quickstart_config_loads() {
        let c = parse(include_str!(
            "../../../../examples/quickstart-containers/config.toml"
        ))
        .unwrap();
        let m = c.moby.unwrap();
        assert_eq!(m.uri, "unix:///var/run/docker.sock");
        assert_eq!(m.network, "none");
        assert!(!m.allow_elevated_docker_permissions);
        assert_eq!(c.agent.agent_type, "docker");
        assert_eq!(
            c.agent.image.as_deref(),
            Some("localhost/edgesec/agent:quickstart")
        );
        assert_eq!(
            c.agent.deployment,
            Path::new("/etc/edgesec/deployment.json")
        );
    }

    #[test]
    fn no_engine_unless_asked_for() {
        assert_eq!(parse(BASE).unwrap().moby, None);
    }

    #[test]
    fn engine_settings_and_defaults() {
        let c = parse(&format!("{BASE}[moby_runtime]\n")).unwrap();
        let m = c.moby.unwrap();
        assert_eq!(m.uri, "unix:///var/run/docker.sock");
        assert_eq!(m.network, "azure-iot-edge");
        assert!(m.allow_elevated_docker_permissions, "IoT Edge's default");
        assert!(!m.remove_orphans);
        let c = parse(&format!(
            "allow_elevated_docker_permissions = false\n{BASE}[moby_runtime]\nuri = \"unix:///run/podman/podman.sock\"\nnetwork = \"none\"\nremove_orphans = true\n"
        ))
        .unwrap();
        let m = c.moby.unwrap();
        assert_eq!(m.uri, "unix:///run/podman/podman.sock");
        assert_eq!(m.network, "none");
        assert!(!m.allow_elevated_docker_permissions);
        assert!(m.remove_orphans);
    }

    #[test]
    fn a_container_agent_and_its_options() {
        let c = parse(&format!(
            "{BASE}[agent]\ntype = \"docker\"\nimage = \"localhost/agent:1\"\nimage_pull_policy = \"never\"\n\
             [agent.create_options.HostConfig]\nBinds = [\"/usr:/usr:ro\"]\n"
        ))
        .unwrap();
        assert!(c.moby.is_some(), "a container agent needs the engine");
        let a = c.agent;
        assert_eq!(a.agent_type, "docker");
        assert_eq!(a.image.as_deref(), Some("localhost/agent:1"));
        assert_eq!(a.image_pull_policy.as_deref(), Some("never"));
        assert_eq!(
            serde_json::Value::Object(a.create_options),
            serde_json::json!({"HostConfig": {"Binds": ["/usr:/usr:ro"]}})
        );
    }

    #[test]
    fn bad_engine_settings_name_the_key() {
        for (text, needle) in [
            (
                format!("{BASE}[moby_runtime]\nuri = \"tcp://1.2.3.4:2375\"\n"),
                "key `moby_runtime.uri`",
            ),
            (
                format!("{BASE}[moby_runtime]\nnetwork = \"a b\"\n"),
                "key `moby_runtime.network`",
            ),
            (
                format!(
                    "allow_elevated_docker_permissions = true\n{BASE}[moby_runtime]\nallow_elevated_docker_permissions = false\n"
                ),
                "key `moby_runtime.allow_elevated_docker_permissions`",
            ),
            (
                format!("{BASE}[moby_runtime]\nurl = \"x\"\n"),
                "unknown field `url`",
            ),
            (
                format!("{BASE}[agent]\ntype = \"docker\"\n"),
                "key `agent.image`",
            ),
            (
                format!("{BASE}[agent]\ntype = \"vm\"\n"),
                "key `agent.type`",
            ),
            (
                format!(
                    "{BASE}[agent]\ntype = \"docker\"\nimage = \"i\"\nimage_pull_policy = \"always\"\n"
                ),
                "key `agent.image_pull_policy`",
            ),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
