//! The Device Provisioning Service client (api-version 2021-06-01).
//!
//! `PUT {endpoint}/{scope}/registrations/{id}/register` with `{"registrationId", "payload"?}`
//! answers 202 with an operation; `GET .../operations/{operationId}` is polled until it says
//! `assigned` (with the hub, the device id and an optional payload) or `failed` (with the
//! service's message). The poll waits the service's `Retry-After`, else
//! [`PollPolicy::default_interval`] (5 s, as the reference client waits).
//!
//! Attestation: a symmetric key signs a SAS token (`skn=registration`); X.509 is the TLS client
//! certificate of the [`HttpsClient`]; TPM first sends the endorsement and storage keys
//! without a token, gets 401 with an `authenticationKey`, imports it into the TPM through keyd
//! and signs the SAS token with it from then on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_keyd::client::KeydClient;
use http::Method;
use http::header::AUTHORIZATION;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::CloudError;
use crate::https::{CloudResponse, Endpoint, HttpsClient};
use crate::retry::with_retries;
use crate::sas::{self, Audience, HmacKey, KeydHmacKey};

pub const API_VERSION: &str = "2021-06-01";
const SERVICE: &str = "DPS";

/// How the operation is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// The wait when the service gives no `Retry-After`.
    pub default_interval: Duration,
    /// The least wait, whatever the service says (so a `Retry-After: 0` cannot spin).
    pub min_interval: Duration,
    /// Give up when the operation is not done by then.
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            default_interval: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            deadline: Duration::from_secs(300),
        }
    }
}

impl PollPolicy {
    fn wait(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.default_interval)
            .min(crate::retry::MAX_RETRY_AFTER)
            .max(self.min_interval)
    }
}

/// How the device proves who it is to DPS.
#[derive(Clone)]
pub enum Attestation {
    /// A SAS token signed with this key (individual enrollment: the enrollment's key;
    /// group enrollment: the key keyd derived from the group key and the registration id).
    SymmetricKey(Arc<dyn HmacKey>),
    /// The TLS client certificate of the client.
    X509,
    /// The TPM behind keyd; the imported authentication key gets `auth_key_id` there.
    Tpm {
        keyd: KeydClient,
        auth_key_id: String,
    },
}

/// What DPS assigned.
#[derive(Clone)]
pub struct Assignment {
    pub hub: String,
    pub device_id: String,
    pub payload: Option<Value>,
    /// TPM: the authentication key's handle in keyd, which the hub takes as the device key.
    pub tpm_auth_key: Option<String>,
}

impl std::fmt::Debug for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assignment")
            .field("hub", &self.hub)
            .field("device_id", &self.device_id)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

pub struct DpsClient {
    pub http: HttpsClient,
    pub endpoint: Endpoint,
    pub scope: String,
    pub registration_id: String,
    pub poll: PollPolicy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    #[serde(default)]
    operation_id: Option<String>,
    status: String,
    #[serde(default)]
    registration_state: Option<RegistrationState>,
    #[serde(default)]
    error_code: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationState {
    #[serde(default)]
    assigned_hub: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    error_code: Option<u64>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    tpm: Option<TpmState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TpmState {
    #[serde(default)]
    authentication_key: Option<String>,
}

/// The answer to a TPM registration without a token.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TpmChallenge {
    authentication_key: String,
}

fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl DpsClient {
    fn register_path(&self) -> String {
        format!(
            "/{}/registrations/{}/register?api-version={API_VERSION}",
            segment(&self.scope),
            segment(&self.registration_id)
        )
    }

    fn operation_path(&self, operation_id: &str) -> String {
        format!(
            "/{}/registrations/{}/operations/{}?api-version={API_VERSION}",
            segment(&self.scope),
            segment(&self.registration_id),
            segment(operation_id)
        )
    }

    fn audience(&self) -> Audience<'_> {
        Audience::Registration {
            scope: &self.scope,
            registration_id: &self.registration_id,
        }
    }

    /// Registers and waits for the assignment.
    pub async fn register(
        &self,
        attestation: &Attestation,
        payload: Option<&Value>,
    ) -> Result<Assignment, CloudError> {
        let mut body = json!({ "registrationId": self.registration_id });
        if let Some(p) = payload {
            body["payload"] = p.clone();
        }
        let (key, mut tpm_auth_key): (Option<Arc<dyn HmacKey>>, Option<String>) = match attestation
        {
            Attestation::SymmetricKey(k) => (Some(k.clone()), None),
            Attestation::X509 => (None, None),
            Attestation::Tpm { keyd, auth_key_id } => {
                let (key, handle) = self.tpm_challenge(keyd, auth_key_id, &mut body).await?;
                (Some(key), Some(handle))
            }
        };
        let key = key.as_deref();
        let first = self
            .call(Method::PUT, &self.register_path(), key, Some(&body))
            .await?;
        if first.status != http::StatusCode::ACCEPTED && first.status != http::StatusCode::OK {
            return Err(first.error(SERVICE));
        }
        let mut op: Operation = first.json(SERVICE)?;
        let mut retry_after = first.retry_after();
        let started = Instant::now();
        loop {
            match op.status.as_str() {
                "assigned" => {
                    let state = op.registration_state.unwrap_or_default();
                    if let (Attestation::Tpm { keyd, auth_key_id }, Some(blob)) = (
                        attestation,
                        state
                            .tpm
                            .as_ref()
                            .and_then(|t| t.authentication_key.as_ref()),
                    ) {
                        // DPS may hand a new authentication key with the assignment
                        tpm_auth_key = Some(import_auth_key(keyd, auth_key_id, blob).await?);
                    }
                    let hub = state.assigned_hub.filter(|h| !h.is_empty());
                    let device = state.device_id.filter(|d| !d.is_empty());
                    let (Some(hub), Some(device_id)) = (hub, device) else {
                        return Err(CloudError::Protocol(
                            "DPS said assigned but named no hub or device id".into(),
                        ));
                    };
                    return Ok(Assignment {
                        hub,
                        device_id,
                        payload: state.payload,
                        tpm_auth_key,
                    });
                }
                "failed" | "disabled" => {
                    let state = op.registration_state.unwrap_or_default();
                    let message = state
                        .error_message
                        .or(op.message)
                        .unwrap_or_else(|| format!("the registration is {}", op.status));
                    return Err(CloudError::RegistrationFailed {
                        error_code: state.error_code.or(op.error_code),
                        message,
                    });
                }
                "assigning" | "unassigned" => {}
                other => {
                    return Err(CloudError::Protocol(format!(
                        "DPS registration status {other:?} is not one this client knows"
                    )));
                }
            }
            if started.elapsed() > self.poll.deadline {
                return Err(CloudError::Unreachable(format!(
                    "DPS did not finish the registration within {} s",
                    self.poll.deadline.as_secs()
                )));
            }
            let id = op.operation_id.clone().ok_or_else(|| {
                CloudError::Protocol("DPS answered without an operationId".into())
            })?;
            tokio::time::sleep(self.poll.wait(retry_after)).await;
            let r = self
                .call(Method::GET, &self.operation_path(&id), key, None)
                .await?;
            if r.status != http::StatusCode::OK && r.status != http::StatusCode::ACCEPTED {
                return Err(r.error(SERVICE));
            }
            retry_after = r.retry_after();
            op = r.json(SERVICE)?;
            if op.operation_id.is_none() {
                op.operation_id = Some(id);
            }
        }
    }

