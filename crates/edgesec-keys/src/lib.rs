//! The HSM platform abstraction layer.
//!
//! A [`KeyStore`] holds key pairs and symmetric keys by id and performs every operation on them
//! itself: callers never see private or symmetric key material, with the single exception of
//! [`KeyStore::export_derived`], which the key service allows only where its policy says so.
//!
//! Every operation has a default implementation that answers [`KeyError::NotSupported`], so a
//! backend implements only what its hardware can do and says so in [`KeyStore::capabilities`].

mod error;
mod id;
mod routed;
mod types;

// The DER the hardware backends write (public keys, signatures); the PKCS#11 parts go unused
// in a TPM-only build.
#[cfg(any(feature = "pkcs11", feature = "tpm"))]
#[cfg_attr(not(feature = "pkcs11"), allow(dead_code))]
mod der;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(feature = "soft")]
pub mod soft;
#[cfg(feature = "tpm")]
pub mod tpm;

pub use error::KeyError;
pub use id::KeyId;
pub use routed::{RoutedKeyStore, glob};
pub use types::{
    Capabilities, KeyInfo, KeyKind, KeyPairAlgorithm, KeyRef, PublicKey, SignAlgorithm, SignInput,
    SymmetricUsage, TpmPublicKeys, pem_encode,
};

use zeroize::Zeroizing;

/// The result type of every key store operation.
pub type Result<T> = std::result::Result<T, KeyError>;

/// What a key material source for [`KeyStore::import`] holds.
pub enum ImportMaterial {
    /// A private key in PEM (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    Pem(Zeroizing<Vec<u8>>),
    /// A private key as PKCS#8 DER.
    Pkcs8Der(Zeroizing<Vec<u8>>),
    /// Raw symmetric key bytes for the given usage.
    Symmetric(SymmetricUsage, Zeroizing<Vec<u8>>),
}

/// A store of keys addressed by id. Implementations must be safe to call from many threads at
/// once; none may hold a store-wide lock across a cryptographic operation.
pub trait KeyStore: Send + Sync {
    /// Which backend this is and what it can do.
    fn capabilities(&self) -> Capabilities;

    /// Creates a key pair under `id` unless one exists, and returns the stored key's description.
    /// An existing key is returned as it is, even when its algorithm differs from `algorithm`:
    /// the caller sees the real algorithm in the result.
    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        let _ = (id, algorithm);
        Err(KeyError::NotSupported("key pair creation"))
    }

    /// Creates a symmetric key under `id` unless one exists.
    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        let _ = (id, usage);
        Err(KeyError::NotSupported("symmetric key creation"))
    }

    /// Describes the stored key `id`, or [`KeyError::NotFound`].
    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        let _ = id;
        Err(KeyError::NotSupported("key lookup"))
    }

    /// The public key of a key pair.
    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        let _ = id;
        Err(KeyError::NotSupported("public key export"))
    }

    /// Signs `input` with `key` using `algorithm`. Asymmetric signatures are DER for ECDSA,
    /// the modulus length for RSA and 64 bytes for Ed25519; HMAC gives the 32-byte tag.
    fn sign(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        let _ = (key, algorithm, input);
        Err(KeyError::NotSupported("sign"))
    }

    /// Checks `signature` over `input`. A wrong signature is `Ok(false)`, not an error.
    fn verify(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let _ = (key, algorithm, input, signature);
        Err(KeyError::NotSupported("verify"))
    }

    /// Checks that `base` can derive child keys (an HMAC key). The child itself is never stored:
    /// it is addressed as [`KeyRef::Derived`] and recomputed from its parent on use.
    fn check_derivable(&self, base: &KeyId) -> Result<()> {
        let _ = base;
        Err(KeyError::NotSupported("key derivation"))
    }

    /// The bytes of a derived key. The key service decides who may call this.
    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let _ = (base, label);
        Err(KeyError::NotSupported("derived key export"))
    }

    /// AEAD-encrypts `plaintext` bound to `aad`. The result carries its own nonce.
    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let _ = (key, plaintext, aad);
        Err(KeyError::NotSupported("encrypt"))
    }

    /// Reverses [`KeyStore::encrypt`]; a wrong key, wrong `aad` or altered ciphertext is
    /// [`KeyError::DecryptFailed`].
    fn decrypt(&self, key: &KeyRef, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let _ = (key, ciphertext, aad);
        Err(KeyError::NotSupported("decrypt"))
    }

    /// Stores imported key material under a new id; an existing id is [`KeyError::AlreadyExists`].
    fn import(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        let _ = (id, material);
        Err(KeyError::NotSupported("import"))
    }

    /// Deletes the key `id`.
    fn delete(&self, id: &KeyId) -> Result<()> {
        let _ = id;
        Err(KeyError::NotSupported("delete"))
    }

    /// Every stored key, in id order.
    fn list(&self) -> Result<Vec<KeyInfo>> {
        Err(KeyError::NotSupported("list"))
    }

    /// The TPM's endorsement key and the RSA storage key that cloud provisioning (DPS TPM
    /// attestation) encrypts to, created and persisted in the TPM when absent.
    fn tpm_public_keys(&self) -> Result<TpmPublicKeys> {
        Err(KeyError::NotSupported("TPM attestation"))
    }

    /// Imports the HMAC key a provisioning service sent in its TPM challenge (the DPS
    /// `authenticationKey` blob) under the new id `id`. The key is unwrapped inside the TPM
    /// only, by the TPM this store holds; it can then sign HMAC-SHA256 and never leaves it.
    /// A previous such key under `id` is replaced (the service sends a new one at each
    /// registration); any other key under `id` is [`KeyError::AlreadyExists`].
    fn import_tpm_auth_key(&self, id: &KeyId, blob: &[u8]) -> Result<KeyInfo> {
        let _ = (id, blob);
        Err(KeyError::NotSupported("TPM attestation"))
    }
}
