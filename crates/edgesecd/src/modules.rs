//! Module lifecycle for the management API and the agent bootstrap: validation, registration,
//! identity, environment, and the runtime calls, in one place.

use std::collections::BTreeSet;
use std::time::Duration;

use edgesec_api::LATEST_API_VERSION;
use edgesec_api::mgmt::{
    ExitStatus, ModuleConfig, ModuleDetails, ModuleSpec, RuntimeStatus, Status,
};
use edgesec_http::{ApiError, unix_uri};
use edgesec_runtime::{ModuleState, ProcessSettings, RuntimeError};

use crate::containers::{ValidSettings, validate_docker};
use crate::daemon::Daemon;
use crate::registry::{IdentityRecord, Registration, new_generation_id};

/// Which generation a (re-)registered module gets.
enum Generation {
    /// A new one: every create of a module.
    New(String),
    /// The identity's current one (made if there is none): updates and the agent bootstrap.
    Keep,
}

/// How long a stopping module gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Largest number of env entries and their total size in a module spec.
const MAX_ENV: usize = 256;
const MAX_ENV_BYTES: usize = 64 * 1024;

fn runtime_error(module: &str, e: RuntimeError) -> ApiError {
    use RuntimeError as E;
    match e {
        E::NotFound { .. } => ApiError::not_found_msg(format!("module {module:?} not found")),
        E::AlreadyRunning { .. } => ApiError::new(
            http::StatusCode::NOT_MODIFIED,
            format!("module {module:?} is already running"),
        ),
        E::AlreadyExists { .. } => ApiError::conflict(e.to_string()),
        E::InvalidName { .. }
        | E::InvalidSettings { .. }
        | E::CommandNotFound { .. }
        | E::NotExecutable { .. }
        | E::UserNotFound { .. }
        | E::Unsupported { .. }
        | E::ImagePull { .. } => ApiError::bad_request(e.to_string()),
        E::Engine {
            status: Some(code @ 400..=499),
            ..
        } => ApiError::new(
            http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_REQUEST),
            e.to_string(),
        ),
        other => ApiError::internal_logged(&other),
    }
}

/// Checks a spec and returns its settings (process or docker).
pub fn validate_spec(spec: &ModuleSpec) -> Result<ValidSettings, ApiError> {
    edgesec_runtime::validate_module_name(&spec.name)
        .map_err(|e| ApiError::bad_request(format!("invalid module name: {e}")))?;
    let docker = match spec.module_type.as_str() {
        "process" => false,
        "docker" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid module type {other:?}; expected \"process\" or \"docker\""
            )));
        }
    };
    let mut seen = BTreeSet::new();
    let mut total = 0;
    if spec.config.env.len() > MAX_ENV {
        return Err(ApiError::bad_request(format!(
            "too many env vars (more than {MAX_ENV})"
        )));
    }
    for e in &spec.config.env {
        if e.key.is_empty() || e.key.contains(['=', '\0']) || e.value.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "invalid env var key {:?}",
                e.key
            )));
        }
        if !seen.insert(e.key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "duplicate env var key: {}",
                e.key
            )));
        }
        total += e.key.len() + e.value.len();
    }
    if total > MAX_ENV_BYTES {
        return Err(ApiError::bad_request("env vars are larger than 64 KiB"));
    }
    if docker {
        return validate_docker(spec).map(ValidSettings::Docker);
    }
    let settings: ProcessSettings = serde_path_to_error::deserialize(&spec.config.settings)
        .map_err(|e| {
            ApiError::unprocessable(format!(
                "invalid process settings at \"{}\": {}",
                e.path(),
                e.inner()
            ))
        })?;
    if settings.command.is_empty()
        || settings.command.contains('\0')
        || settings.args.iter().any(|a| a.contains('\0'))
    {
        return Err(ApiError::bad_request(
            "settings.command must be non-empty, and no argument may hold NUL",
        ));
    }
    Ok(ValidSettings::Process(settings))
}

