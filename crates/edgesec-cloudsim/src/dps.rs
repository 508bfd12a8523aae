//! The Device Provisioning Service routes: register and operation status.
//!
//! Every register PUT is checked against the enrollment (SAS, X.509 chain
//! or TPM flow) and recorded; every poll must carry the same credential.
//! When an operation reports "assigned", the device is put in the hub with
//! the credential it proved.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Credential;
use crate::clock::{now_unix, utc_timestamp};
use crate::model::{Enrollment, EnrollmentAttestation, RegistrationRecord};
use crate::reply::{Failure, Reply, dps_error, json_reply, with_retry_after};
use crate::router::Call;
use crate::state::{IssuedAuthKey, Operation, Outcome, SimState};
use crate::{sas, tpm};

/// DPS names the key of every device token this way.
const SAS_KEY_NAME: &str = "registration";
/// Hint for how soon to poll an operation that is still assigning.
const POLL_RETRY_AFTER_SECS: u64 = 1;
const MAX_ID_LEN: usize = 128;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    registration_id: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    tpm: Option<TpmBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TpmBody {
    endorsement_key: String,
    storage_root_key: String,
}

/// How a register request was authenticated.
enum Authenticated {
    Passed {
        credential: Credential,
        method: &'static str,
        tpm_blob: Option<Vec<u8>>,
    },
    /// TPM, first round: answer 401 with this authentication key blob.
    TpmChallenge(Vec<u8>),
}

/// `PUT /{scope}/registrations/{id}/register`
pub(crate) fn register(state: &SimState, call: &Call, scope: &str, registration_id: &str) -> Reply {
    let mut record = RegistrationRecord {
        payload: None,
        method: "none".to_owned(),
        accepted: false,
        error: None,
    };
    let reply = match checked_register(state, call, scope, registration_id, &mut record) {
        Ok(reply) => reply,
        Err(failure) => {
            record.error = Some(failure.message.clone());
            dps_error(&failure)
        }
    };
    state.lock().record_registration(registration_id, record);
    reply
}

fn checked_register(
    state: &SimState,
    call: &Call,
    scope: &str,
    registration_id: &str,
    record: &mut RegistrationRecord,
) -> Result<Reply, Failure> {
    check_id("registration id", registration_id)?;
    let body: RegisterBody = serde_json::from_slice(&call.body).map_err(|e| {
        Failure::bad_request(format!("request body is not a valid registration: {e}"))
    })?;
    record.payload = body.payload.clone().filter(|p| !p.is_null());
    if body.registration_id != registration_id {
        return Err(Failure::bad_request(format!(
            "body registrationId {:?} does not match the path's {registration_id:?}",
            body.registration_id
        )));
    }
    let enrollment = state.lock().enrollments.get(registration_id).cloned();
    let enrollment = enrollment.ok_or_else(|| {
        Failure::unauthorized(format!(
            "no enrollment for registration id {registration_id:?}"
        ))
    })?;

    let authenticated = authenticate(state, call, scope, &enrollment, body.tpm.as_ref(), record)?;
    let (credential, tpm_blob) = match authenticated {
        Authenticated::TpmChallenge(blob) => {
            record.method = "tpm-challenge".to_owned();
            record.error = Some("TPM challenge: authentication key issued".to_owned());
            return Ok(json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({ "authenticationKey": STANDARD.encode(blob) }),
            ));
        }
        Authenticated::Passed {
            credential,
            method,
            tpm_blob,
        } => {
            record.method = method.to_owned();
            (credential, tpm_blob)
        }
    };

    let outcome = match &enrollment.fail_with {
        Some((code, message)) => Outcome::Failed {
            code: *code,
            message: message.clone(),
        },
        None => Outcome::Assigned {
            device_id: enrollment
                .device_id
                .clone()
                .unwrap_or_else(|| registration_id.to_owned()),
            hub: enrollment
                .assigned_hub
                .clone()
                .unwrap_or_else(|| state.hub_hostname.clone()),
            payload: enrollment.return_payload.clone(),
            tpm_blob,
        },
    };
    let operation = Operation {
        scope: scope.to_owned(),
        registration_id: registration_id.to_owned(),
        credential,
        polls_left: enrollment.assigning_polls,
        outcome,
    };
    let operation_id = state.lock().add_operation(operation);
    record.accepted = true;
    Ok(assigning(&operation_id))
}

