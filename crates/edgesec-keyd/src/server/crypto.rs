//! Routes that use a key through its handle: public key, sign, verify, derive, export, encrypt,
//! decrypt.

use edgesec_http::{ApiError, Request, Response, parse_json_body};
use edgesec_keys::{KeyRef, SignInput};

use super::{KeyService, key_error, ok};
use crate::api::{
    DecryptRequest, DecryptResponse, DeriveRequest, EncryptRequest, EncryptResponse,
    ExportResponse, HandleRequest, KeyHandleResponse, KeyType, PublicKeyResponse, SignRequest,
    SignResponse, VerifyRequest, VerifyResponse,
};

/// Exactly one of `message` and `digest`.
fn sign_input<'a>(
    message: &'a Option<Vec<u8>>,
    digest: &'a Option<Vec<u8>>,
) -> Result<SignInput<'a>, ApiError> {
    match (message, digest) {
        (Some(m), None) => Ok(SignInput::Message(m)),
        (None, Some(d)) => Ok(SignInput::Digest(d)),
        _ => Err(ApiError::bad_request(
            "give exactly one of message and digest",
        )),
    }
}

impl KeyService {
    pub(super) fn public_key(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: HandleRequest = parse_json_body(req)?;
        let KeyRef::Stored(id) = self.authorize_handle(uid, &body.key_handle)? else {
            return Err(ApiError::bad_request(
                "a derived key is symmetric and has no public key",
            ));
        };
        let pk = self.store.public_key(&id).map_err(|e| key_error(&e))?;
        Ok(ok(&PublicKeyResponse {
            algorithm: pk.algorithm,
            pem: pk.to_pem(),
            spki: pk.spki_der,
        }))
    }

    pub(super) fn sign(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: SignRequest = parse_json_body(req)?;
        let key = self.authorize_handle(uid, &body.key_handle)?;
        let input = sign_input(&body.message, &body.digest)?;
        let signature = self
            .store
            .sign(&key, body.algorithm, input)
            .map_err(|e| key_error(&e))?;
        Ok(ok(&SignResponse { signature }))
    }

    pub(super) fn verify(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: VerifyRequest = parse_json_body(req)?;
        let key = self.authorize_handle(uid, &body.key_handle)?;
        let input = sign_input(&body.message, &body.digest)?;
        let valid = self
            .store
            .verify(&key, body.algorithm, input, &body.signature)
            .map_err(|e| key_error(&e))?;
        Ok(ok(&VerifyResponse { valid }))
    }

    /// A handle for HMAC-SHA256(base, label). Nothing is stored; the child is recomputed on use.
    pub(super) fn derive(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: DeriveRequest = parse_json_body(req)?;
        let KeyRef::Stored(base) = self.authorize_handle(uid, &body.base_key_handle)? else {
            return Err(ApiError::bad_request(
                "a derived key cannot derive further keys",
            ));
        };
        if body.label.is_empty() || body.label.len() > 1024 {
            return Err(ApiError::bad_request("label must be 1 to 1024 bytes"));
        }
        self.store
            .check_derivable(&base)
            .map_err(|e| key_error(&e))?;
        let key = KeyRef::Derived {
            base: base.clone(),
            label: body.label,
        };
        let key_handle = self.handles.issue(&key).map_err(|e| key_error(&e))?;
        Ok(ok(&KeyHandleResponse {
            key_handle,
            key_id: base.to_string(),
            key_type: KeyType::Derived,
            algorithm: "hmac-sha256".into(),
        }))
    }

    /// The bytes of a derived key, for callers the config allows (`export` patterns).
    pub(super) fn export(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: HandleRequest = parse_json_body(req)?;
        let KeyRef::Derived { base, label } = self.authorize_handle(uid, &body.key_handle)? else {
            return Err(ApiError::bad_request("only derived keys can be exported"));
        };
        if !self.principals.may_export(uid, base.as_str()) {
            tracing::info!(uid, key = %base, "refused: uid may not export keys derived from this key");
            return Err(ApiError::forbidden(format!(
                "uid {uid} may not export keys derived from {base:?}"
            )));
        }
        let key = self
            .store
            .export_derived(&base, &label)
            .map_err(|e| key_error(&e))?;
        // The response body is the one copy that leaves keyd; the buffer here is wiped on drop.
        Ok(ok(&ExportResponse { key: key.to_vec() }))
    }

    pub(super) fn encrypt(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: EncryptRequest = parse_json_body(req)?;
        let key = self.authorize_handle(uid, &body.key_handle)?;
        let ciphertext = self
            .store
            .encrypt(&key, &body.plaintext, &body.aad)
            .map_err(|e| key_error(&e))?;
        Ok(ok(&EncryptResponse { ciphertext }))
    }

    pub(super) fn decrypt(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: DecryptRequest = parse_json_body(req)?;
        let key = self.authorize_handle(uid, &body.key_handle)?;
        let plaintext = self
            .store
            .decrypt(&key, &body.ciphertext, &body.aad)
            .map_err(|e| key_error(&e))?;
        Ok(ok(&DecryptResponse {
            plaintext: plaintext.to_vec(),
        }))
    }
}
