//! create / start / stop / restart / remove / state for the docker backend.
//!
//! A module is bound to the one container edgesec created for it, by id. When that container
//! is gone (removed outside edgesec) or dead, `start` creates a new one from the same body, so
//! the daemon's watchdog brings a removed agent back with a plain start.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum};
use bollard::query_parameters::StartContainerOptions;
use edgesec_attest::Measurement;

use super::create::{BuildOptions, LABEL_INSTANCE, build_body, container_name};
use super::engine::{
    create_container, engine_error, image_id_of, inspect, pull, remove_container, status_of,
    stop_container,
};
use super::module::{Entry, Shared};
use super::records;
use super::status::{gone_state, state_of};
use crate::error::RuntimeError;
use crate::types::{DockerSettings, ModuleSettings, ModuleState, PullPolicy};
use edgesec_api::name::validate_module_name;

pub(crate) async fn create(
    shared: &Arc<Shared>,
    name: &str,
    settings: ModuleSettings,
    env: Vec<(String, String)>,
) -> Result<Measurement, RuntimeError> {
    validate_module_name(name).map_err(|reason| RuntimeError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let settings: DockerSettings = match settings {
        ModuleSettings::Docker(s) => s,
        other => {
            return Err(RuntimeError::Unsupported {
                what: format!(
                    "module {name}: {} modules in the docker backend",
                    other.backend()
                ),
            });
        }
    };
    let container = container_name(name)?;
    if shared.modules().contains_key(name) {
        return Err(RuntimeError::AlreadyExists {
            name: name.to_owned(),
        });
    }
    let c = &shared.config;
    let opts = BuildOptions {
        network: &c.network,
        allow_elevated: c.allow_elevated,
        instance: &c.instance,
    };
    let body = build_body(name, &settings, env, &opts)?;

    let entry = match adopt(shared, name, &container, &body, &settings).await? {
        Some(e) => e,
        None => {
            if settings.pull_policy == PullPolicy::OnCreate {
                pull(shared, name, &settings.image).await?;
            }
            let (id, image_id) = make_container(shared, name, &container, &body).await?;
            Entry::new(
                name,
                container,
                body,
                settings.image,
                settings.pull_policy,
                id,
                image_id,
            )
        }
    };
    let entry = Arc::new(entry);
    let measurement = entry.lock().image_id;
    let raced = {
        let mut modules = shared.modules();
        if modules.contains_key(name) {
            true
        } else {
            modules.insert(name.to_owned(), entry.clone());
            false
        }
    };
    if raced {
        let _ = remove_container(shared, name, &entry.id()).await;
        return Err(RuntimeError::AlreadyExists {
            name: name.to_owned(),
        });
    }
    records::save(shared).await;
    tracing::info!(module = name, %measurement, "container module created");
    Ok(measurement)
}

/// Re-attaches the container an earlier daemon run recorded for this module, if it is still
/// there and was made from the same body; otherwise removes it. A container left running is
/// stopped: its workload socket mount points at the earlier daemon's socket (IoT Edge also
/// stops every module at start), and the daemon starts it again if it should run.
async fn adopt(
    shared: &Arc<Shared>,
    name: &str,
    container: &str,
    body: &ContainerCreateBody,
    settings: &DockerSettings,
) -> Result<Option<Entry>, RuntimeError> {
    let Some(rec) = shared.pending().remove(name) else {
        return Ok(None);
    };
    let Some(c) = inspect(shared, name, &rec.id).await? else {
        tracing::warn!(module = name, container = %rec.id, "the module's container from the earlier run is gone; creating a new one");
        return Ok(None);
    };
    if rec.body != *body {
        tracing::info!(module = name, container = %rec.id, "the module's settings changed since its container was created; replacing it");
        remove_container(shared, name, &rec.id).await?;
        return Ok(None);
    }
    let image_id = image_id_of(name, &c)?;
    let running = c.state.as_ref().is_some_and(|s| s.running == Some(true));
    if running {
        tracing::info!(module = name, container = %rec.id, "stopping the module's container left running by an earlier edgesecd");
        stop_container(shared, name, &rec.id, shared.config.adopt_stop_grace).await?;
    }
    tracing::info!(module = name, container = %rec.id, "re-attached the module's container");
    Ok(Some(Entry::new(
        name,
        container.to_owned(),
        body.clone(),
        settings.image.clone(),
        settings.pull_policy,
        rec.id,
        image_id,
    )))
}

/// Creates the module's container; a container already holding the name that this daemon
/// created (its records were lost) is replaced, any other one is an error.
async fn make_container(
    shared: &Shared,
    name: &str,
    container: &str,
    body: &ContainerCreateBody,
) -> Result<(String, Measurement), RuntimeError> {
    let id = match create_container(shared, name, container, body).await {
        Ok(id) => id,
        Err(e) if status_of(&e) == Some(409) => {
            let existing = inspect(shared, name, container).await?;
            let ours = existing.as_ref().and_then(|c| {
                c.config
                    .as_ref()?
                    .labels
                    .as_ref()?
                    .get(LABEL_INSTANCE)
                    .cloned()
            }) == Some(shared.config.instance.clone());
            let known = existing
                .as_ref()
                .and_then(|c| c.id.clone())
                .is_some_and(|id| shared.by_container(&id).is_some());
            if !ours || known {
                return Err(RuntimeError::AlreadyExists {
                    name: name.to_owned(),
                });
            }
            tracing::warn!(
                module = name,
                container,
                "replacing a container this daemon made earlier but has no record of"
            );
            remove_container(shared, name, container).await?;
            create_container(shared, name, container, body)
                .await
                .map_err(|e| engine_error(name, "create container", e))?
        }
        Err(e) => return Err(engine_error(name, "create container", e)),
    };
    let c = inspect(shared, name, &id)
        .await?
        .ok_or_else(|| RuntimeError::Engine {
            module: name.to_owned(),
            context: "inspect container".into(),
            status: Some(404),
            message: format!("container {id} vanished right after it was created"),
        })?;
    let image_id = image_id_of(name, &c)?;
    shared.images().insert(id.clone(), image_id);
    Ok((id, image_id))
}

fn not_removed(entry: &Entry) -> Result<(), RuntimeError> {
    if entry.lock().removing {
        return Err(RuntimeError::NotFound {
            name: entry.name.clone(),
        });
    }
    Ok(())
}

pub(crate) async fn start(shared: &Arc<Shared>, name: &str) -> Result<(), RuntimeError> {
    let entry = shared.get(name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    start_locked(shared, &entry).await
}

async fn start_locked(shared: &Arc<Shared>, entry: &Arc<Entry>) -> Result<(), RuntimeError> {
    let name = entry.name.as_str();
    let id = entry.id();
    let current = inspect(shared, name, &id).await?;
    let status = current.as_ref().and_then(|c| c.state.as_ref()?.status);
    match status {
        None => recreate(shared, entry, "gone").await?,
        Some(ContainerStateStatusEnum::DEAD) => {
            remove_container(shared, name, &id).await?;
            recreate(shared, entry, "dead").await?;
        }
        Some(ContainerStateStatusEnum::RUNNING) => {
            return Err(RuntimeError::AlreadyRunning {
                name: name.to_owned(),
            });
        }
        Some(_) => {}
    }
    let id = entry.id();
    match shared
        .docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
    {
        Ok(()) => {}
        Err(e) if status_of(&e) == Some(304) => {
            return Err(RuntimeError::AlreadyRunning {
                name: name.to_owned(),
            });
        }
        Err(e) => return Err(engine_error(name, "start container", e)),
    }
    let mut inner = entry.lock();
    if inner.started_once {
        inner.local.restart_count += 1;
    }
    inner.started_once = true;
    inner.local.stop_requested = false;
    inner.gone = false;
    tracing::info!(module = name, container = %id, "container module started");
    Ok(())
}

/// Makes a new container for a module whose container is gone or dead, from the same body.
async fn recreate(shared: &Arc<Shared>, entry: &Arc<Entry>, why: &str) -> Result<(), RuntimeError> {
    let name = entry.name.as_str();
    tracing::warn!(
        module = name,
        reason = why,
        "the module's container is {why}; creating it again"
    );
    if entry.pull == PullPolicy::OnCreate
        && let Err(e) = pull(shared, name, &entry.image).await
    {
        tracing::warn!(module = name, error = %e, "pull failed; using the local image");
    }
    let (id, image_id) = make_container(shared, name, &entry.container, &entry.body).await?;
    {
        let mut inner = entry.lock();
        if image_id != inner.image_id {
            tracing::warn!(module = name, was = %inner.image_id, now = %image_id, "the re-created container runs another image; its calls will be refused until the module is updated");
        }
        inner.id = id;
        inner.image_id = image_id;
        inner.gone = false;
    }
    records::save(shared).await;
    Ok(())
}

pub(crate) async fn stop(
    shared: &Arc<Shared>,
    name: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let entry = shared.get(name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    stop_locked(shared, &entry, grace).await
}

async fn stop_locked(shared: &Shared, entry: &Entry, grace: Duration) -> Result<(), RuntimeError> {
    let id = {
        let mut inner = entry.lock();
        inner.local.stop_requested = true;
        inner.id.clone()
    };
    stop_container(shared, &entry.name, &id, grace).await
}

pub(crate) async fn restart(
    shared: &Arc<Shared>,
    name: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let entry = shared.get(name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    stop_locked(shared, &entry, grace).await?;
    start_locked(shared, &entry).await
}

pub(crate) async fn remove(shared: &Arc<Shared>, name: &str) -> Result<(), RuntimeError> {
    let entry = shared.get(name)?;
    let _ops = entry.ops.lock().await;
    let id = {
        let mut inner = entry.lock();
        if inner.removing {
            return Err(RuntimeError::NotFound {
                name: name.to_owned(),
            });
        }
        inner.removing = true;
        inner.id.clone()
    };
    if let Err(e) = remove_container(shared, name, &id).await {
        entry.lock().removing = false;
        return Err(e);
    }
    {
        let mut modules = shared.modules();
        if modules.get(name).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
            modules.remove(name);
        }
    }
    records::save(shared).await;
    tracing::info!(module = name, container = %id, "container module removed");
    Ok(())
}

pub(crate) async fn state(shared: &Shared, name: &str) -> Result<ModuleState, RuntimeError> {
    let entry = shared.get(name)?;
    let (id, local) = {
        let inner = entry.lock();
        (inner.id.clone(), inner.local)
    };
    match inspect(shared, name, &id).await? {
        Some(c) => Ok(state_of(&c, local)),
        None => {
            let newly = {
                let mut inner = entry.lock();
                let newly = !inner.gone && !inner.removing;
                inner.gone = true;
                newly
            };
            if newly {
                tracing::warn!(module = name, container = %id, "the module's container was removed outside edgesec");
            }
            Ok(gone_state(local))
        }
    }
}