fn authenticate(
    state: &SimState,
    call: &Call,
    scope: &str,
    enrollment: &Enrollment,
    tpm_body: Option<&TpmBody>,
    record: &mut RegistrationRecord,
) -> Result<Authenticated, Failure> {
    let registration_id = enrollment.registration_id.as_str();
    let audience = format!("{scope}/registrations/{registration_id}");
    let credential = match &enrollment.attestation {
        EnrollmentAttestation::SymmetricKey { primary_key_b64 } => {
            Credential::HmacKey(decode_key("enrollment key", primary_key_b64)?)
        }
        EnrollmentAttestation::GroupSymmetricKey { group_key_b64 } => {
            let group_key = decode_key("group key", group_key_b64)?;
            Credential::HmacKey(sas::derive_group_device_key(&group_key, registration_id))
        }
        EnrollmentAttestation::X509 { ca_pem } => Credential::X509 {
            ca_pem: ca_pem.clone(),
        },
        EnrollmentAttestation::Tpm {
            endorsement_key_b64,
        } => {
            record.method = "tpm".to_owned();
            let tpm_body = tpm_body.ok_or_else(|| {
                Failure::bad_request(
                    "a TPM registration needs tpm.endorsementKey and tpm.storageRootKey",
                )
            })?;
            let issued = tpm_auth_key(
                state,
                call,
                registration_id,
                endorsement_key_b64.as_deref(),
                tpm_body,
            )?;
            let issued = match issued {
                TpmStep::Challenge(blob) => return Ok(Authenticated::TpmChallenge(blob)),
                TpmStep::Verify(issued) => issued,
            };
            let credential = Credential::HmacKey(issued.key);
            credential
                .check(call, &audience, Some(SAS_KEY_NAME), registration_id)
                .map_err(Failure::unauthorized)?;
            return Ok(Authenticated::Passed {
                credential,
                method: "tpm",
                tpm_blob: Some(issued.blob),
            });
        }
    };
    record.method = credential.kind().to_owned();
    credential
        .check(call, &audience, Some(SAS_KEY_NAME), registration_id)
        .map_err(Failure::unauthorized)?;
    Ok(Authenticated::Passed {
        method: credential.kind(),
        credential,
        tpm_blob: None,
    })
}

enum TpmStep {
    Challenge(Vec<u8>),
    Verify(IssuedAuthKey),
}

/// The TPM flow: check the endorsement key, then either send a fresh
/// challenge (no Authorization header) or hand back the key last issued.
/// Without an enrolled EK, the first EK that gets a challenge is the one.
fn tpm_auth_key(
    state: &SimState,
    call: &Call,
    registration_id: &str,
    enrolled_ek_b64: Option<&str>,
    tpm_body: &TpmBody,
) -> Result<TpmStep, Failure> {
    let ek = STANDARD
        .decode(&tpm_body.endorsement_key)
        .map_err(|_| Failure::bad_request("tpm.endorsementKey is not base64"))?;
    let srk = STANDARD
        .decode(&tpm_body.storage_root_key)
        .map_err(|_| Failure::bad_request("tpm.storageRootKey is not base64"))?;
    let enrolled_ek = enrolled_ek_b64
        .map(|b64| decode_key("enrolled endorsement key", b64))
        .transpose()?;
    let check_ek = |first_seen: Option<&Vec<u8>>| match enrolled_ek.as_ref().or(first_seen) {
        Some(expected) if *expected != ek => Err(Failure::unauthorized(
            "tpm.endorsementKey does not match the enrollment",
        )),
        _ => Ok(()),
    };

    {
        let inner = state.lock();
        let registration = inner.tpm.get(registration_id);
        check_ek(registration.and_then(|r| r.first_endorsement_key.as_ref()))?;
        if call.headers.contains_key(AUTHORIZATION) {
            let issued = registration.and_then(|r| r.issued.clone()).ok_or_else(|| {
                Failure::unauthorized(
                    "no authentication key was issued yet; register without Authorization first",
                )
            })?;
            return Ok(TpmStep::Verify(issued));
        }
    }

    // The challenge does RSA work: not under the lock.
    let (blob, key) = tpm::challenge(&ek, &srk)
        .map_err(|e| Failure::bad_request(format!("TPM challenge could not be made: {e}")))?;
    let mut inner = state.lock();
    let registration = inner.tpm.entry(registration_id.to_owned()).or_default();
    // Checked again: another first request may have won meanwhile.
    check_ek(registration.first_endorsement_key.as_ref())?;
    if enrolled_ek.is_none() {
        registration.first_endorsement_key.get_or_insert(ek.clone());
    }
    registration.issued = Some(IssuedAuthKey {
        blob: blob.clone(),
        key,
    });
    Ok(TpmStep::Challenge(blob))
}

