//! The docker backend: modules as containers, through the Docker Engine API (dockerd, or
//! podman's compatible service), with bollard.
//!
//! - create.rs: the container body (createOptions merge, labels, env, mounts, the restrictive
//!   setting); lifecycle.rs: create (pull, re-attach), start (re-create when gone), stop,
//!   remove; status.rs: engine state → module state; logs.rs: logs through the engine;
//!   owner.rs: pid → cgroup → container id → module, and the caller's image id; events.rs:
//!   exit events and containers removed behind edgesec's back; records.rs: the container ids
//!   edgesec created, kept across daemon restarts.
//! - The measurement of a container module is its image id: `sha256:<hex>` parsed into a
//!   [`Measurement`] (a SHA-256 digest, which an image id is: the digest of its config).

mod create;
mod engine;
mod events;
mod lifecycle;
mod logs;
mod module;
mod owner;
mod records;
mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use edgesec_attest::Measurement;
use tokio::sync::{broadcast, mpsc};

pub use self::create::{
    LABEL_INSTANCE, LABEL_MODULE, LABEL_ORIGINAL_IMAGE, LABEL_OWNER, OWNER_VALUE, container_name,
};
use self::engine::{engine_error, remove_container};
use self::module::Shared;
use crate::error::RuntimeError;
use crate::logs::{LogLine, LogQuery};
use crate::runtime::ModuleRuntime;
use crate::types::{ExitEvent, ModuleSettings, ModuleState};

#[derive(Debug, Clone)]
pub struct DockerRuntimeConfig {
    /// `unix:///var/run/docker.sock` (or a bare socket path).
    pub uri: String,
    /// `HostConfig.NetworkMode` of containers whose createOptions give none.
    pub network: String,
    /// IoT Edge's `allow_elevated_docker_permissions`.
    pub allow_elevated: bool,
    /// Label value that tells this daemon's containers from others' on the same engine.
    pub instance: String,
    /// Where the created containers are recorded (None: not kept across restarts).
    pub state_file: Option<PathBuf>,
    /// Longer log lines are split.
    pub log_line_max: usize,
    /// How long a container left running by an earlier daemon gets to stop when re-attached.
    pub adopt_stop_grace: Duration,
    /// Engine request timeout (until the answer's headers).
    pub timeout: Duration,
}

impl Default for DockerRuntimeConfig {
    fn default() -> Self {
        DockerRuntimeConfig {
            uri: "unix:///var/run/docker.sock".into(),
            network: "azure-iot-edge".into(),
            allow_elevated: true,
            instance: "edgesec".into(),
            state_file: None,
            log_line_max: 16 * 1024,
            adopt_stop_grace: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
        }
    }
}

/// A container of this daemon (by its instance label) that no module is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub id: String,
    pub name: String,
    /// The module it was made for (its `io.edgesec.module` label).
    pub module: Option<String>,
    pub state: String,
}

const EXIT_EVENTS: usize = 256;

/// The docker backend. Cheap to share: hold it as `Arc<dyn ModuleRuntime>`.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    shared: Arc<Shared>,
}

