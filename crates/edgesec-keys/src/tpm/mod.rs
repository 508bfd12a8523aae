//! The TPM 2.0 backend of [`KeyStore`] (feature `tpm`), plus the TPM services the key service
//! builds on: PCR extend and read ([`pcr`]), sealing data to PCR values ([`seal`]) and quotes
//! signed by an attestation key ([`quote`]).
//!
//! Layout under the store directory (0700):
//!
//! ```text
//! lock                     held while a key service uses the store
//! keys/<name>-<hash>.tpmkey   one wrapped key per file (see `blob`), 0600
//! ```
//!
//! - The storage root key (SRK) is a primary in the owner hierarchy, made persistent at a
//!   configured handle (default 0x81000001) when absent.
//! - Key pairs (EC P-256, EC P-384, RSA-2048) are created under the SRK by the TPM; only their
//!   wrapped blobs are kept, and they are loaded for each use and flushed right after.
//! - HMAC-SHA256 keys are keyed-hash objects in the TPM: signing and deriving module keys
//!   (HMAC(base, label)) happen inside it. A derived key's bytes leave the TPM only into keyd.
//! - DPS TPM attestation (`dps`): the endorsement key (persistent at 0x81010001) and an RSA
//!   storage key (0x81000010) beside the ECC SRK; the HMAC authentication key the service sends
//!   is imported under that RSA key. It signs HMAC-SHA256 in the TPM and derives nothing.
//! - AES-256-GCM keys are sealed data objects: the TPM keeps them wrapped and unseals the key
//!   into keyd's memory for one operation (TPMs do not do GCM).
//!
//! No private or symmetric key can be exported from this store: there is no operation for it,
//! and TPM-made objects are `fixedTPM`/`fixedParent`, so not even the TPM would duplicate them.
//!
//! Unlike the software store, every operation holds the one TPM connection for its duration:
//! the TPM runs one command at a time anyway.

mod blob;
mod device;
mod dps;
pub mod pcr;
pub mod quote;
pub mod seal;
mod sign;
mod symmetric;
mod templates;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use edgesec_state as fs;
use tss_esapi::interface_types::session_handles::AuthSession;

pub use device::{DEFAULT_SRK_HANDLE, DEFAULT_TCTI, Tpm, TpmConfig, tpm_error};
pub use dps::{DPS_STORAGE_KEY_HANDLE, ENDORSEMENT_KEY_HANDLE, MAX_AUTH_KEY_BLOB};

use crate::{
    Capabilities, ImportMaterial, KeyError, KeyId, KeyInfo, KeyKind, KeyPairAlgorithm, KeyRef,
    KeyStore, PublicKey, Result, SignAlgorithm, SignInput, SymmetricUsage, TpmPublicKeys,
};
use blob::Blob;

/// The TPM backend of [`KeyStore`].
pub struct TpmKeyStore {
    tpm: Tpm,
    keys_dir: PathBuf,
    cache: RwLock<HashMap<KeyId, Arc<Blob>>>,
    _lock: fs::DirLock,
}

fn backend(e: fs::StateError) -> KeyError {
    KeyError::Backend(e.0)
}

impl TpmKeyStore {
    /// Opens the store in `dir` on the TPM `tpm`, creating the directory and (in the TPM) the
    /// storage root key when absent.
    pub fn open(dir: &Path, tpm: Tpm) -> Result<Self> {
        fs::ensure_private_dir(dir).map_err(backend)?;
        let lock = fs::DirLock::acquire(dir).map_err(backend)?;
        let keys_dir = dir.join("keys");
        fs::ensure_private_dir(&keys_dir).map_err(backend)?;
        fs::remove_stale_temp_files(&keys_dir);
        tpm.lock().srk()?;
        Ok(TpmKeyStore {
            tpm,
            keys_dir,
            cache: RwLock::default(),
            _lock: lock,
        })
    }

