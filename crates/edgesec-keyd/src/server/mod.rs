//! The key service's HTTP API: routing, authorization and error mapping. The operations
//! themselves are in `keys.rs` (create, load, import, delete, list) and `crypto.rs` (public key,
//! sign, verify, derive, export, encrypt, decrypt); `tpm.rs` serves DPS TPM attestation.

mod attestation;
mod crypto;
mod keys;
mod tpm;

use std::sync::Arc;

use edgesec_http::{
    ApiError, Handler, Peer, Request, Response, api_version, json_response, path_segments,
};
use edgesec_keys::{KeyError, KeyId, KeyRef, KeyStore};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::api::API_VERSIONS;
use crate::handle::{HandleCodec, RESERVED_PREFIX};
use crate::principals::Principals;

/// The state every request shares. No lock is held across an operation: the store does its own
/// fine-grained locking.
pub struct KeyService {
    store: Arc<dyn KeyStore>,
    handles: HandleCodec,
    principals: Principals,
    /// The measurement log; when set, every client is measured before it is served.
    measure: Option<Arc<crate::measure::Measurements>>,
    /// The soft store's master key is sealed to the measurements' TPM.
    sealed: bool,
    /// Some keys live in a token or TPM, where one operation takes milliseconds (or hangs
    /// with the device): such calls hand their worker over while they run.
    hardware: bool,
}

/// `/capabilities`: the store's, plus the sealed master key's state when there is one.
#[derive(Serialize)]
struct CapabilitiesOut {
    #[serde(flatten)]
    store: edgesec_keys::Capabilities,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<crate::api::SealedState>,
}

impl KeyService {
    pub fn new(store: Arc<dyn KeyStore>, principals: Principals) -> Result<Self, KeyError> {
        let handles = HandleCodec::new(store.clone())?;
        let caps = store.capabilities();
        let hardware = caps.hardware_backed || caps.backends.iter().any(|b| b.hardware_backed);
        Ok(KeyService {
            store,
            handles,
            principals,
            measure: None,
            sealed: false,
            hardware,
        })
    }

    /// Reports the sealed master key's state in `/capabilities` (the TPM is the measurements').
    pub fn with_sealed_master_key(mut self) -> Self {
        self.sealed = true;
        self
    }

    async fn capabilities(&self) -> Result<Response, ApiError> {
        let tpm = self.measure.as_ref().and_then(|m| m.tpm()).cloned();
        let sealed = match tpm.filter(|_| self.sealed) {
            None => None,
            Some(t) => {
                let set = tokio::task::spawn_blocking(move || t.owner_auth_set())
                    .await
                    .map_err(|e| ApiError::internal_logged(&e))?;
                Some(crate::api::SealedState {
                    owner_auth_set: set
                        .inspect_err(|e| tracing::warn!(error = %e, "cannot read the TPM's owner authorization state"))
                        .ok(),
                })
            }
        };
        Ok(ok(&CapabilitiesOut {
            store: self.store.capabilities(),
            sealed,
        }))
    }

    /// Measures every client before serving it, and serves the measurement and quote routes.
    pub fn with_measurements(mut self, m: Arc<crate::measure::Measurements>) -> Self {
        self.measure = Some(m);
        self
    }

    async fn route(&self, peer: &Peer, req: &Request) -> Result<Response, ApiError> {
        api_version(req, API_VERSIONS)?;
        let segments = path_segments(req.uri().path())?;
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let uid = peer.caller.uid;
        match (req.method(), segs.as_slice()) {
            (&Method::POST, ["keypair"]) => self.create_key_pair(uid, req).await,
            (&Method::GET, ["keypair", id @ ..]) if !id.is_empty() => {
                self.may_block(|| self.load_key(uid, &id.join("/"), true))
            }
            (&Method::POST, ["key"]) => self.create_key(uid, req).await,
            (&Method::GET, ["key", id @ ..]) if !id.is_empty() => {
                self.may_block(|| self.load_key(uid, &id.join("/"), false))
            }
            (&Method::POST, ["import"]) => self.import(uid, req).await,
            (&Method::POST, ["delete"]) => self.delete(uid, req).await,
            (&Method::GET, ["keys"]) => self.list(uid).await,
            (&Method::GET, ["capabilities"]) => self.capabilities().await,
            (&Method::POST, ["publickey"]) => self.may_block(|| self.public_key(uid, req)),
            (&Method::POST, ["sign"]) => self.may_block(|| self.sign(uid, req)),
            (&Method::POST, ["verify"]) => self.may_block(|| self.verify(uid, req)),
            (&Method::POST, ["derive"]) => self.may_block(|| self.derive(uid, req)),
            (&Method::POST, ["derive", "export"]) => self.may_block(|| self.export(uid, req)),
            (&Method::POST, ["encrypt"]) => self.may_block(|| self.encrypt(uid, req)),
            (&Method::POST, ["decrypt"]) => self.may_block(|| self.decrypt(uid, req)),
            (&Method::POST, ["measurements"]) => {
                self.may_block(|| self.report_measurement(peer, req))
            }
            (&Method::GET, ["measurements"]) => self.measurement_log(uid),
            (&Method::POST, ["attestation", "quote"]) => self.quote(uid, req).await,
            (&Method::GET, ["tpm", "keys"]) => self.tpm_public_keys(uid).await,
            (&Method::POST, ["tpm", "import"]) => self.import_tpm_auth_key(uid, req).await,
            (
                _,
                [
                    "keypair" | "key" | "import" | "delete" | "keys" | "capabilities" | "publickey"
                    | "sign" | "verify" | "derive" | "encrypt" | "decrypt" | "measurements"
                    | "attestation" | "tpm",
                    ..,
                ],
            ) => Err(ApiError::method_not_allowed()),
            _ => Err(ApiError::not_found()),
        }
    }

