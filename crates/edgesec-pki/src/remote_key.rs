//! rcgen's signing traits over a key that lives in the key store.
//!
//! rcgen hands [`rcgen::SigningKey::sign`] the whole to-be-signed certificate. We hash it here
//! and ask the store to sign the digest, so only 32 or 48 bytes cross to the key service. A store
//! that cannot sign digests gets the whole message. The private key never leaves the store.

use std::sync::{Arc, Mutex};

use edgesec_keys::{KeyError, KeyId, KeyPairAlgorithm, KeyRef, KeyStore, SignAlgorithm, SignInput};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::certinfo::raw_public_key;
use crate::error::{PkiError, Result};

/// A key pair held by a [`KeyStore`], usable as an rcgen issuer key.
pub struct RemoteKey {
    store: Arc<dyn KeyStore>,
    id: KeyId,
    algorithm: KeyPairAlgorithm,
    spki: Vec<u8>,
    raw_public: Vec<u8>,
    digest_signing: bool,
    /// The key store's error from the last failed `sign`, which rcgen's error type cannot carry.
    last_error: Mutex<Option<KeyError>>,
}

impl std::fmt::Debug for RemoteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl RemoteKey {
    /// Looks the key up in the store and reads its public half.
    pub fn load(store: Arc<dyn KeyStore>, id: &KeyId) -> Result<Self> {
        let public = store.public_key(id)?;
        let raw_public = raw_public_key(&public.spki_der).map_err(|e| {
            PkiError::Key(KeyError::Backend(format!(
                "key store returned an unreadable public key for {id}: {e}"
            )))
        })?;
        // Only a software store is sure to sign digests; ask rather than guess.
        let digest_signing = store.capabilities().digest_signing;
        Ok(RemoteKey {
            store,
            id: id.clone(),
            algorithm: public.algorithm,
            spki: public.spki_der,
            raw_public,
            digest_signing,
            last_error: Mutex::new(None),
        })
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn key_algorithm(&self) -> KeyPairAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo as the store reported it.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Turns an rcgen error into ours, recovering the key store's reason when signing failed.
    pub fn explain(&self, e: rcgen::Error) -> PkiError {
        if matches!(e, rcgen::Error::RemoteKeyError)
            && let Some(k) = self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        {
            return PkiError::Key(k);
        }
        PkiError::from(e)
    }

    fn sign_algorithm(&self) -> (SignAlgorithm, Option<&'static aws_lc_rs::digest::Algorithm>) {
        use aws_lc_rs::digest::{SHA256, SHA384};
        match self.algorithm {
            KeyPairAlgorithm::EcP256 => (SignAlgorithm::EcdsaSha256, Some(&SHA256)),
            KeyPairAlgorithm::EcP384 => (SignAlgorithm::EcdsaSha384, Some(&SHA384)),
            KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                (SignAlgorithm::RsaPkcs1Sha256, Some(&SHA256))
            }
            KeyPairAlgorithm::Ed25519 => (SignAlgorithm::Ed25519, None),
        }
    }
}

/// The rcgen signature algorithm that goes with a key algorithm (and names the key in an SPKI).
pub fn rcgen_algorithm(alg: KeyPairAlgorithm) -> &'static SignatureAlgorithm {
    match alg {
        KeyPairAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyPairAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        KeyPairAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

impl PublicKeyData for RemoteKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.algorithm)
    }
}

impl SigningKey for RemoteKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let (alg, hash) = self.sign_algorithm();
        let key = KeyRef::Stored(self.id.clone());
        let result = match hash {
            Some(h) if self.digest_signing => {
                let digest = aws_lc_rs::digest::digest(h, msg);
                self.store
                    .sign(&key, alg, SignInput::Digest(digest.as_ref()))
            }
            _ => self.store.sign(&key, alg, SignInput::Message(msg)),
        };
        result.map_err(|e| {
            tracing::warn!(key = %self.id, error = %e, "key store refused to sign a certificate");
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// A public key that is only ever the subject of a certificate (a module's own key).
pub struct SubjectKey {
    pub algorithm: KeyPairAlgorithm,
    pub raw_public: Vec<u8>,
}

impl PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.algorithm)
    }
}
