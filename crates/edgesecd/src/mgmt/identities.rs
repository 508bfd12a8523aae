//! `/identities` routes and `/device/reprovision`. A hub-connected device keeps its module
//! identities in the hub ([`crate::cloud::modules`]); a standalone device keeps them in the
//! daemon's registry (local identity mode). Keys are derived in keyd either way.

use edgesec_api::mgmt::{Identity, IdentityList, IdentitySpec};
use edgesec_http::{ApiError, Request, Response, json_response, parse_json_body};
use edgesec_identity::CloudError;
use http::StatusCode;

use crate::daemon::Daemon;
use crate::registry::{IdentityRecord, new_generation_id};

/// A cloud failure as the agent sees it: what the cloud said (never keys or local internals);
/// the full error goes to the log.
fn cloud_error(what: &str, e: CloudError) -> ApiError {
    tracing::error!(error = %e, "{what}");
    match &e {
        CloudError::Unreachable(_) => {
            ApiError::service_unavailable(format!("{what}: the cloud cannot be reached"))
        }
        CloudError::Status { .. } | CloudError::RegistrationFailed { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, format!("{what}: {e}"))
        }
        _ => ApiError::internal_logged(&format!("{what}: {e}")),
    }
}

fn no_content() -> Response {
    http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Default::default())
        .expect("static response")
}

fn wire(r: &IdentityRecord) -> Identity {
    Identity {
        module_id: r.module_id.clone(),
        managed_by: r.managed_by.clone(),
        generation_id: r.generation_id.clone(),
        auth_type: "sas".into(),
    }
}

pub async fn list(d: &Daemon) -> Result<Response, ApiError> {
    if let Some(cloud) = &d.cloud {
        let list = d
            .list_hub_identities(cloud)
            .await
            .map_err(|e| cloud_error("cannot list the module identities", e))?;
        let identities = list.iter().map(wire).collect();
        return Ok(json_response(StatusCode::OK, &IdentityList { identities }));
    }
    let identities = d
        .registry
        .read()
        .await
        .identities
        .values()
        .map(wire)
        .collect();
    Ok(json_response(StatusCode::OK, &IdentityList { identities }))
}

/// `POST /identities`: creates the identity, or returns the existing one (as IoT Hub does for
/// a module identity that exists).
pub async fn create(d: &Daemon, req: &Request) -> Result<Response, ApiError> {
    let spec: IdentitySpec = parse_json_body(req)?;
    edgesec_runtime::validate_module_name(&spec.module_id)
        .map_err(|e| ApiError::bad_request(format!("invalid module id: {e}")))?;
    let managed_by = spec.managed_by.unwrap_or_else(|| "iotedge".into());
    if let Some(cloud) = &d.cloud {
        match d
            .create_hub_identity(cloud, &spec.module_id, &managed_by)
            .await
        {
            Ok(record) => return Ok(json_response(StatusCode::OK, &wire(&record))),
            // offline: the module runs on a local identity; the next create or update with
            // the hub reachable moves it to the hub's generation and keys
            Err(e) if e.is_network() => {
                tracing::warn!(module = %spec.module_id, error = %e, "the hub is unreachable; keeping the module identity locally until it can be made there");
            }
            Err(e) => {
                return Err(cloud_error(
                    "cannot create the module identity in the hub",
                    e,
                ));
            }
        }
    }
    let record = d
        .registry
        .update(|r| {
            Ok(r.identities
                .entry(spec.module_id.clone())
                .or_insert_with(|| IdentityRecord {
                    module_id: spec.module_id.clone(),
                    generation_id: new_generation_id(),
                    managed_by,
                })
                .clone())
        })
        .await
        .map_err(|e| ApiError::internal_logged(&e))?;
    Ok(json_response(StatusCode::OK, &wire(&record)))
}

/// `PUT /identities/{name}`: returns the identity as it is (its keys are derived, so there is
/// nothing to refresh).
pub async fn update(d: &Daemon, name: &str) -> Result<Response, ApiError> {
    if let Some(cloud) = &d.cloud {
        let local = d.registry.read().await.identities.get(name).cloned();
        let refreshed = match d.refresh_hub_identity(cloud, name).await {
            // made locally while the hub was away: make it in the hub now
            Ok(None) if local.is_some() => {
                let managed_by = local.map(|l| l.managed_by).unwrap_or_default();
                d.create_hub_identity(cloud, name, &managed_by)
                    .await
                    .map(Some)
            }
            other => other,
        };
        match refreshed {
            Ok(Some(r)) => return Ok(json_response(StatusCode::OK, &wire(&r))),
            Ok(None) => {
                return Err(ApiError::not_found_msg(format!(
                    "identity {name:?} not found"
                )));
            }
            Err(e) if e.is_network() => {
                tracing::warn!(module = %name, error = %e, "the hub is unreachable; answering with the identity known locally");
            }
            Err(e) => {
                return Err(cloud_error(
                    "cannot update the module identity in the hub",
                    e,
                ));
            }
        }
    }
    match d.registry.read().await.identities.get(name) {
        Some(r) => Ok(json_response(StatusCode::OK, &wire(r))),
        None => Err(ApiError::not_found_msg(format!(
            "identity {name:?} not found"
        ))),
    }
}

pub async fn delete(d: &Daemon, name: &str) -> Result<Response, ApiError> {
    if let Some(cloud) = &d.cloud {
        let existed = d
            .delete_hub_identity(cloud, name)
            .await
            .map_err(|e| cloud_error("cannot delete the module identity in the hub", e))?;
        if !existed {
            return Err(ApiError::not_found_msg(format!(
                "identity {name:?} not found"
            )));
        }
        return Ok(no_content());
    }
    let removed = d
        .registry
        .update(|r| Ok(r.identities.remove(name)))
        .await
        .map_err(|e| ApiError::internal_logged(&e))?;
    if removed.is_none() {
        return Err(ApiError::not_found_msg(format!(
            "identity {name:?} not found"
        )));
    }
    d.identities.forget(name);
    Ok(no_content())
}

/// `POST /device/reprovision`: a DPS device registers again (the cache is bypassed and
/// replaced); a manual or standalone device keeps its configured identity.
pub async fn reprovision(d: &Daemon) -> Result<Response, ApiError> {
    match &d.cloud {
        Some(cloud) => d
            .reprovision_with(cloud, None)
            .await
            .map_err(|e| cloud_error("reprovisioning failed", e))?,
        None => {
            tracing::info!(device = %d.config.provisioning.device_id, "reprovision requested; local identity mode keeps the configured device identity")
        }
    }
    Ok(no_content())
}