/// A bare command name (no `/`) runs the workspace's own binary of that name next to the
/// running edgesecd when there is one, as `config::find_program` does for the agent; otherwise
/// the runtime searches the module's `PATH`. Only what is run changes: the spec (and so what
/// the API reports) keeps the name as given.
pub(crate) fn beside_daemon(mut settings: ProcessSettings) -> ProcessSettings {
    if settings.command.contains('/') {
        return settings;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&settings.command)));
    if let Some(path) = beside.filter(|p| p.is_file())
        && let Some(path) = path.to_str()
    {
        settings.command = path.to_owned();
    }
    settings
}

impl Daemon {
    /// The workload socket a module talks to.
    pub fn module_socket(&self, name: &str) -> std::path::PathBuf {
        self.config
            .workload
            .module_socket_dir
            .join(format!("{name}.sock"))
    }

    /// The IoT Edge environment of a module, then the spec's own (which cannot override ours).
    pub(crate) fn module_env(
        &self,
        spec: &ModuleSpec,
        generation_id: &str,
    ) -> Vec<(String, String)> {
        let c = &self.config;
        let (hub, device) = self.hub_and_device();
        let mut env = vec![
            ("IOTEDGE_WORKLOADURI".into(), self.workload_uri(spec)),
            ("IOTEDGE_MODULEID".into(), spec.name.clone()),
            ("IOTEDGE_MODULEGENERATIONID".into(), generation_id.into()),
            ("IOTEDGE_DEVICEID".into(), device),
            ("IOTEDGE_IOTHUBHOSTNAME".into(), hub),
            ("IOTEDGE_GATEWAYHOSTNAME".into(), c.hostname.clone()),
            ("IOTEDGE_APIVERSION".into(), LATEST_API_VERSION.into()),
            ("IOTEDGE_AUTHSCHEME".into(), "sasToken".into()),
            ("EdgeDeviceHostName".into(), c.hostname.clone()),
        ];
        if self.is_agent(&spec.name) {
            env.push((
                "IOTEDGE_MANAGEMENTURI".into(),
                unix_uri(&c.management.socket),
            ));
            env.push((
                "EDGESEC_DEPLOYMENT".into(),
                c.agent.deployment.display().to_string(),
            ));
        }
        for e in &spec.config.env {
            if !env.iter().any(|(k, _)| *k == e.key) {
                env.push((e.key.clone(), e.value.clone()));
            }
        }
        env
    }

    /// `POST /modules`: registers a module (stopped). Each create starts a new generation on a
    /// standalone device; a hub-connected device takes the generation of the module's identity
    /// in the hub (made now if the agent has not made it).
    pub async fn create_module(&self, spec: ModuleSpec) -> Result<ModuleDetails, ApiError> {
        let settings = validate_spec(&spec)?;
        // The module's workload socket must be bindable, or every start would fail later.
        let socket = self.module_socket(&spec.name);
        if socket.as_os_str().len() > edgesec_http::MAX_SOCKET_PATH {
            return Err(ApiError::bad_request(format!(
                "module name {:?} is too long: its workload socket {} would pass the {}-byte \
                 limit of a socket path; use a name of at most {} bytes or a shorter \
                 workload.module_socket_dir",
                spec.name,
                socket.display(),
                edgesec_http::MAX_SOCKET_PATH,
                (edgesec_http::MAX_SOCKET_PATH + spec.name.len())
                    .saturating_sub(socket.as_os_str().len())
            )));
        }
        let _guard = self.lock_module(&spec.name).await;
        if self.registry.read().await.modules.contains_key(&spec.name) {
            return Err(ApiError::conflict(format!(
                "module {:?} already exists",
                spec.name
            )));
        }
        let generation = match &self.cloud {
            Some(cloud) => self.hub_generation(cloud, &spec.name).await,
            None => Generation::New(new_generation_id()),
        };
        self.register(spec, settings, generation, false).await
    }

