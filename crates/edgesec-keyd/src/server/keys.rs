//! Key lifecycle routes: create-or-load, load, import, delete, list.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use edgesec_http::{ApiError, Request, Response, parse_json_body};
use edgesec_keys::{ImportMaterial, KeyInfo, KeyKind, KeyRef};
use zeroize::Zeroizing;

use super::{KeyService, key_error, ok};
use crate::api::{
    CreateKeyPairRequest, CreateKeyRequest, HandleRequest, ImportRequest, KeyEntry,
    KeyHandleResponse, KeyType, ListResponse,
};
use crate::handle::RESERVED_PREFIX;

/// Largest key file `import` reads.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

pub(super) fn entry(info: &KeyInfo) -> KeyEntry {
    let (key_type, algorithm) = match info.kind {
        KeyKind::KeyPair(a) => (KeyType::KeyPair, a.as_str()),
        KeyKind::Symmetric(u) => (KeyType::Symmetric, u.as_str()),
    };
    KeyEntry {
        key_id: info.id.to_string(),
        key_type,
        algorithm: algorithm.to_owned(),
    }
}

impl KeyService {
    pub(super) fn handle_response(&self, info: &KeyInfo) -> Result<Response, ApiError> {
        let key_handle = self
            .handles
            .issue(&KeyRef::Stored(info.id.clone()))
            .map_err(|e| key_error(&e))?;
        let e = entry(info);
        Ok(ok(&KeyHandleResponse {
            key_handle,
            key_id: e.key_id,
            key_type: e.key_type,
            algorithm: e.algorithm,
        }))
    }

    pub(super) async fn create_key_pair(
        &self,
        uid: u32,
        req: &Request,
    ) -> Result<Response, ApiError> {
        let body: CreateKeyPairRequest = parse_json_body(req)?;
        let id = self.authorize_id(uid, &body.key_id)?;
        let alg = body.algorithm.unwrap_or_default();
        let info = self.blocking(move |s| s.create_key_pair(&id, alg)).await?;
        self.handle_response(&info)
    }

    pub(super) async fn create_key(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: CreateKeyRequest = parse_json_body(req)?;
        let id = self.authorize_id(uid, &body.key_id)?;
        let info = self
            .blocking(move |s| s.create_symmetric_key(&id, body.usage))
            .await?;
        self.handle_response(&info)
    }

    /// `GET /keypair/{id}` and `GET /key/{id}`: a handle for an existing key of that type.
    pub(super) fn load_key(
        &self,
        uid: u32,
        id: &str,
        key_pair: bool,
    ) -> Result<Response, ApiError> {
        let id = self.authorize_id(uid, id)?;
        let info = self.store.key_info(&id).map_err(|e| key_error(&e))?;
        match (info.kind, key_pair) {
            (KeyKind::KeyPair(_), true) | (KeyKind::Symmetric(_), false) => {
                self.handle_response(&info)
            }
            _ => Err(ApiError::not_found_msg(format!(
                "key {id:?} is not a {}",
                if key_pair {
                    "key pair"
                } else {
                    "symmetric key"
                }
            ))),
        }
    }

    pub(super) async fn import(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: ImportRequest = parse_json_body(req)?;
        let id = self.authorize_id(uid, &body.key_id)?;
        let material = match (body.uri, body.pem, body.key_bytes, body.usage) {
            (Some(uri), None, None, None) => ImportMaterial::Pem(read_key_file(uid, &uri)?),
            (None, Some(pem), None, None) => ImportMaterial::Pem(Zeroizing::new(pem.into_bytes())),
            (None, None, Some(bytes), None) => ImportMaterial::Pkcs8Der(Zeroizing::new(bytes)),
            (None, None, Some(bytes), Some(usage)) => {
                ImportMaterial::Symmetric(usage, Zeroizing::new(bytes))
            }
            (None, None, None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "usage is given but keyBytes is missing",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one key source: uri, pem, or keyBytes (with usage for a symmetric key)",
                ));
            }
        };
        let info = self.blocking(move |s| s.import(&id, material)).await?;
        self.handle_response(&info)
    }

    pub(super) async fn delete(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let body: HandleRequest = parse_json_body(req)?;
        let key = self.authorize_handle(uid, &body.key_handle)?;
        let KeyRef::Stored(id) = key else {
            return Err(ApiError::bad_request(
                "a derived key is not stored and cannot be deleted",
            ));
        };
        self.blocking(move |s| s.delete(&id)).await?;
        Ok(http::Response::builder()
            .status(http::StatusCode::NO_CONTENT)
            .body(Default::default())
            .expect("static response"))
    }

    /// `GET /keys`: the keys this caller may use.
    pub(super) async fn list(&self, uid: u32) -> Result<Response, ApiError> {
        let keys = self.blocking(|s| s.list()).await?;
        let keys = keys
            .iter()
            .filter(|k| {
                !k.id.as_str().starts_with(RESERVED_PREFIX)
                    && self.principals.may_use(uid, k.id.as_str())
            })
            .map(entry)
            .collect();
        Ok(ok(&ListResponse { keys }))
    }
}

/// Reads a PEM key named by a `file://` URI. The file must belong to the caller (or the caller
/// is root): otherwise any caller could turn keyd into a signing oracle for a key it cannot read
/// itself, such as the host's SSH key.
fn read_key_file(uid: u32, uri: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let path = uri
        .strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| ApiError::bad_request("uri must be file:// followed by an absolute path"))?;
    let unreadable = |e: std::io::Error| {
        ApiError::bad_request(format!("cannot read the key file: {}", e.kind()))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if uid != 0 && meta.uid() != uid {
        return Err(ApiError::forbidden(
            "the key file must be owned by the caller",
        ));
    }
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(ApiError::bad_request(
            "the key file must be a regular file of at most 64 KiB",
        ));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(unreadable)?;
    Ok(buf)
}