    /// A caller-supplied key id, validated and checked against the caller's grants.
    fn authorize_id(&self, uid: u32, id: &str) -> Result<KeyId, ApiError> {
        let id = KeyId::new(id).map_err(|e| key_error(&e))?;
        self.authorize(uid, &id)?;
        Ok(id)
    }

    fn authorize(&self, uid: u32, id: &KeyId) -> Result<(), ApiError> {
        if id.as_str().starts_with(RESERVED_PREFIX) {
            return Err(ApiError::forbidden(format!(
                "key ids starting with {RESERVED_PREFIX:?} are reserved"
            )));
        }
        if !self.principals.may_use(uid, id.as_str()) {
            tracing::info!(uid, key = %id, "refused: uid may not use key");
            return Err(ApiError::forbidden(format!(
                "uid {uid} may not use key {id:?}"
            )));
        }
        Ok(())
    }

    /// The key behind a handle, after checking the handle and the caller's grants.
    fn authorize_handle(&self, uid: u32, handle: &str) -> Result<KeyRef, ApiError> {
        let key = self.handles.open(handle).map_err(|e| match e {
            Ok(_) => ApiError::bad_request("invalid key handle"),
            Err(e) => key_error(&e),
        })?;
        self.authorize(uid, key.base_id())?;
        Ok(key)
    }

    /// Runs a key operation in place or, when the store has hardware parts, with this worker
    /// handed over to the runtime for the duration, so one slow token or TPM command does not
    /// stall every other request (the soft store's microseconds stay inline).
    fn may_block<T>(&self, f: impl FnOnce() -> T) -> T {
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if self.hardware && multi {
            tokio::task::block_in_place(f)
        } else {
            f()
        }
    }

    /// Runs a store call that may block (file I/O, key generation) off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn KeyStore) -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| ApiError::internal_logged(&e))?
            .map_err(|e| key_error(&e))
    }
}

impl Handler for KeyService {
    async fn call(&self, peer: Peer, req: Request) -> Response {
        if let Some(m) = &self.measure
            && let Err(e) = m.admit(&peer).await
        {
            return e.into_response();
        }
        match self.route(&peer, &req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(uid = peer.caller.uid, method = %req.method(), path = req.uri().path(), status = e.status.as_u16(), "request refused");
                e.into_response()
            }
        }
    }
}

fn ok<T: Serialize + ?Sized>(body: &T) -> Response {
    json_response(StatusCode::OK, body)
}

/// Maps a key store error to the wire. Backend failures are logged with a request id and
/// answered only with that id.
fn key_error(e: &KeyError) -> ApiError {
    match e {
        KeyError::NotFound(_) => ApiError::not_found_msg(e.to_string()),
        KeyError::AlreadyExists(_) => ApiError::conflict(e.to_string()),
        KeyError::NotSupported(_) => ApiError::new(StatusCode::NOT_IMPLEMENTED, e.to_string()),
        KeyError::WrongAlgorithm(_) | KeyError::InvalidInput(_) | KeyError::DecryptFailed => {
            ApiError::bad_request(e.to_string())
        }
        KeyError::Corrupted(_) => {
            tracing::error!("{e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        KeyError::Backend(_) => ApiError::internal_logged(e),
    }
}
