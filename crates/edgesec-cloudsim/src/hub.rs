//! The IoT Hub module-identity routes, authenticated as the device.
//!
//! `GET /devices/{d}/modules`, and `GET`, `PUT`, `DELETE
//! /devices/{d}/modules/{m}`. A create gets a fresh `generationId`; an
//! update needs `If-Match` (`*` or the current etag) and keeps it; a delete
//! needs `If-Match` too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{ETAG, IF_MATCH};
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::now_unix;
use crate::reply::{Failure, Reply, empty_reply, hub_error, json_reply};
use crate::router::Call;
use crate::sas;
use crate::state::{ModuleRecord, SimState, random_bytes};

const MAX_ID_LEN: usize = 128;
/// Symmetric keys the hub accepts: 16 to 64 bytes.
const KEY_LEN_RANGE: std::ops::RangeInclusive<usize> = 16..=64;
const GENERATED_KEY_LEN: usize = 32;
/// Far above what a device needs; keeps a runaway client bounded.
const MAX_MODULES_PER_DEVICE: usize = 1_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModuleBody {
    module_id: String,
    #[serde(default)]
    device_id: Option<String>,
    /// On an update, when given, it must be the module's current one.
    #[serde(default)]
    generation_id: Option<String>,
    #[serde(default)]
    authentication: Option<AuthenticationBody>,
    #[serde(default)]
    managed_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticationBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    symmetric_key: Option<SymmetricKeyBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymmetricKeyBody {
    #[serde(default)]
    primary_key: Option<String>,
    #[serde(default)]
    secondary_key: Option<String>,
}

/// All module routes: authenticate the device, then act.
pub(crate) fn handle(
    state: &SimState,
    call: &Call,
    device_id: &str,
    module_id: Option<&str>,
) -> Reply {
    let result = authenticate_device(state, call, device_id).and_then(|()| {
        match (&call.method, module_id) {
            (&Method::GET, None) => list(state, device_id),
            (&Method::GET, Some(module_id)) => get(state, device_id, module_id),
            (&Method::PUT, Some(module_id)) => put(state, call, device_id, module_id),
            (&Method::DELETE, Some(module_id)) => delete(state, call, device_id, module_id),
            (method, _) => Err(Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed here"),
            )),
        }
    });
    result.unwrap_or_else(|failure| hub_error(&failure))
}

fn authenticate_device(state: &SimState, call: &Call, device_id: &str) -> Result<(), Failure> {
    let (hub, credential) = {
        let inner = state.lock();
        if inner.rejected_devices.contains(device_id) {
            return Err(Failure::unauthorized(format!(
                "device {device_id:?} is rejected by the test"
            )));
        }
        let device = inner.devices.get(device_id).ok_or_else(|| {
            Failure::unauthorized(format!("device {device_id:?} is not registered in the hub"))
        })?;
        (device.hub.clone(), device.credential.clone())
    };
    let audience = format!("{hub}/devices/{device_id}");
    credential
        .check(call, &audience, None, device_id)
        .map_err(Failure::unauthorized)
}

