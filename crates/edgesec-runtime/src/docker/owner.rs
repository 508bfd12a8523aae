//! Which module a pid belongs to, and what its container runs.
//!
//! The kernel says which cgroup the process is in; the cgroup names the container id (docker
//! and podman, cgroup v1 and v2: `edgesec_attest::container_id`); the container id must be the
//! one edgesec created for a module. A container's name or labels count for nothing: a
//! look-alike started by hand with the same name and labels has another id. A process that
//! `docker exec` started in module B's container is in B's cgroup, so it is B's, whatever it
//! asks for.

use edgesec_attest::{Measurement, container_id};

use super::engine::{image_id_of, inspect};
use super::module::Shared;
use crate::error::RuntimeError;

pub(crate) fn owner_of(shared: &Shared, pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let id = container_id(pid)?;
    let entry = shared.by_container(&id)?;
    let inner = entry.lock();
    (!inner.removing).then(|| entry.name.clone())
}

/// The image id of the caller's container as the engine reports it now (cached per container
/// id: the image of a container never changes). The caller must be in the module's container.
pub(crate) async fn caller_measurement(
    shared: &Shared,
    module: &str,
    pid: i32,
) -> Result<Measurement, RuntimeError> {
    let not_its = || RuntimeError::InvalidSettings {
        module: module.to_owned(),
        reason: format!("process {pid} is not in the module's container"),
    };
    let id = container_id(pid).ok_or_else(not_its)?;
    let entry = shared.get(module)?;
    if entry.id() != id {
        return Err(not_its());
    }
    if let Some(m) = shared.images().get(&id) {
        return Ok(*m);
    }
    let c = inspect(shared, module, &id)
        .await?
        .ok_or_else(|| RuntimeError::Engine {
            module: module.to_owned(),
            context: "inspect container".into(),
            status: Some(404),
            message: format!("container {id} is gone"),
        })?;
    let m = image_id_of(module, &c)?;
    shared.images().insert(id, m);
    Ok(m)
}