    /// One DPS call with retries; a fresh token for each attempt.
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&dyn HmacKey>,
        body: Option<&Value>,
    ) -> Result<CloudResponse, CloudError> {
        with_retries(&self.http.options().retry, "DPS request", || async {
            let mut headers = Vec::new();
            if let Some(k) = key {
                headers.push((AUTHORIZATION, sas::token(k, self.audience()).await?));
            }
            let r = self
                .http
                .send(method.clone(), &self.endpoint, path, &headers, body)
                .await?;
            if r.status.is_server_error() || r.status == http::StatusCode::TOO_MANY_REQUESTS {
                return Err(r.error(SERVICE));
            }
            Ok(r)
        })
        .await
    }

    /// TPM: registers with the endorsement and storage keys and no token; DPS answers 401
    /// with the authentication key, which keyd imports into the TPM.
    async fn tpm_challenge(
        &self,
        keyd: &KeydClient,
        auth_key_id: &str,
        body: &mut Value,
    ) -> Result<(Arc<dyn HmacKey>, String), CloudError> {
        let keys = keyd
            .tpm_public_keys()
            .await
            .map_err(|e| CloudError::Keys(format!("the TPM's public keys: {e}")))?;
        body["tpm"] = json!({
            "endorsementKey": STANDARD.encode(&keys.endorsement_key),
            "storageRootKey": STANDARD.encode(&keys.storage_root_key),
        });
        let r = self
            .call(Method::PUT, &self.register_path(), None, Some(body))
            .await?;
        if r.status != http::StatusCode::UNAUTHORIZED {
            return Err(match r.status.is_success() {
                true => CloudError::Protocol(
                    "DPS accepted a TPM registration without the challenge".into(),
                ),
                false => r.error(SERVICE),
            });
        }
        let challenge: TpmChallenge = r.json(SERVICE)?;
        let handle = import_auth_key(keyd, auth_key_id, &challenge.authentication_key).await?;
        Ok((
            Arc::new(KeydHmacKey::new(keyd.clone(), handle.clone())),
            handle,
        ))
    }
}

async fn import_auth_key(
    keyd: &KeydClient,
    auth_key_id: &str,
    blob_b64: &str,
) -> Result<String, CloudError> {
    let blob = STANDARD.decode(blob_b64.trim()).map_err(|_| {
        CloudError::Protocol("DPS sent an authenticationKey that is not base64".into())
    })?;
    keyd.import_tpm_auth_key(auth_key_id, &blob)
        .await
        .map(|r| r.key_handle)
        .map_err(|e| CloudError::Keys(format!("cannot import the TPM authentication key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_wait_the_service_or_the_default_but_never_less_than_the_minimum() {
        let p = PollPolicy::default();
        assert_eq!(p.wait(None), Duration::from_secs(5));
        assert_eq!(p.wait(Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.wait(Some(Duration::ZERO)), Duration::from_secs(1));
        let fast = PollPolicy {
            default_interval: Duration::from_millis(200),
            min_interval: Duration::from_millis(100),
            ..p
        };
        assert_eq!(fast.wait(None), Duration::from_millis(200));
    }

    #[test]
    fn operation_answers_parse() {
        let op: Operation = serde_json::from_str(
            r#"{"operationId":"4.abc","status":"assigned","registrationState":{"registrationId":"r","assignedHub":"h.azure-devices.net","deviceId":"d","status":"assigned","payload":{"a":1}}}"#,
        )
        .unwrap();
        let s = op.registration_state.unwrap();
        assert_eq!(s.assigned_hub.as_deref(), Some("h.azure-devices.net"));
        assert_eq!(s.payload, Some(json!({"a":1})));
        let op: Operation = serde_json::from_str(
            r#"{"operationId":"x","status":"failed","registrationState":{"status":"failed","errorCode":400209,"errorMessage":"Custom allocation failed"}}"#,
        )
        .unwrap();
        assert_eq!(op.registration_state.unwrap().error_code, Some(400209));
    }
}