/// `GET /{scope}/registrations/{id}/operations/{operationId}`
pub(crate) fn operation_status(
    state: &SimState,
    call: &Call,
    scope: &str,
    registration_id: &str,
    operation_id: &str,
) -> Reply {
    match checked_operation_status(state, call, scope, registration_id, operation_id) {
        Ok(reply) => reply,
        Err(failure) => dps_error(&failure),
    }
}

fn checked_operation_status(
    state: &SimState,
    call: &Call,
    scope: &str,
    registration_id: &str,
    operation_id: &str,
) -> Result<Reply, Failure> {
    let not_found = || {
        Failure::not_found(format!(
            "no operation {operation_id:?} for {registration_id:?}"
        ))
    };
    let credential = {
        let inner = state.lock();
        let operation = inner.operations.get(operation_id).ok_or_else(not_found)?;
        if operation.registration_id != registration_id
            || !operation.scope.eq_ignore_ascii_case(scope)
        {
            return Err(not_found());
        }
        operation.credential.clone()
    };
    let audience = format!("{scope}/registrations/{registration_id}");
    credential
        .check(call, &audience, Some(SAS_KEY_NAME), registration_id)
        .map_err(Failure::unauthorized)?;

    let mut inner = state.lock();
    let operation = inner
        .operations
        .get_mut(operation_id)
        .ok_or_else(not_found)?;
    if operation.polls_left > 0 {
        operation.polls_left -= 1;
        return Ok(assigning(operation_id));
    }
    let now = utc_timestamp(now_unix());
    let body = match &operation.outcome {
        Outcome::Failed { code, message } => json!({
            "operationId": operation_id,
            "status": "failed",
            "registrationState": {
                "registrationId": registration_id,
                "createdDateTimeUtc": now,
                "lastUpdatedDateTimeUtc": now,
                "status": "failed",
                "errorCode": code,
                "errorMessage": message,
            },
        }),
        Outcome::Assigned {
            device_id,
            hub,
            payload,
            tpm_blob,
        } => {
            let mut registration_state = json!({
                "registrationId": registration_id,
                "createdDateTimeUtc": now,
                "assignedHub": hub,
                "deviceId": device_id,
                "status": "assigned",
                "substatus": "initialAssignment",
                "lastUpdatedDateTimeUtc": now,
            });
            if let Some(payload) = payload {
                registration_state["payload"] = payload.clone();
            }
            if let Some(blob) = tpm_blob {
                registration_state["tpm"] = json!({ "authenticationKey": STANDARD.encode(blob) });
            }
            let (device_id, hub) = (device_id.clone(), hub.clone());
            let credential = operation.credential.clone();
            inner.upsert_device(&device_id, &hub, credential);
            json!({ "operationId": operation_id, "status": "assigned", "registrationState": registration_state })
        }
    };
    Ok(json_reply(StatusCode::OK, &body))
}

fn assigning(operation_id: &str) -> Reply {
    let body = json!({ "operationId": operation_id, "status": "assigning" });
    with_retry_after(
        json_reply(StatusCode::ACCEPTED, &body),
        Some(POLL_RETRY_AFTER_SECS),
    )
}

/// Registration ids are case-insensitive letters, digits and `-._:`.
fn check_id(what: &str, id: &str) -> Result<(), Failure> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(allowed) {
        return Err(Failure::bad_request(format!(
            "{what} {id:?} must be 1 to {MAX_ID_LEN} letters, digits, '-', '.', '_' or ':'"
        )));
    }
    Ok(())
}

/// Keys come from the test's own enrollment; a bad one is a test bug, but
/// it still gets a clear answer rather than a panic in the server.
fn decode_key(what: &str, b64: &str) -> Result<Vec<u8>, Failure> {
    STANDARD.decode(b64).map_err(|_| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the {what} in the sim is not base64"),
        )
    })
}
