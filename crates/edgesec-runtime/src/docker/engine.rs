//! Thin wrappers over the engine calls the backend makes, with errors turned into
//! [`RuntimeError`]s that name the module.

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use edgesec_attest::Measurement;
use futures_util::StreamExt;

use super::module::{Shared, parse_image_id};
use crate::error::RuntimeError;

/// The engine's HTTP status of an error, if it answered one.
pub(crate) fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub(crate) fn engine_error(module: &str, context: &str, e: DockerError) -> RuntimeError {
    let status = status_of(&e);
    let message = match e {
        DockerError::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    };
    RuntimeError::Engine {
        module: module.to_owned(),
        context: context.to_owned(),
        status,
        message,
    }
}

/// Inspects a container by id or name; `Ok(None)` when the engine does not have it.
pub(crate) async fn inspect(
    shared: &Shared,
    module: &str,
    id: &str,
) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
    match shared
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(Some(c)),
        Err(e) if status_of(&e) == Some(404) => Ok(None),
        Err(e) => Err(engine_error(module, "inspect container", e)),
    }
}

/// The image id of an inspected container.
pub(crate) fn image_id_of(
    module: &str,
    c: &ContainerInspectResponse,
) -> Result<Measurement, RuntimeError> {
    c.image
        .as_deref()
        .and_then(parse_image_id)
        .ok_or_else(|| RuntimeError::Engine {
            module: module.to_owned(),
            context: "inspect container".into(),
            status: None,
            message: format!("the engine reports no usable image id ({:?})", c.image),
        })
}

/// Pulls `image` (policy `on-create`), reading the progress stream to its end.
pub(crate) async fn pull(shared: &Shared, module: &str, image: &str) -> Result<(), RuntimeError> {
    let fail = |message: String| RuntimeError::ImagePull {
        module: module.to_owned(),
        image: image.to_owned(),
        message,
    };
    let opts = CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..Default::default()
    };
    let mut progress = shared.docker.create_image(Some(opts), None, None);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    return Err(fail(err));
                }
            }
            Err(DockerError::DockerResponseServerError { message, .. }) => {
                return Err(fail(message));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    tracing::info!(module, image, "image pulled");
    Ok(())
}

/// Creates the container; `Err(Ok(()))`-like conflicts come back as the engine's 409.
pub(crate) async fn create_container(
    shared: &Shared,
    module: &str,
    container: &str,
    body: &ContainerCreateBody,
) -> Result<String, DockerError> {
    let opts = CreateContainerOptions {
        name: Some(container.to_owned()),
        ..Default::default()
    };
    shared
        .docker
        .create_container(Some(opts), body.clone())
        .await
        .map(|r| {
            tracing::debug!(module, container, id = %r.id, "container created");
            r.id
        })
}

/// `docker rm -f`; a container that is already gone is fine.
pub(crate) async fn remove_container(
    shared: &Shared,
    module: &str,
    id: &str,
) -> Result<(), RuntimeError> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match shared.docker.remove_container(id, Some(opts)).await {
        Ok(()) => {}
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error(module, "remove container", e)),
    }
    shared.images().remove(id);
    Ok(())
}

/// `docker stop -t <grace>`; stopping a stopped or missing container is fine.
pub(crate) async fn stop_container(
    shared: &Shared,
    module: &str,
    id: &str,
    grace: std::time::Duration,
) -> Result<(), RuntimeError> {
    let opts = StopContainerOptions {
        t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    match shared.docker.stop_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
        Err(e) => Err(engine_error(module, "stop container", e)),
    }
}