/// Checks a module's own SAS token (what a module would send to the hub):
/// audience `{hub}/devices/{d}/modules/{m}`, no `skn`, signed with the
/// module's primary or secondary key.
pub(crate) fn verify_module_token(
    state: &SimState,
    device_id: &str,
    module_id: &str,
    authorization: &str,
) -> Result<(), String> {
    let (hub, keys) = {
        let inner = state.lock();
        let device = inner
            .devices
            .get(device_id)
            .ok_or_else(|| format!("device {device_id:?} is not registered in the hub"))?;
        let module = device
            .modules
            .get(module_id)
            .ok_or_else(|| format!("module {module_id:?} not found on device {device_id:?}"))?;
        let keys = [&module.primary_key, &module.secondary_key]
            .into_iter()
            .flatten()
            .map(|k| {
                STANDARD
                    .decode(k)
                    .map_err(|_| "a module key is not base64".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        (device.hub.clone(), keys)
    };
    if keys.is_empty() {
        return Err(format!("module {module_id:?} has no SAS keys"));
    }
    let audience = format!("{hub}/devices/{device_id}/modules/{module_id}");
    let expected = sas::Expected {
        audience: &audience,
        key_name: None,
        now: now_unix(),
    };
    let mut last_error = String::new();
    for key in &keys {
        match sas::verify(Some(authorization), &expected, key) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn list(state: &SimState, device_id: &str) -> Result<Reply, Failure> {
    let inner = state.lock();
    let modules: Vec<Value> = inner
        .devices
        .get(device_id)
        .map(|d| {
            d.modules
                .iter()
                .map(|(id, m)| module_json(device_id, id, m))
                .collect()
        })
        .unwrap_or_default();
    Ok(json_reply(StatusCode::OK, &Value::Array(modules)))
}

fn get(state: &SimState, device_id: &str, module_id: &str) -> Result<Reply, Failure> {
    let inner = state.lock();
    let module = inner
        .devices
        .get(device_id)
        .and_then(|d| d.modules.get(module_id))
        .ok_or_else(|| module_not_found(device_id, module_id))?;
    Ok(module_reply(device_id, module_id, module))
}

fn put(state: &SimState, call: &Call, device_id: &str, module_id: &str) -> Result<Reply, Failure> {
    check_id("module id", module_id)?;
    let body: ModuleBody = serde_json::from_slice(&call.body)
        .map_err(|e| Failure::bad_request(format!("request body is not a valid module: {e}")))?;
    if body.module_id != module_id {
        return Err(Failure::bad_request(format!(
            "body moduleId {:?} does not match the path's {module_id:?}",
            body.module_id
        )));
    }
    if body.device_id.as_deref().is_some_and(|d| d != device_id) {
        return Err(Failure::bad_request(
            "body deviceId does not match the path's device id",
        ));
    }
    let auth = body
        .authentication
        .as_ref()
        .map(parse_authentication)
        .transpose()?;
    let if_match = if_match(call)?;

    let mut inner = state.lock();
    let number = inner.next_number();
    let device = inner.devices.get_mut(device_id).ok_or_else(|| {
        Failure::unauthorized(format!("device {device_id:?} is not registered in the hub"))
    })?;
    let module_count = device.modules.len();
    let module = match (device.modules.get_mut(module_id), if_match) {
        (Some(_), None) => {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                format!("module {module_id:?} already exists; update it with If-Match"),
            ));
        }
        (Some(existing), Some(tag)) => {
            check_etag(existing, &tag)?;
            if body
                .generation_id
                .as_ref()
                .is_some_and(|g| *g != existing.generation_id)
            {
                return Err(Failure::bad_request(format!(
                    "generationId does not match module {module_id:?}'s {:?}",
                    existing.generation_id
                )));
            }
            existing.version += 1;
            if let Some(auth) = auth {
                (
                    existing.auth_type,
                    existing.primary_key,
                    existing.secondary_key,
                ) = auth;
            }
            if body.managed_by.is_some() {
                existing.managed_by = body.managed_by;
            }
            existing.clone()
        }
        (None, Some(_)) => {
            return Err(Failure::new(
                StatusCode::PRECONDITION_FAILED,
                format!("module {module_id:?} does not exist; create it without If-Match"),
            ));
        }
        (None, None) if module_count >= MAX_MODULES_PER_DEVICE => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                format!("device {device_id:?} already has {MAX_MODULES_PER_DEVICE} modules"),
            ));
        }
        (None, None) => {
            let (auth_type, primary_key, secondary_key) = auth.unwrap_or_else(generated_sas_keys);
            let module = ModuleRecord {
                generation_id: generation_id(number),
                version: 1,
                auth_type,
                primary_key,
                secondary_key,
                managed_by: body.managed_by,
            };
            device.modules.insert(module_id.to_owned(), module.clone());
            module
        }
    };
    Ok(module_reply(device_id, module_id, &module))
}

fn delete(
    state: &SimState,
    call: &Call,
    device_id: &str,
    module_id: &str,
) -> Result<Reply, Failure> {
    let tag = if_match(call)?.ok_or_else(|| {
        Failure::new(
            StatusCode::PRECONDITION_FAILED,
            "delete needs an If-Match header ('*' or the etag)",
        )
    })?;
    let mut inner = state.lock();
    let modules = &mut inner
        .devices
        .get_mut(device_id)
        .ok_or_else(|| module_not_found(device_id, module_id))?
        .modules;
    let module = modules
        .get(module_id)
        .ok_or_else(|| module_not_found(device_id, module_id))?;
    check_etag(module, &tag)?;
    modules.remove(module_id);
    Ok(empty_reply(StatusCode::NO_CONTENT))
}