    /// The hub identity's generation for a new module: the one recorded, else a new identity
    /// in the hub. When the hub cannot be reached the module gets a local generation (its
    /// keys then match the hub once the agent creates or updates its identity).
    async fn hub_generation(&self, cloud: &crate::cloud::Cloud, name: &str) -> Generation {
        if self.registry.read().await.identities.contains_key(name) {
            return Generation::Keep;
        }
        match self.create_hub_identity(cloud, name, "iotedge").await {
            Ok(_) => Generation::Keep,
            Err(e) => {
                tracing::warn!(module = %name, error = %e, "cannot create the module's identity in the hub; it gets a local generation for now");
                Generation::New(new_generation_id())
            }
        }
    }

    /// Creates the module in the runtime and records it (with its identity's generation, in the
    /// same write). The caller holds the module lock.
    async fn register(
        &self,
        spec: ModuleSpec,
        settings: ValidSettings,
        generation: Generation,
        start: bool,
    ) -> Result<ModuleDetails, ApiError> {
        let name = spec.name.clone();
        let current = self
            .registry
            .read()
            .await
            .identities
            .get(&name)
            .map(|i| i.generation_id.clone());
        let generation_id = match (&generation, current) {
            (Generation::New(g), _) => g.clone(),
            (Generation::Keep, Some(g)) => g,
            (Generation::Keep, None) => new_generation_id(),
        };
        let env = self.module_env(&spec, &generation_id);
        if Self::is_container(&spec) {
            self.prepare_container_socket(&name).await?;
        }
        let measurement = self
            .runtime
            .create(&name, self.runtime_settings(&name, settings), env)
            .await
            .map_err(|e| runtime_error(&name, e))?;
        crate::mgmt::attestation::report(
            self.identities.keyd(),
            "module",
            &name,
            &measurement.to_string(),
        )
        .await;
        let registration = Registration {
            spec,
            measurement,
            created_at: crate::time::now_rfc3339(),
            desired_running: start,
        };
        let recorded = self
            .registry
            .update(|r| {
                let id = r
                    .identities
                    .entry(name.clone())
                    .or_insert_with(|| IdentityRecord {
                        module_id: name.clone(),
                        generation_id: generation_id.clone(),
                        managed_by: "edgesec".into(),
                    });
                id.generation_id = generation_id.clone();
                r.modules.insert(name.clone(), registration);
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            let _ = self.runtime.remove(&name).await;
            return Err(ApiError::internal_logged(&e));
        }
        self.identities.forget(&name);
        if start {
            self.start_locked(&name).await?;
        }
        tracing::info!(module = %name, measurement = %measurement, "module registered");
        self.details(&name).await
    }

    /// `PUT /modules/{name}`: replaces a module's spec, keeping its identity and generation.
    pub async fn update_module(
        &self,
        spec: ModuleSpec,
        start: bool,
    ) -> Result<ModuleDetails, ApiError> {
        let settings = validate_spec(&spec)?;
        let _guard = self.lock_module(&spec.name).await;
        let exists = self.registry.read().await.modules.contains_key(&spec.name);
        if exists {
            self.teardown(&spec.name).await?;
        }
        self.register(spec, settings, Generation::Keep, start).await
    }

    /// Stops and removes a module from the runtime and its socket (registration kept).
    async fn teardown(&self, name: &str) -> Result<(), ApiError> {
        match self.runtime.remove(name).await {
            Ok(()) | Err(RuntimeError::NotFound { .. }) => {}
            Err(e) => return Err(runtime_error(name, e)),
        }
        self.unbind_module_socket(name, true).await;
        Ok(())
    }

    /// `DELETE /modules/{name}`.
    pub async fn delete_module(&self, name: &str) -> Result<(), ApiError> {
        let _guard = self.lock_module(name).await;
        if !self.registry.read().await.modules.contains_key(name) {
            return Err(ApiError::not_found_msg(format!(
                "module {name:?} not found"
            )));
        }
        self.teardown(name).await?;
        self.registry
            .update(|r| Ok(r.modules.remove(name)))
            .await
            .map_err(|e| ApiError::internal_logged(&e))?;
        tracing::info!(module = name, "module removed");
        Ok(())
    }

    pub async fn start_module(&self, name: &str) -> Result<(), ApiError> {
        let _guard = self.lock_module(name).await;
        self.start_locked(name).await
    }

    async fn start_locked(&self, name: &str) -> Result<(), ApiError> {
        self.require_registered(name).await?;
        self.bind_module_socket(name)
            .await
            .map_err(|e| ApiError::internal_logged(&e))?;
        self.runtime
            .start(name)
            .await
            .map_err(|e| runtime_error(name, e))?;
        self.set_desired(name, true).await
    }

    pub async fn stop_module(&self, name: &str) -> Result<(), ApiError> {
        let _guard = self.lock_module(name).await;
        self.require_registered(name).await?;
        self.runtime
            .stop(name, STOP_GRACE)
            .await
            .map_err(|e| runtime_error(name, e))?;
        self.unbind_module_socket(name, false).await;
        self.set_desired(name, false).await
    }

    pub async fn restart_module(&self, name: &str) -> Result<(), ApiError> {
        let _guard = self.lock_module(name).await;
        self.require_registered(name).await?;
        self.runtime
            .stop(name, STOP_GRACE)
            .await
            .map_err(|e| runtime_error(name, e))?;
        self.start_locked(name).await
    }

    async fn require_registered(&self, name: &str) -> Result<(), ApiError> {
        if self.registry.read().await.modules.contains_key(name) {
            Ok(())
        } else {
            Err(ApiError::not_found_msg(format!(
                "module {name:?} not found"
            )))
        }
    }

    async fn set_desired(&self, name: &str, running: bool) -> Result<(), ApiError> {
        self.registry
            .update(|r| {
                if let Some(m) = r.modules.get_mut(name) {
                    m.desired_running = running;
                }
                Ok(())
            })
            .await
            .map_err(|e| ApiError::internal_logged(&e))
    }

    /// One module as the API reports it.
    pub async fn details(&self, name: &str) -> Result<ModuleDetails, ApiError> {
        let spec = match self.registry.read().await.modules.get(name) {
            Some(r) => r.spec.clone(),
            None => {
                return Err(ApiError::not_found_msg(format!(
                    "module {name:?} not found"
                )));
            }
        };
        let state = self.runtime.state(name).await.ok();
        Ok(details_of(spec, state))
    }

    pub async fn list_modules(&self) -> Vec<ModuleDetails> {
        let specs: Vec<ModuleSpec> = self
            .registry
            .read()
            .await
            .modules
            .values()
            .map(|r| r.spec.clone())
            .collect();
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            let state = self.runtime.state(&spec.name).await.ok();
            out.push(details_of(spec, state));
        }
        out
    }
}

fn details_of(spec: ModuleSpec, state: Option<ModuleState>) -> ModuleDetails {
    let (status, start_time, exit_status) = match &state {
        None => ("unknown".to_owned(), None, None),
        Some(s) => (
            // IoT Edge reports a module that was created and never started as stopped
            if s.status == edgesec_runtime::ModuleStatus::Unknown && s.started_at.is_none() {
                "stopped".to_owned()
            } else {
                s.status.as_str().to_owned()
            },
            s.started_at.map(crate::time::rfc3339),
            match (s.exit_code, s.finished_at) {
                (Some(code), Some(t)) => Some(ExitStatus {
                    exit_time: crate::time::rfc3339(t),
                    status_code: code.to_string(),
                }),
                _ => None,
            },
        ),
    };
    ModuleDetails {
        id: spec.name.clone(),
        name: spec.name,
        module_type: spec.module_type,
        config: ModuleConfig {
            settings: spec.config.settings,
            env: spec.config.env,
        },
        status: Status {
            start_time,
            exit_status,
            runtime_status: RuntimeStatus {
                status,
                description: state.and_then(|s| s.description),
            },
        },
    }
}
