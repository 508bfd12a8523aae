//! Symmetric-key operations: derivation of child keys and AEAD.

use aws_lc_rs::aead::{self, RandomizedNonceKey};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::SoftKeyStore;
use super::material::Material;
use super::record::aead_blob;
use crate::{KeyError, KeyId, KeyRef, Result};

/// The longest derivation label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 1024;

impl SoftKeyStore {
    /// The stored HMAC key `base`, or an error saying why it cannot derive.
    pub(super) fn hmac_key(&self, base: &KeyId) -> Result<std::sync::Arc<Material>> {
        let m = self.load(base)?;
        match &*m {
            Material::Hmac(_) => Ok(m),
            _ => Err(KeyError::WrongAlgorithm(format!(
                "only hmac-sha256 keys can derive child keys; {base:?} is not one"
            ))),
        }
    }

    /// HMAC-SHA256(base, label): the bytes of a derived key.
    pub(super) fn derive_bytes(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(KeyError::InvalidInput(format!(
                "a derivation label must be 1 to {MAX_LABEL_LEN} bytes"
            )));
        }
        let m = self.hmac_key(base)?;
        let Material::Hmac(k) = &*m else {
            unreachable!("hmac_key checked")
        };
        Ok(Zeroizing::new(hmac::sign(k, label).as_ref().to_vec()))
    }

    fn with_aead<T>(
        &self,
        key: &KeyRef,
        f: impl FnOnce(&RandomizedNonceKey) -> Result<T>,
    ) -> Result<T> {
        match key {
            KeyRef::Derived { base, label } => {
                let bytes = self.derive_bytes(base, label)?;
                let k = RandomizedNonceKey::new(&aead::AES_256_GCM, &bytes)
                    .map_err(|_| KeyError::Backend("AES key setup failed".into()))?;
                f(&k)
            }
            KeyRef::Stored(id) => {
                let m = self.load(id)?;
                match &*m {
                    Material::Aes(k) => f(k),
                    other => Err(KeyError::WrongAlgorithm(format!(
                        "{id:?} is not an aes-256-gcm key ({:?}); it cannot encrypt",
                        other.kind()
                    ))),
                }
            }
        }
    }

    pub(super) fn encrypt_with(
        &self,
        key: &KeyRef,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.with_aead(key, |k| aead_blob::seal(k, plaintext, aad))
    }

    pub(super) fn decrypt_with(
        &self,
        key: &KeyRef,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.with_aead(key, |k| aead_blob::open(k, ciphertext, aad))
    }
}
