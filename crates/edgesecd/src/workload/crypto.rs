//! `sign`, `encrypt` and `decrypt` for a module.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_api::workload::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, SignRequest, SignResponse,
};
use edgesec_http::{ApiError, ClientError, Request, Response, json_response, parse_json_body};
use edgesec_keys::{SignAlgorithm, SignInput};
use http::StatusCode;

use crate::daemon::Daemon;

fn b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(value)
        .map_err(|e| ApiError::bad_request(format!("invalid parameter: {field}: {e}")))
}

fn keyd_error(what: &str, e: ClientError) -> ApiError {
    ApiError::internal_logged(&format!("{what}: {e}"))
}

/// The module's registered name and current generation, for a name from the path.
async fn identity_of(d: &Daemon, module: &str) -> Result<(String, String), ApiError> {
    let records = d.registry.read().await;
    let name = records
        .modules
        .keys()
        .find(|n| super::same_module(n, module))
        .cloned()
        .ok_or_else(|| ApiError::not_found_msg(format!("module {module:?} not found")))?;
    let generation = records
        .identities
        .get(&name)
        .map(|i| i.generation_id.clone())
        .ok_or_else(|| ApiError::not_found_msg(format!("module {module:?} has no identity")))?;
    Ok((name, generation))
}

/// HMAC-SHA256 of `data` with the module's key (derived in keyd for its current generation).
pub async fn sign(d: &Daemon, module: &str, req: &Request) -> Result<Response, ApiError> {
    let body: SignRequest = parse_json_body(req)?;
    let data = b64("data", &body.data)?;
    let (name, generation) = identity_of(d, module).await?;
    let key = d
        .identities
        .module_key(&name, &generation)
        .await
        .map_err(|e| ApiError::internal_logged(&e))?;
    let tag = d
        .identities
        .keyd()
        .sign(&key, SignAlgorithm::HmacSha256, SignInput::Message(&data))
        .await
        .map_err(|e| keyd_error("module sign", e))?;
    Ok(json_response(
        StatusCode::OK,
        &SignResponse {
            digest: STANDARD.encode(tag),
        },
    ))
}

/// Ciphertexts are bound to the module name and the generation id in the path (as IoT Edge binds
/// them) and to the initialization vector the caller gives: a ciphertext made for another
/// generation, module or IV does not decrypt.
fn aad(module: &str, generation: &str, iv: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(module.len() + generation.len() + 1 + iv.len());
    a.extend_from_slice(module.as_bytes());
    a.extend_from_slice(generation.as_bytes());
    a.push(0);
    a.extend_from_slice(iv);
    a
}

pub async fn encrypt(
    d: &Daemon,
    module: &str,
    generation: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: EncryptRequest = parse_json_body(req)?;
    let plaintext = zeroize::Zeroizing::new(b64("plaintext", &body.plaintext)?);
    let iv = b64("initializationVector", &body.initialization_vector)?;
    let ct = d
        .identities
        .keyd()
        .encrypt(
            d.identities.encryption_key(),
            &plaintext,
            &aad(module, generation, &iv),
        )
        .await
        .map_err(|e| keyd_error("module encrypt", e))?;
    Ok(json_response(
        StatusCode::OK,
        &EncryptResponse {
            ciphertext: STANDARD.encode(ct),
        },
    ))
}

pub async fn decrypt(
    d: &Daemon,
    module: &str,
    generation: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: DecryptRequest = parse_json_body(req)?;
    let ct = b64("ciphertext", &body.ciphertext)?;
    let iv = b64("initializationVector", &body.initialization_vector)?;
    let pt = d
        .identities
        .keyd()
        .decrypt(d.identities.encryption_key(), &ct, &aad(module, generation, &iv))
        .await
        .map_err(|e| match e.status() {
            Some(StatusCode::BAD_REQUEST) => ApiError::bad_request("decryption failed: the ciphertext was not made for this module, generation and initialization vector, or was altered"),
            _ => keyd_error("module decrypt", e),
        })?;
    Ok(json_response(
        StatusCode::OK,
        &DecryptResponse {
            plaintext: STANDARD.encode(&*pt),
        },
    ))
}
