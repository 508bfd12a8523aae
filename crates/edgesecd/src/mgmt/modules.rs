//! `/modules` routes.

use edgesec_api::mgmt::{ModuleList, ModuleSpec};
use edgesec_http::{ApiError, Request, Response, json_response, parse_json_body, query_param};
use http::StatusCode;

use crate::daemon::Daemon;

fn no_content() -> Response {
    http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Default::default())
        .expect("static response")
}

pub async fn list(d: &Daemon) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &ModuleList {
            modules: d.list_modules().await,
        },
    ))
}

pub async fn get(d: &Daemon, name: &str) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &d.details(name).await?))
}

pub async fn create(d: &Daemon, req: &Request) -> Result<Response, ApiError> {
    let spec: ModuleSpec = parse_json_body(req)?;
    Ok(json_response(
        StatusCode::CREATED,
        &d.create_module(spec).await?,
    ))
}

pub async fn update(d: &Daemon, name: &str, req: &Request) -> Result<Response, ApiError> {
    let spec: ModuleSpec = parse_json_body(req)?;
    if spec.name != name {
        return Err(ApiError::bad_request(
            "module name in spec does not match URI",
        ));
    }
    let start = match query_param(req, "start")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("invalid parameter: start")),
    };
    Ok(json_response(
        StatusCode::CREATED,
        &d.update_module(spec, start).await?,
    ))
}

pub async fn delete(d: &Daemon, name: &str) -> Result<Response, ApiError> {
    d.delete_module(name).await?;
    Ok(no_content())
}

/// Checks the spec; for a container module with pull policy `on-create`, pulls its image
/// (IoT Edge's prepareupdate). Process modules have nothing to prepare.
pub async fn prepare_update(d: &Daemon, name: &str, req: &Request) -> Result<Response, ApiError> {
    let spec: ModuleSpec = parse_json_body(req)?;
    if spec.name != name {
        return Err(ApiError::bad_request(
            "module name in spec does not match URI",
        ));
    }
    d.prepare_module(&spec).await?;
    Ok(no_content())
}

pub async fn action(d: &Daemon, name: &str, action: &str) -> Result<Response, ApiError> {
    match action {
        "start" => d.start_module(name).await?,
        "stop" => d.stop_module(name).await?,
        _ => d.restart_module(name).await?,
    }
    Ok(no_content())
}
