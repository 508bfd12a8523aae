//! Container (`docker`) modules in the daemon: their spec as IoT Edge sends it, the mounts and
//! environment edgesecd gives them, and reconciling with what the engine already runs.
//!
//! Inside a container the module's own workload socket (`<module_socket_dir>/<name>.sock`) is
//! bind-mounted at `/var/run/iotedge/workload.sock` and `IOTEDGE_WORKLOADURI` names that path;
//! a container agent also gets the management socket and its deployment file mounted at their
//! host paths. Bind sources must exist when the engine creates the container, so the module's
//! socket is opened before its container is created (and again before every start).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgesec_api::mgmt::ModuleSpec;
use edgesec_http::ApiError;
use edgesec_runtime::{
    BindMount, CompositeRuntime, DockerRuntime, DockerRuntimeConfig, DockerSettings, ModuleRuntime,
    ModuleSettings, ProcessRuntime, ProcessSettings, PullPolicy,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::daemon::Daemon;

/// Where a container module finds its workload socket.
pub const CONTAINER_WORKLOAD_SOCKET: &str = "/var/run/iotedge/workload.sock";

/// A checked module spec's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidSettings {
    Process(ProcessSettings),
    Docker(DockerSpec),
}

/// `settings` of a docker module, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    pub image: String,
    pub create_options: Map<String, Value>,
    pub pull_policy: PullPolicy,
}

/// IoT Edge's docker `settings`. `createOptions` is an object (edgeAgent sends one); a string
/// holding a JSON object, as deployment manifests write it, is accepted too. Registry `auth`
/// and `digest` are accepted and not used (nothing is pulled with credentials here).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDockerSettings {
    image: String,
    #[serde(default)]
    create_options: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    auth: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    digest: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    image_hash: Option<String>,
}

/// Checks the `settings` and `imagePullPolicy` of a docker module spec.
pub fn validate_docker(spec: &ModuleSpec) -> Result<DockerSpec, ApiError> {
    let pull_policy = match spec.image_pull_policy.as_deref() {
        None => PullPolicy::OnCreate,
        Some(p) => {
            PullPolicy::parse(p).ok_or_else(|| ApiError::bad_request("invalid imagePullPolicy"))?
        }
    };
    let raw: RawDockerSettings =
        serde_path_to_error::deserialize(&spec.config.settings).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid Docker config at \"{}\": {}",
                e.path(),
                e.inner()
            ))
        })?;
    if raw.image.trim().is_empty() || raw.image.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "invalid Docker config: settings.image must be an image reference",
        ));
    }
    let create_options = match raw.create_options {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str(&s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid Docker config: settings.createOptions must be a JSON object",
                ));
            }
        },
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid Docker config: settings.createOptions must be a JSON object",
            ));
        }
    };
    Ok(DockerSpec {
        image: raw.image,
        create_options,
        pull_policy,
    })
}

impl Daemon {
    /// Whether a module (by its spec) runs as a container.
    pub fn is_container(spec: &ModuleSpec) -> bool {
        spec.module_type == "docker"
    }

    /// The workload URI a module is told: its own socket's host path for a process, the fixed
    /// in-container path for a container.
    pub(crate) fn workload_uri(&self, spec: &ModuleSpec) -> String {
        if Self::is_container(spec) {
            format!("unix://{CONTAINER_WORKLOAD_SOCKET}")
        } else {
            edgesec_http::unix_uri(&self.module_socket(&spec.name))
        }
    }

    /// What the runtime gets for a checked spec: a process's command resolved, a container's
    /// mounts added.
    pub(crate) fn runtime_settings(&self, name: &str, valid: ValidSettings) -> ModuleSettings {
        match valid {
            ValidSettings::Process(p) => crate::modules::beside_daemon(p).into(),
            ValidSettings::Docker(d) => {
                let mut mounts = vec![BindMount {
                    source: self.module_socket(name),
                    target: PathBuf::from(CONTAINER_WORKLOAD_SOCKET),
                    read_only: false,
                }];
                if self.is_agent(name) {
                    let mgmt = self.config.management.socket.clone();
                    mounts.push(BindMount {
                        source: mgmt.clone(),
                        target: mgmt,
                        read_only: false,
                    });
                    let deployment = self.config.agent.deployment.clone();
                    if deployment.is_file() {
                        mounts.push(BindMount {
                            source: deployment.clone(),
                            target: deployment,
                            read_only: true,
                        });
                    }
                }
                DockerSettings {
                    image: d.image,
                    create_options: d.create_options,
                    pull_policy: d.pull_policy,
                    mounts,
                }
                .into()
            }
        }
    }