impl DockerRuntime {
    /// Connects to the engine (negotiating the API version when it answers), loads the records
    /// of an earlier run and starts watching the engine's events. An engine that does not
    /// answer yet is not an error here: calls fail until it does, and the event watcher keeps
    /// trying.
    pub async fn connect(config: DockerRuntimeConfig) -> Result<DockerRuntime, RuntimeError> {
        let path = match config.uri.strip_prefix("unix://") {
            Some(p) => p.to_owned(),
            None if config.uri.starts_with('/') => config.uri.clone(),
            None => {
                return Err(RuntimeError::Unsupported {
                    what: format!(
                        "container engine URI {:?}: only unix:// sockets are supported",
                        config.uri
                    ),
                });
            }
        };
        let docker = Docker::connect_with_unix(
            &path,
            config.timeout.as_secs().max(1),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| engine_error("-", "connect to the container engine", e))?;
        let docker = match docker.clone().negotiate_version().await {
            Ok(d) => {
                if let Ok(v) = d.version().await {
                    tracing::info!(engine = %config.uri, version = ?v.version, api = ?v.api_version, "container engine");
                }
                d
            }
            Err(e) => {
                tracing::error!(engine = %config.uri, error = %e, "the container engine does not answer; container modules fail until it does");
                docker
            }
        };
        let pending = config
            .state_file
            .as_deref()
            .map(records::load)
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            docker,
            config,
            modules: Mutex::new(HashMap::new()),
            pending: Mutex::new(pending),
            images: Mutex::new(HashMap::new()),
            exits: broadcast::channel(EXIT_EVENTS).0,
            save_lock: tokio::sync::Mutex::new(()),
        });
        events::spawn(&shared);
        Ok(DockerRuntime { shared })
    }

    /// The engine's containers with this daemon's instance label that no module is bound to
    /// (after the daemon re-created its registered modules): each is reported, and removed when
    /// `remove` is set. Records of an earlier run that no module claimed are dropped.
    pub async fn reconcile(&self, remove: bool) -> Result<Vec<Orphan>, RuntimeError> {
        let s = &self.shared;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_INSTANCE}={}", s.config.instance)],
        )]);
        let list = s
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error("-", "list containers", e))?;
        let mut orphans = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            if s.by_container(&id).is_some() {
                continue;
            }
            let o = Orphan {
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                module: c.labels.and_then(|mut l| l.remove(LABEL_MODULE)),
                state: c.state.map(|st| st.to_string()).unwrap_or_default(),
                id,
            };
            if remove {
                tracing::warn!(container = %o.name, id = %o.id, module = ?o.module, "removing a container of this edgesecd that no registered module owns (remove_orphans = true)");
                remove_container(s, o.module.as_deref().unwrap_or("-"), &o.id).await?;
            } else {
                tracing::warn!(container = %o.name, id = %o.id, module = ?o.module, state = %o.state, "a container of this edgesecd has no registered module; left alone (set remove_orphans = true to remove such containers)");
            }
            orphans.push(o);
        }
        s.pending().clear();
        records::save(s).await;
        Ok(orphans)
    }

    /// The container id bound to a module, if it is one of this backend's.
    pub fn container_id(&self, module: &str) -> Option<String> {
        self.shared.get(module).ok().map(|e| e.id())
    }
}

#[async_trait]
impl ModuleRuntime for DockerRuntime {
    fn backend(&self) -> &'static str {
        "docker"
    }

    async fn create(
        &self,
        name: &str,
        settings: ModuleSettings,
        env: Vec<(String, String)>,
    ) -> Result<Measurement, RuntimeError> {
        lifecycle::create(&self.shared, name, settings, env).await
    }

    async fn prepare(&self, name: &str, settings: &ModuleSettings) -> Result<(), RuntimeError> {
        match settings {
            ModuleSettings::Docker(s) if s.pull_policy == crate::types::PullPolicy::OnCreate => {
                engine::pull(&self.shared, name, &s.image).await
            }
            _ => Ok(()),
        }
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        lifecycle::start(&self.shared, name).await
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        lifecycle::stop(&self.shared, name, grace).await
    }

    async fn restart(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        lifecycle::restart(&self.shared, name, grace).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        lifecycle::remove(&self.shared, name).await
    }

    async fn state(&self, name: &str) -> Result<ModuleState, RuntimeError> {
        lifecycle::state(&self.shared, name).await
    }

    async fn list(&self) -> Result<Vec<(String, ModuleState)>, RuntimeError> {
        let mut names: Vec<String> = self.shared.modules().keys().cloned().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Ok(st) = lifecycle::state(&self.shared, &n).await {
                out.push((n, st));
            }
        }
        Ok(out)
    }

    async fn logs(
        &self,
        name: &str,
        query: LogQuery,
    ) -> Result<mpsc::Receiver<LogLine>, RuntimeError> {
        let id = self.shared.get(name)?.id();
        Ok(logs::query(&self.shared, name, &id, query))
    }

    async fn owner_of(&self, pid: i32) -> Option<String> {
        owner::owner_of(&self.shared, pid)
    }

    async fn caller_measurement(
        &self,
        module: &str,
        pid: i32,
    ) -> Result<Measurement, RuntimeError> {
        owner::caller_measurement(&self.shared, module, pid).await
    }

    fn exit_events(&self) -> broadcast::Receiver<ExitEvent> {
        self.shared.exits.subscribe()
    }
}