/// `(type, primaryKey, secondaryKey)` from a request's `authentication`.
fn parse_authentication(
    auth: &AuthenticationBody,
) -> Result<(String, Option<String>, Option<String>), Failure> {
    match auth.kind.as_str() {
        "sas" => {
            let keys = auth.symmetric_key.as_ref();
            let primary = keys.and_then(|k| k.primary_key.clone());
            let secondary = keys.and_then(|k| k.secondary_key.clone());
            match (primary, secondary) {
                (None, None) => Ok(generated_sas_keys()),
                (Some(primary), Some(secondary)) => {
                    check_key("primaryKey", &primary)?;
                    check_key("secondaryKey", &secondary)?;
                    Ok(("sas".to_owned(), Some(primary), Some(secondary)))
                }
                _ => Err(Failure::bad_request(
                    "symmetricKey needs both primaryKey and secondaryKey, or neither",
                )),
            }
        }
        "none" | "certificateAuthority" => Ok((auth.kind.clone(), None, None)),
        other => Err(Failure::bad_request(format!(
            "authentication type {other:?} is not supported; use sas, certificateAuthority or none"
        ))),
    }
}

/// Like the hub, a module created without keys gets random ones.
fn generated_sas_keys() -> (String, Option<String>, Option<String>) {
    let key = || Some(STANDARD.encode(random_bytes(GENERATED_KEY_LEN)));
    ("sas".to_owned(), key(), key())
}

fn check_key(name: &str, b64: &str) -> Result<(), Failure> {
    let key = STANDARD
        .decode(b64)
        .map_err(|_| Failure::bad_request(format!("{name} is not base64")))?;
    if !KEY_LEN_RANGE.contains(&key.len()) {
        return Err(Failure::bad_request(format!(
            "{name} must be {} to {} bytes, not {}",
            KEY_LEN_RANGE.start(),
            KEY_LEN_RANGE.end(),
            key.len()
        )));
    }
    Ok(())
}

/// The `If-Match` value with quotes removed, if the header is there.
fn if_match(call: &Call) -> Result<Option<String>, Failure> {
    call.headers
        .get(IF_MATCH)
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().trim_matches('"').to_owned())
                .map_err(|_| Failure::bad_request("If-Match is not ASCII"))
        })
        .transpose()
}

fn check_etag(module: &ModuleRecord, tag: &str) -> Result<(), Failure> {
    if tag == "*" || tag == etag(module) {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match {tag:?} does not match etag {:?}", etag(module)),
        ))
    }
}

fn etag(module: &ModuleRecord) -> String {
    STANDARD.encode(module.version.to_string())
}

/// Generation ids look like the hub's: 18 decimal digits, unique per create.
fn generation_id(number: u64) -> String {
    let random = u64::from_le_bytes(random_bytes(8).try_into().unwrap_or_default());
    format!("63{:08}{:08}", number % 100_000_000, random % 100_000_000)
}

fn module_reply(device_id: &str, module_id: &str, module: &ModuleRecord) -> Reply {
    let mut reply = json_reply(StatusCode::OK, &module_json(device_id, module_id, module));
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", etag(module))) {
        reply.headers_mut().insert(ETAG, value);
    }
    reply
}

fn module_json(device_id: &str, module_id: &str, module: &ModuleRecord) -> Value {
    let mut body = json!({
        "moduleId": module_id,
        "deviceId": device_id,
        "generationId": module.generation_id,
        "etag": etag(module),
        "connectionState": "Disconnected",
        "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
        "lastActivityTime": "0001-01-01T00:00:00Z",
        "cloudToDeviceMessageCount": 0,
        "authentication": {
            "symmetricKey": { "primaryKey": module.primary_key, "secondaryKey": module.secondary_key },
            "x509Thumbprint": { "primaryThumbprint": null, "secondaryThumbprint": null },
            "type": module.auth_type,
        },
    });
    if let Some(managed_by) = &module.managed_by {
        body["managedBy"] = json!(managed_by);
    }
    body
}

fn module_not_found(device_id: &str, module_id: &str) -> Failure {
    Failure::not_found(format!(
        "module {module_id:?} not found on device {device_id:?}"
    ))
}

/// Hub ids: 1 to 128 ASCII characters, no control characters or '/'.
fn check_id(what: &str, id: &str) -> Result<(), Failure> {
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id.chars().all(|c| c.is_ascii_graphic() && c != '/')
    {
        return Err(Failure::bad_request(format!(
            "{what} {id:?} must be 1 to {MAX_ID_LEN} printable ASCII characters"
        )));
    }
    Ok(())
}
