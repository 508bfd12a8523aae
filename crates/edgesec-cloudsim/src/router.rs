//! From an HTTP request to a handler: read the body within bounds, find the
//! route, check the api-version, apply injected DPS failures, and log the
//! request line.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use rustls_pki_types::CertificateDer;

use crate::reply::{Failure, Reply, dps_error, hub_error, with_retry_after};
use crate::state::SimState;
use crate::{dps, hub};

pub const DPS_API_VERSION: &str = "2021-06-01";
pub const HUB_API_VERSION: &str = "2017-11-08-preview";
const MAX_BODY_BYTES: usize = 64 * 1024;
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One request, with its body read, as the handlers see it.
pub(crate) struct Call {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The TLS client chain (leaf first); empty when none was sent.
    pub peer_certs: Arc<Vec<CertificateDer<'static>>>,
}

enum Route {
    DpsRegister {
        scope: String,
        registration_id: String,
    },
    DpsOperation {
        scope: String,
        registration_id: String,
        operation_id: String,
    },
    HubModules {
        device_id: String,
    },
    HubModule {
        device_id: String,
        module_id: String,
    },
}

impl Route {
    fn is_dps(&self) -> bool {
        matches!(self, Route::DpsRegister { .. } | Route::DpsOperation { .. })
    }
}

pub(crate) async fn handle(
    state: Arc<SimState>,
    peer_certs: Arc<Vec<CertificateDer<'static>>>,
    request: Request<Incoming>,
) -> Reply {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    // Logged decoded, so tests can match ids whatever the client escaped.
    let line = format!(
        "{} {}",
        parts.method,
        percent_decode_str(&path).decode_utf8_lossy()
    );
    let reply = match parse_route(&path) {
        None => dps_error(&Failure::not_found(format!(
            "no route for {} {path}",
            parts.method
        ))),
        Some(route) => match read_body(body).await {
            Err(failure) if route.is_dps() => dps_error(&failure),
            Err(failure) => hub_error(&failure),
            Ok(body) => {
                let call = Call {
                    method: parts.method,
                    headers: parts.headers,
                    body,
                    peer_certs,
                };
                dispatch(&state, &call, parts.uri.query(), route)
            }
        },
    };
    state
        .lock()
        .log_request(format!("{line} -> {}", reply.status().as_u16()));
    reply
}

fn dispatch(state: &SimState, call: &Call, query: Option<&str>, route: Route) -> Reply {
    if route.is_dps() {
        if let Err(failure) = check_api_version(query, DPS_API_VERSION) {
            return dps_error(&failure);
        }
        let injected = state.lock().take_injected_failure();
        if let Some((status, retry_after)) = injected {
            return injected_failure(state, &route, status, retry_after);
        }
    } else if let Err(failure) = check_api_version(query, HUB_API_VERSION) {
        return hub_error(&failure);
    }

    match route {
        Route::DpsRegister {
            scope,
            registration_id,
        } if call.method == Method::PUT => dps::register(state, call, &scope, &registration_id),
        Route::DpsOperation {
            scope,
            registration_id,
            operation_id,
        } if call.method == Method::GET => {
            dps::operation_status(state, call, &scope, &registration_id, &operation_id)
        }
        Route::HubModules { device_id } => hub::handle(state, call, &device_id, None),
        Route::HubModule {
            device_id,
            module_id,
        } => hub::handle(state, call, &device_id, Some(&module_id)),
        _ => dps_error(&Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here", call.method),
        )),
    }
}

/// The answer for a request that `fail_next` told the sim to fail.
fn injected_failure(
    state: &SimState,
    route: &Route,
    status: u16,
    retry_after: Option<u64>,
) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("injected failure: {status}");
    if let Route::DpsRegister {
        registration_id, ..
    } = route
    {
        let record = crate::model::RegistrationRecord {
            payload: None,
            method: "none".to_owned(),
            accepted: false,
            error: Some(message.clone()),
        };
        state.lock().record_registration(registration_id, record);
    }
    with_retry_after(dps_error(&Failure::new(status, message)), retry_after)
}

fn parse_route(path: &str) -> Option<Route> {
    let segments: Vec<String> = path
        .strip_prefix('/')?
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8().map(|s| s.into_owned()))
        .collect::<Result<_, _>>()
        .ok()?;
    if segments.iter().any(String::is_empty) {
        return None;
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = match s.as_slice() {
        ["devices", device, "modules"] => Route::HubModules {
            device_id: device.to_string(),
        },
        ["devices", device, "modules", module] => Route::HubModule {
            device_id: device.to_string(),
            module_id: module.to_string(),
        },
        [scope, "registrations", registration, "register"] => Route::DpsRegister {
            scope: scope.to_string(),
            registration_id: registration.to_string(),
        },
        [
            scope,
            "registrations",
            registration,
            "operations",
            operation,
        ] => Route::DpsOperation {
            scope: scope.to_string(),
            registration_id: registration.to_string(),
            operation_id: operation.to_string(),
        },
        _ => return None,
    };
    Some(route)
}

fn check_api_version(query: Option<&str>, expected: &str) -> Result<(), Failure> {
    let version = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "api-version")
        .map(|(_, value)| percent_decode_str(value).decode_utf8_lossy().into_owned());
    match version {
        Some(v) if v == expected => Ok(()),
        Some(v) => Err(Failure::bad_request(format!(
            "api-version {v:?} is not supported; use {expected}"
        ))),
        None => Err(Failure::bad_request(format!(
            "missing api-version query parameter; use {expected}"
        ))),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Failure> {
    let limited = Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_READ_TIMEOUT, limited.collect()).await {
        Err(_) => Err(Failure::new(
            StatusCode::REQUEST_TIMEOUT,
            "request body was not sent in time",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )),
        Ok(Err(e)) => Err(Failure::bad_request(format!(
            "request body could not be read: {e}"
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
