//! `/identities` routes and `/device/reprovision`, in local identity mode: identities and their
//! generation ids live in the daemon's registry; keys are derived in keyd.

use edgesec_api::mgmt::{Identity, IdentityList, IdentitySpec};
use edgesec_http::{ApiError, Request, Response, json_response, parse_json_body};
use http::StatusCode;

use crate::daemon::Daemon;
use crate::registry::{IdentityRecord, new_generation_id};

fn wire(r: &IdentityRecord) -> Identity {
    Identity {
        module_id: r.module_id.clone(),
        managed_by: r.managed_by.clone(),
        generation_id: r.generation_id.clone(),
        auth_type: "sas".into(),
    }
}

pub async fn list(d: &Daemon) -> Result<Response, ApiError> {
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
    match d.registry.read().await.identities.get(name) {
        Some(r) => Ok(json_response(StatusCode::OK, &wire(r))),
        None => Err(ApiError::not_found_msg(format!(
            "identity {name:?} not found"
        ))),
    }
}

pub async fn delete(d: &Daemon, name: &str) -> Result<Response, ApiError> {
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
    Ok(http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Default::default())
        .expect("static response"))
}

/// A standalone device has no provisioning service to ask again: the request is accepted and
/// answered with what stays true.
pub async fn reprovision(d: &Daemon) -> Result<Response, ApiError> {
    tracing::info!(device = %d.config.provisioning.device_id, "reprovision requested; local identity mode keeps the configured device identity");
    Ok(http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Default::default())
        .expect("static response"))
}
