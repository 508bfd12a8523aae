//! The device key and module keys. The device key lives in keyd; each module's keys are derived
//! in keyd from it over `<moduleId>:<generationId>:primary` (and `:secondary`), so a new
//! generation gets new keys and no module key is ever stored. A hub-connected device sets the
//! same derived keys in the hub ([`crate::cloud`]), so what a module signs the hub accepts.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine as _;
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput, SymmetricUsage};
use zeroize::Zeroizing;

use edgesec_pki::config::KeySource;

use crate::config::{DeviceAuth, Provisioning};

pub const DEVICE_KEY_ID: &str = "edgesec/device-key";
pub const ENCRYPTION_KEY_ID: &str = "edgesec/workload-encryption";

pub struct Identities {
    keyd: KeydClient,
    device_key: String,
    encryption_key: String,
    /// Derived module key handles by (module, generation id).
    module_keys: RwLock<HashMap<(String, String), String>>,
}

impl Identities {
    /// Loads or creates the device key (importing a connection string's key) and the workload
    /// encryption key.
    pub async fn init(keyd: &KeydClient, provisioning: &Provisioning) -> Result<Self, String> {
        let device_key = match (&provisioning.shared_access_key, &provisioning.auth) {
            (Some(b64), _) => import_hmac_key(keyd, DEVICE_KEY_ID, b64).await,
            (None, DeviceAuth::SasKey(KeySource::KeyStore(id))) => {
                keyd.load_key(id.as_str()).await.map_err(|e| {
                    edgesec_http::ClientError::InvalidRequest(format!(
                        "the device key {id} (provisioning.authentication.device_id_pk) is not \
                         usable in keyd ({e}); import it first, e.g. with `edgesec config import`"
                    ))
                })
            }
            (None, DeviceAuth::SasKey(KeySource::File(path))) => {
                let b64 = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the device key {}: {e}", path.display()))?
                        .trim()
                        .to_owned(),
                );
                import_hmac_key(keyd, DEVICE_KEY_ID, &b64).await
            }
            _ => {
                keyd.create_key(DEVICE_KEY_ID, SymmetricUsage::HmacSha256)
                    .await
            }
        }
        .map_err(|e| format!("cannot set up the device key in keyd: {e}"))?
        .key_handle;
        let encryption_key = keyd
            .create_key(ENCRYPTION_KEY_ID, SymmetricUsage::Aes256Gcm)
            .await
            .map_err(|e| format!("cannot set up the workload encryption key in keyd: {e}"))?
            .key_handle;
        Ok(Identities {
            keyd: keyd.clone(),
            device_key,
            encryption_key,
            module_keys: RwLock::default(),
        })
    }

    /// The handle of a module's key for its current generation.
    pub async fn module_key(&self, module_id: &str, generation_id: &str) -> Result<String, String> {
        let k = (module_id.to_owned(), generation_id.to_owned());
        if let Some(h) = self.module_keys.read().expect("lock").get(&k) {
            return Ok(h.clone());
        }
        let label = format!("{module_id}:{generation_id}:primary");
        let h = self
            .keyd
            .derive(&self.device_key, label.as_bytes())
            .await
            .map_err(|e| e.to_string())?
            .key_handle;
        self.module_keys.write().expect("lock").insert(k, h.clone());
        Ok(h)
    }

    /// Forgets cached handles of a module (its generation changed or it was removed).
    pub fn forget(&self, module_id: &str) {
        self.module_keys
            .write()
            .expect("lock")
            .retain(|(m, _), _| m != module_id);
    }

    /// The device-level key: the hub's SAS key of a manual SAS device, and the master that
    /// module keys are derived from.
    pub fn device_key(&self) -> &str {
        &self.device_key
    }

    /// The handle of a module's secondary key (its primary is [`Self::module_key`]).
    pub async fn module_secondary_key(
        &self,
        module_id: &str,
        generation_id: &str,
    ) -> Result<String, String> {
        let label = format!("{module_id}:{generation_id}:secondary");
        self.keyd
            .derive(&self.device_key, label.as_bytes())
            .await
            .map(|r| r.key_handle)
            .map_err(|e| e.to_string())
    }

    pub fn encryption_key(&self) -> &str {
        &self.encryption_key
    }

    pub fn keyd(&self) -> &KeydClient {
        &self.keyd
    }
}

/// Puts a base64 HMAC key (a connection string's, or a key file's) into keyd as `key_id`. If
/// keyd already holds a different key under the id (the key changed), the old one is replaced.
pub(crate) async fn import_hmac_key(
    keyd: &KeydClient,
    key_id: &str,
    b64: &str,
) -> Result<edgesec_keyd::api::KeyHandleResponse, edgesec_http::ClientError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                edgesec_http::ClientError::InvalidRequest(
                    format!("the key for {key_id} (a connection string's SharedAccessKey or a key file) is not base64"),
                )
            })?,
    );
    let import = edgesec_keyd::api::ImportRequest {
        key_id: key_id.into(),
        key_bytes: Some(bytes.to_vec()),
        usage: Some(SymmetricUsage::HmacSha256),
        ..Default::default()
    };
    if let Ok(existing) = keyd.load_key(key_id).await {
        // Same key? Compare an HMAC made by keyd with one made here.
        let probe = b"edgesec device key check";
        let theirs = keyd
            .sign(
                &existing.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(probe),
            )
            .await?;
        let ours = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes),
            probe,
        );
        if aws_lc_rs::constant_time::verify_slices_are_equal(&theirs, ours.as_ref()).is_ok() {
            return Ok(existing);
        }
        tracing::warn!(
            key = key_id,
            "the configured key differs from the one in keyd; replacing it"
        );
        keyd.delete(&existing.key_handle).await?;
    }
    keyd.import(&import).await
}
