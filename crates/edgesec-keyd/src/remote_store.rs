//! [`RemoteKeyStore`]: the key service seen as a [`KeyStore`], so code written against the
//! trait (the certificate authority) keeps every key in keyd. Calls block the calling thread
//! on the async client; call it from `spawn_blocking` or a multi-threaded runtime.

use std::collections::HashMap;
use std::sync::RwLock;

use edgesec_http::ClientError;
use edgesec_keys::{
    Capabilities, KeyError, KeyId, KeyInfo, KeyKind, KeyPairAlgorithm, KeyRef, KeyStore, PublicKey,
    Result, SignAlgorithm, SignInput, SymmetricUsage,
};
use http::StatusCode;
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::api::{KeyHandleResponse, KeyType};
use crate::client::KeydClient;

pub struct RemoteKeyStore {
    client: KeydClient,
    runtime: Handle,
    /// Handles by key id (stored keys) and by (base id, label) (derived keys).
    handles: RwLock<HashMap<KeyRef, String>>,
}

fn key_error(id: Option<&KeyId>, e: ClientError) -> KeyError {
    let msg = e.to_string();
    match (e.status(), id) {
        (Some(StatusCode::NOT_FOUND), Some(id)) => KeyError::NotFound(id.clone()),
        (Some(StatusCode::CONFLICT), Some(id)) => KeyError::AlreadyExists(id.clone()),
        (Some(StatusCode::NOT_IMPLEMENTED), _) => {
            KeyError::NotSupported("this operation (key service backend)")
        }
        (Some(StatusCode::BAD_REQUEST), _) if msg.contains("decryption failed") => {
            KeyError::DecryptFailed
        }
        (Some(StatusCode::BAD_REQUEST), _) => KeyError::InvalidInput(msg),
        _ => KeyError::Backend(format!("key service: {msg}")),
    }
}

fn info_of(r: &KeyHandleResponse) -> Result<KeyInfo> {
    let id = KeyId::new(&r.key_id)?;
    let kind = match r.key_type {
        KeyType::KeyPair => KeyKind::KeyPair(r.algorithm.parse()?),
        KeyType::Symmetric | KeyType::Derived => KeyKind::Symmetric(match r.algorithm.as_str() {
            "aes-256-gcm" => SymmetricUsage::Aes256Gcm,
            _ => SymmetricUsage::HmacSha256,
        }),
    };
    Ok(KeyInfo { id, kind })
}

impl RemoteKeyStore {
    /// `runtime` runs the client's futures; the usual choice is `Handle::current()` at start.
    pub fn new(client: KeydClient, runtime: Handle) -> Self {
        RemoteKeyStore {
            client,
            runtime,
            handles: RwLock::default(),
        }
    }

    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        tokio::task::block_in_place(|| self.runtime.block_on(fut))
    }

    fn remember(&self, key: KeyRef, handle: &str) {
        self.handles
            .write()
            .expect("lock")
            .insert(key, handle.to_owned());
    }

    /// The handle of a key, loading it (as a key pair, else as a symmetric key) on first use.
    fn handle(&self, key: &KeyRef) -> Result<String> {
        if let Some(h) = self.handles.read().expect("lock").get(key) {
            return Ok(h.clone());
        }
        let h = match key {
            KeyRef::Stored(id) => {
                let r = self.block(async {
                    match self.client.load_key_pair(id.as_str()).await {
                        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                            self.client.load_key(id.as_str()).await
                        }
                        other => other,
                    }
                });
                r.map_err(|e| key_error(Some(id), e))?.key_handle
            }
            KeyRef::Derived { base, label } => {
                let base_handle = self.handle(&KeyRef::Stored(base.clone()))?;
                self.block(self.client.derive(&base_handle, label))
                    .map_err(|e| key_error(Some(base), e))?
                    .key_handle
            }
        };
        self.remember(key.clone(), &h);
        Ok(h)
    }
}

impl KeyStore for RemoteKeyStore {
    fn capabilities(&self) -> Capabilities {
        self.block(self.client.capabilities())
            .unwrap_or_else(|_| Capabilities::none("unreachable"))
    }

    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        let r = self
            .block(self.client.create_key_pair(id.as_str(), Some(algorithm)))
            .map_err(|e| key_error(Some(id), e))?;
        self.remember(KeyRef::Stored(id.clone()), &r.key_handle);
        info_of(&r)
    }

    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        let r = self
            .block(self.client.create_key(id.as_str(), usage))
            .map_err(|e| key_error(Some(id), e))?;
        self.remember(KeyRef::Stored(id.clone()), &r.key_handle);
        info_of(&r)
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        let entries = self
            .block(self.client.list())
            .map_err(|e| key_error(Some(id), e))?;
        let e = entries
            .iter()
            .find(|e| e.key_id == id.as_str())
            .ok_or_else(|| KeyError::NotFound(id.clone()))?;
        info_of(&KeyHandleResponse {
            key_handle: String::new(),
            key_id: e.key_id.clone(),
            key_type: e.key_type,
            algorithm: e.algorithm.clone(),
        })
    }

    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        let h = self.handle(&KeyRef::Stored(id.clone()))?;
        let r = self
            .block(self.client.public_key(&h))
            .map_err(|e| key_error(Some(id), e))?;
        Ok(PublicKey {
            algorithm: r.algorithm,
            spki_der: r.spki,
        })
    }

    fn sign(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        let h = self.handle(key)?;
        self.block(self.client.sign(&h, algorithm, input))
            .map_err(|e| key_error(Some(key.base_id()), e))
    }

    fn verify(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let h = self.handle(key)?;
        self.block(self.client.verify(&h, algorithm, input, signature))
            .map_err(|e| key_error(Some(key.base_id()), e))
    }

    fn check_derivable(&self, base: &KeyId) -> Result<()> {
        // derive with a throwaway label: keyd checks the base can derive
        self.handle(&KeyRef::Derived {
            base: base.clone(),
            label: b"edgesec derivability check".to_vec(),
        })
        .map(|_| ())
    }

    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let h = self.handle(&KeyRef::Derived {
            base: base.clone(),
            label: label.to_vec(),
        })?;
        self.block(self.client.export_derived(&h))
            .map_err(|e| key_error(Some(base), e))
    }

    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let h = self.handle(key)?;
        self.block(self.client.encrypt(&h, plaintext, aad))
            .map_err(|e| key_error(Some(key.base_id()), e))
    }

    fn decrypt(&self, key: &KeyRef, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let h = self.handle(key)?;
        self.block(self.client.decrypt(&h, ciphertext, aad))
            .map_err(|e| key_error(Some(key.base_id()), e))
    }

    fn delete(&self, id: &KeyId) -> Result<()> {
        let h = self.handle(&KeyRef::Stored(id.clone()))?;
        self.block(self.client.delete(&h))
            .map_err(|e| key_error(Some(id), e))?;
        self.handles
            .write()
            .expect("lock")
            .retain(|k, _| k.base_id() != id);
        Ok(())
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = self
            .block(self.client.list())
            .map_err(|e| key_error(None, e))?;
        entries
            .iter()
            .map(|e| {
                info_of(&KeyHandleResponse {
                    key_handle: String::new(),
                    key_id: e.key_id.clone(),
                    key_type: e.key_type,
                    algorithm: e.algorithm.clone(),
                })
            })
            .collect()
    }
}