    /// The TPM this store uses (shared with measurement, sealing and quotes).
    pub fn tpm(&self) -> &Tpm {
        &self.tpm
    }

    fn path_of(&self, id: &KeyId) -> PathBuf {
        let readable: String = id
            .as_str()
            .chars()
            .take(48)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = digest::digest(&digest::SHA256, id.as_str().as_bytes());
        let hex: String = hash.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.keys_dir.join(format!("{readable}-{hex}.tpmkey"))
    }

    /// The wrapped key `id`, from the cache or its file.
    pub(crate) fn load(&self, id: &KeyId) -> Result<Arc<Blob>> {
        if let Some(b) = self.cache.read().expect("cache lock").get(id) {
            return Ok(b.clone());
        }
        let path = self.path_of(id);
        let file = match std::fs::read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::NotFound(id.clone()));
            }
            Err(e) => {
                return Err(KeyError::Backend(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let blob = Arc::new(blob::decode(id, &file)?);
        let mut cache = self.cache.write().expect("cache lock");
        if path.exists() {
            cache.insert(id.clone(), blob.clone());
        }
        Ok(blob)
    }

    /// Runs `f` with the key loaded in the TPM; it is flushed afterwards.
    pub(crate) fn with_key<T>(
        &self,
        blob: &Blob,
        f: impl FnOnce(&mut tss_esapi::Context, tss_esapi::handles::KeyHandle) -> Result<T>,
    ) -> Result<T> {
        self.tpm
            .lock()
            .with_loaded(blob.parent, &blob.public, &blob.private, &blob.auth, f)
    }

    /// Creates an object under the SRK and stores its blob, unless `id` exists: then the existing
    /// key is described (`Ok(false)` from the inner result says "was there").
    fn create_object(
        &self,
        id: &KeyId,
        kind: KeyKind,
        public: tss_esapi::structures::Public,
        sensitive: Option<tss_esapi::structures::SensitiveData>,
    ) -> Result<(KeyInfo, bool)> {
        let auth = blob::auth_for(id);
        let created = {
            let mut g = self.tpm.lock();
            let srk = g.srk()?;
            g.ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.create(srk, public, Some(auth), sensitive, None, None)
                })
                .map_err(|e| tpm_error("create a key", e))?
        };
        let file = blob::encode(
            id,
            kind,
            device::Parent::StorageRoot,
            &created.out_public,
            &created.out_private,
        )?;
        let path = self.path_of(id);
        if fs::write_new(&path, &file).map_err(backend)? {
            Ok((info(id, kind), true))
        } else {
            Ok((info(id, self.load(id)?.kind), false))
        }
    }

    fn existing(&self, id: &KeyId) -> Result<Option<KeyInfo>> {
        match self.load(id) {
            Ok(b) => Ok(Some(info(id, b.kind))),
            Err(KeyError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn info(id: &KeyId, kind: KeyKind) -> KeyInfo {
    KeyInfo {
        id: id.clone(),
        kind,
    }
}

/// The key pair algorithms this backend makes.
pub const KEY_PAIR_ALGORITHMS: [KeyPairAlgorithm; 3] = [
    KeyPairAlgorithm::EcP256,
    KeyPairAlgorithm::EcP384,
    KeyPairAlgorithm::Rsa2048,
];

impl KeyStore for TpmKeyStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "tpm".into(),
            key_pair_algorithms: KEY_PAIR_ALGORITHMS.to_vec(),
            sign_algorithms: vec![
                SignAlgorithm::EcdsaSha256,
                SignAlgorithm::EcdsaSha384,
                SignAlgorithm::RsaPkcs1Sha256,
                SignAlgorithm::RsaPssSha256,
                SignAlgorithm::HmacSha256,
            ],
            symmetric_usages: vec![SymmetricUsage::HmacSha256, SymmetricUsage::Aes256Gcm],
            digest_signing: true,
            derive: true,
            export_derived: true,
            aead: true,
            import: true,
            delete: true,
            hardware_backed: true,
            keys: Vec::new(),
            backends: Vec::new(),
        }
    }

    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        if let Some(i) = self.existing(id)? {
            return Ok(i);
        }
        let public = templates::key_pair(algorithm)
            .map_err(|e| tpm_error("build a key template", e))?
            .ok_or(KeyError::NotSupported(
                "this key pair algorithm in the TPM (it makes ec-p256, ec-p384 and rsa-2048)",
            ))?;
        Ok(self
            .create_object(id, KeyKind::KeyPair(algorithm), public, None)?
            .0)
    }

    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        if let Some(i) = self.existing(id)? {
            return Ok(i);
        }
        self.new_symmetric(id, usage, None).map(|(i, _)| i)
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        self.load(id).map(|b| info(id, b.kind))
    }

    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        let b = self.load(id)?;
        let KeyKind::KeyPair(algorithm) = b.kind else {
            return Err(KeyError::WrongAlgorithm(format!(
                "{id:?} is a symmetric key and has no public key"
            )));
        };
        let spki_der =
            templates::spki_der(&b.public).ok_or_else(|| KeyError::Corrupted(id.clone()))?;
        Ok(PublicKey {
            algorithm,
            spki_der,
        })
    }

    fn sign(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        input.check(algorithm)?;
        self.sign_with(key, algorithm, input)
    }

    fn verify(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        input.check(algorithm)?;
        self.verify_with(key, algorithm, input, signature)
    }

    fn check_derivable(&self, base: &KeyId) -> Result<()> {
        self.hmac_key(base).map(|_| ())
    }

    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.derive_bytes(base, label)
    }

    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_with(key, plaintext, aad)
    }

    fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.decrypt_with(key, ciphertext, aad)
    }

    fn import(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        let (usage, bytes) = match material {
            ImportMaterial::Symmetric(usage, bytes) => (usage, bytes),
            // A malformed key is the caller's mistake whatever the backend; a good one is refused
            // because a TPM-made key never exists outside the TPM, and an imported one would.
            ImportMaterial::Pem(pem) => {
                crate::soft::material::parse_private_key(&pem, true)?;
                return Err(KeyError::NotSupported(
                    "import of key pairs into the TPM (create them in the TPM instead)",
                ));
            }
            ImportMaterial::Pkcs8Der(der) => {
                crate::soft::material::parse_private_key(&der, false)?;
                return Err(KeyError::NotSupported(
                    "import of key pairs into the TPM (create them in the TPM instead)",
                ));
            }
        };
        match self.new_symmetric(id, usage, Some(bytes))? {
            (i, true) => Ok(i),
            (_, false) => Err(KeyError::AlreadyExists(id.clone())),
        }
    }

    fn delete(&self, id: &KeyId) -> Result<()> {
        let path = self.path_of(id);
        let mut cache = self.cache.write().expect("cache lock");
        match fs::remove(&path) {
            Ok(()) => {
                cache.remove(id);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KeyError::NotFound(id.clone()))
            }
            Err(e) => Err(KeyError::Backend(format!(
                "cannot remove {}: {e}",
                path.display()
            ))),
        }
    }

    fn tpm_public_keys(&self) -> Result<TpmPublicKeys> {
        self.public_keys()
    }

    fn import_tpm_auth_key(&self, id: &KeyId, blob: &[u8]) -> Result<KeyInfo> {
        self.import_auth_key(id, blob)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = std::fs::read_dir(&self.keys_dir).map_err(|e| {
            KeyError::Backend(format!("cannot list {}: {e}", self.keys_dir.display()))
        })?;
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "tpmkey") {
                continue;
            }
            match std::fs::read(&path).ok().as_deref().and_then(blob::peek) {
                Some((id, kind)) if self.path_of(&id) == path => keys.push(info(&id, kind)),
                _ => tracing::warn!(path = %path.display(), "skipping an unreadable TPM key file"),
            }
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }
}