    /// `prepareupdate`: checks the spec, and pulls a container module's image when its policy
    /// is `on-create`.
    pub async fn prepare_module(&self, spec: &ModuleSpec) -> Result<(), ApiError> {
        let settings = crate::modules::validate_spec(spec)?;
        let settings = self.runtime_settings(&spec.name, settings);
        self.runtime
            .prepare(&spec.name, &settings)
            .await
            .map_err(|e| match e {
                e @ edgesec_runtime::RuntimeError::ImagePull { .. } => {
                    ApiError::bad_request(e.to_string())
                }
                other => ApiError::internal_logged(&other),
            })
    }

    /// Opens a container module's socket before its container is created when its file is
    /// not there: the engine refuses a bind mount whose source does not exist. (A file left by
    /// an earlier listener is enough: every start binds the socket afresh.)
    pub(crate) async fn prepare_container_socket(&self, name: &str) -> Result<(), ApiError> {
        if Path::new(&self.module_socket(name)).exists() {
            return Ok(());
        }
        self.bind_module_socket(name)
            .await
            .map_err(|e| ApiError::internal_logged(&e))
    }
}

/// The daemon's runtime: the process backend, plus the docker backend when the config names a
/// container engine, behind one [`CompositeRuntime`]. Also returns the docker backend itself,
/// for the reconcile at boot.
pub async fn runtimes(
    config: &Config,
    process: ProcessRuntime,
    instance: &str,
) -> Result<(Arc<dyn ModuleRuntime>, Option<DockerRuntime>), String> {
    let mut backends: Vec<Arc<dyn ModuleRuntime>> = vec![Arc::new(process)];
    let docker = match &config.moby {
        None => None,
        Some(m) => {
            let d = DockerRuntime::connect(DockerRuntimeConfig {
                uri: m.uri.clone(),
                network: m.network.clone(),
                allow_elevated: m.allow_elevated_docker_permissions,
                instance: instance.to_owned(),
                state_file: Some(config.state_dir.join("containers.json")),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("container runtime: {e}"))?;
            backends.push(Arc::new(d.clone()));
            Some(d)
        }
    };
    Ok((Arc::new(CompositeRuntime::new(backends)), docker))
}

/// After the registered modules are back: reports (and with `remove_orphans` removes) the
/// engine's containers of this daemon that no registered module owns.
pub async fn reconcile(docker: &DockerRuntime, remove: bool) {
    match docker.reconcile(remove).await {
        Ok(orphans) if orphans.is_empty() => {}
        Ok(orphans) => {
            let names: Vec<_> = orphans.iter().map(|o| o.name.as_str()).collect();
            tracing::warn!(containers = ?names, removed = remove, "containers of this edgesecd with no registered module");
        }
        Err(e) => tracing::error!(error = %e, "cannot list the engine's containers"),
    }
}

#[cfg(test)]
mod tests {
    use edgesec_api::mgmt::ModuleConfig;
    use serde_json::json;

    use super::*;

    fn spec(settings: Value, policy: Option<&str>) -> ModuleSpec {
        ModuleSpec {
            name: "m1".into(),
            module_type: "docker".into(),
            image_pull_policy: policy.map(str::to_owned),
            config: ModuleConfig {
                settings,
                env: vec![],
            },
        }
    }

    #[test]
    fn docker_specs_as_iot_edge_sends_them() {
        let d = validate_docker(&spec(
            json!({"image": "localhost/demo:1", "createOptions": {"Cmd": ["x"]}}),
            Some("Never"),
        ))
        .unwrap();
        assert_eq!(d.image, "localhost/demo:1");
        assert_eq!(d.pull_policy, PullPolicy::Never);
        assert_eq!(Value::Object(d.create_options), json!({"Cmd": ["x"]}));
        let d = validate_docker(&spec(
            json!({"image": "i:1", "createOptions": "{\"HostConfig\":{}}"}),
            None,
        ))
        .unwrap();
        assert_eq!(d.pull_policy, PullPolicy::OnCreate);
        assert_eq!(Value::Object(d.create_options), json!({"HostConfig": {}}));
    }

    #[test]
    fn bad_docker_specs_are_refused_clearly() {
        for (settings, policy, needle) in [
            (
                json!({"image": "i"}),
                Some("always"),
                "invalid imagePullPolicy",
            ),
            (json!({}), None, "invalid Docker config"),
            (json!({"image": ""}), None, "settings.image"),
            (
                json!({"image": "i", "createOptions": 3}),
                None,
                "createOptions must be a JSON object",
            ),
            (
                json!({"image": "i", "createOptions": "[1]"}),
                None,
                "createOptions must be a JSON object",
            ),
            (
                json!({"image": "i", "command": "x"}),
                None,
                "unknown field `command`",
            ),
        ] {
            let e = validate_docker(&spec(settings.clone(), policy)).unwrap_err();
            assert!(e.message.contains(needle), "{settings}: {}", e.message);
        }
    }
}
