//! DPS TPM attestation routes: `GET /tpm/keys` (the endorsement and storage keys' public areas)
//! and `POST /tpm/import` (the authentication key of a DPS TPM challenge, unwrapped by the TPM
//! into a new HMAC key). Backends without a TPM answer 501.

use edgesec_http::{ApiError, Request, Response, parse_json_body};

use super::{KeyService, ok};
use crate::api::{ImportTpmAuthKeyRequest, MAX_TPM_AUTH_KEY_BLOB, TpmPublicKeys};

impl KeyService {
    /// Open to root, keyd's own user and the uids with grants: the public areas identify the
    /// device, so strangers do not get them.
    pub(super) async fn tpm_public_keys(&self, uid: u32) -> Result<Response, ApiError> {
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        if uid != 0 && uid != own && !self.principals.knows(uid) {
            return Err(ApiError::forbidden(format!(
                "uid {uid} may not read the TPM's public keys"
            )));
        }
        let keys = self.blocking(|s| s.tpm_public_keys()).await?;
        Ok(ok(&TpmPublicKeys {
            endorsement_key: keys.endorsement_key,
            storage_root_key: keys.storage_root_key,
        }))
    }

    /// Authorized like `import`: the caller must be allowed to create the key id.
    pub(super) async fn import_tpm_auth_key(
        &self,
        uid: u32,
        req: &Request,
    ) -> Result<Response, ApiError> {
        let body: ImportTpmAuthKeyRequest = parse_json_body(req)?;
        let id = self.authorize_id(uid, &body.key_id)?;
        if body.authentication_key.is_empty()
            || body.authentication_key.len() > MAX_TPM_AUTH_KEY_BLOB
        {
            return Err(ApiError::bad_request(format!(
                "authenticationKey must be 1 to {MAX_TPM_AUTH_KEY_BLOB} bytes"
            )));
        }
        let blob = body.authentication_key;
        let info = self
            .blocking(move |s| s.import_tpm_auth_key(&id, &blob))
            .await?;
        self.handle_response(&info)
    }
}
