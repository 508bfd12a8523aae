//! The encrypted software key store.
//!
//! Layout under the store directory (0700, owned by the key service's user):
//!
//! ```text
//! lock          held (flock) while a key service uses the store
//! master.key    32 random bytes, 0600: seals every key file (sealing it to a TPM comes later)
//! keys/<name>-<hash>.key   one sealed file per key (see `record`), 0600
//! ```
//!
//! Keys are decrypted once, on first use, and kept parsed in memory; the cache is read-locked
//! only for a map lookup, never across a cryptographic operation.

pub(crate) mod material;
pub(crate) mod record;
mod sign;
pub(crate) mod symmetric;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use edgesec_state as fs;

use crate::{
    Capabilities, ImportMaterial, KeyError, KeyId, KeyInfo, KeyKind, KeyPairAlgorithm, KeyRef,
    KeyStore, PublicKey, Result, SignAlgorithm, SignInput, SymmetricUsage,
};
use material::Material;
use record::MasterKey;

/// The software backend of [`KeyStore`].
pub struct SoftKeyStore {
    keys_dir: PathBuf,
    master: MasterKey,
    cache: RwLock<HashMap<KeyId, Arc<Material>>>,
    _lock: fs::DirLock,
}

impl SoftKeyStore {
    /// Opens the store in `dir`, creating it (and its master key) on first use. Refuses a
    /// directory or master key file that others could read or change, naming the path.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::ensure_private_dir(dir).map_err(backend)?;
        let lock = fs::DirLock::acquire(dir).map_err(backend)?;
        let keys_dir = dir.join("keys");
        fs::ensure_private_dir(&keys_dir).map_err(backend)?;
        fs::remove_stale_temp_files(dir);
        fs::remove_stale_temp_files(&keys_dir);

        let master_path = dir.join("master.key");
        if !master_path.exists() {
            let (_, bytes) = Material::generate_symmetric(SymmetricUsage::Aes256Gcm)?;
            fs::write_new(&master_path, &bytes).map_err(backend)?;
        }
        fs::check_private(&master_path, false).map_err(backend)?;
        let bytes = Zeroizing::new(std::fs::read(&master_path).map_err(|e| {
            KeyError::Backend(format!("cannot read {}: {e}", master_path.display()))
        })?);
        let master = MasterKey::new(&bytes).map_err(|_| {
            KeyError::Backend(format!(
                "{} is not a 32-byte master key (it is {} bytes)",
                master_path.display(),
                bytes.len()
            ))
        })?;
        Ok(SoftKeyStore {
            keys_dir,
            master,
            cache: RwLock::default(),
            _lock: lock,
        })
    }

    /// Opens the store in `dir` with a master key kept elsewhere (sealed to a TPM by the key
    /// service): no `master.key` file is read or created. Wrong bytes show as corrupted keys.
    pub fn open_with_master_key(dir: &Path, master: &[u8]) -> Result<Self> {
        fs::ensure_private_dir(dir).map_err(backend)?;
        let lock = fs::DirLock::acquire(dir).map_err(backend)?;
        let keys_dir = dir.join("keys");
        fs::ensure_private_dir(&keys_dir).map_err(backend)?;
        fs::remove_stale_temp_files(dir);
        fs::remove_stale_temp_files(&keys_dir);
        Ok(SoftKeyStore {
            keys_dir,
            master: MasterKey::new(master)?,
            cache: RwLock::default(),
            _lock: lock,
        })
    }

    /// Where the key `id` is kept: a readable prefix plus a hash, so any id maps to one safe name.
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
        self.keys_dir.join(format!("{readable}-{hex}.key"))
    }

    /// The key `id`, from the cache or decrypted from its file.
    fn load(&self, id: &KeyId) -> Result<Arc<Material>> {
        if let Some(m) = self.cache.read().expect("cache lock").get(id) {
            return Ok(m.clone());
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
        let material = record::open(&self.master, id, &file)
            .ok()
            .and_then(|(kind, bytes)| Material::from_stored(kind, &bytes))
            .ok_or_else(|| {
                tracing::warn!(key = %id, path = %path.display(), "stored key is corrupted or sealed under another master key");
                KeyError::Corrupted(id.clone())
            })?;
        Ok(self.remember(id, &path, material))
    }

    /// Caches a key, unless it was deleted meanwhile (delete holds the write lock while it
    /// removes the file, so checking the file under the same lock is race-free).
    fn remember(&self, id: &KeyId, path: &Path, material: Material) -> Arc<Material> {
        let material = Arc::new(material);
        let mut cache = self.cache.write().expect("cache lock");
        if path.exists() {
            cache.insert(id.clone(), material.clone());
        }
        material
    }

    /// Stores a new key; when another creator got there first, their key is the one returned.
    fn store_new(
        &self,
        id: &KeyId,
        material: Material,
        stored: &[u8],
    ) -> Result<(Arc<Material>, bool)> {
        let path = self.path_of(id);
        let sealed = record::seal(&self.master, id, material.kind(), stored)?;
        if fs::write_new(&path, &sealed).map_err(backend)? {
            Ok((self.remember(id, &path, material), true))
        } else {
            Ok((self.load(id)?, false))
        }
    }
}

fn backend(e: fs::StateError) -> KeyError {
    KeyError::Backend(e.0)
}

fn info(id: &KeyId, m: &Material) -> KeyInfo {
    KeyInfo {
        id: id.clone(),
        kind: m.kind(),
    }
}

impl KeyStore for SoftKeyStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "soft".into(),
            key_pair_algorithms: KeyPairAlgorithm::ALL.to_vec(),
            sign_algorithms: SignAlgorithm::ALL.to_vec(),
            symmetric_usages: vec![SymmetricUsage::HmacSha256, SymmetricUsage::Aes256Gcm],
            digest_signing: true,
            derive: true,
            export_derived: true,
            aead: true,
            import: true,
            delete: true,
            hardware_backed: false,
            keys: Vec::new(),
            backends: Vec::new(),
        }
    }

    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        match self.load(id) {
            Ok(m) => return Ok(info(id, &m)),
            Err(KeyError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let (material, pkcs8) = Material::generate_key_pair(algorithm)?;
        let (m, _) = self.store_new(id, material, &pkcs8)?;
        Ok(info(id, &m))
    }

    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        match self.load(id) {
            Ok(m) => return Ok(info(id, &m)),
            Err(KeyError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let (material, bytes) = Material::generate_symmetric(usage)?;
        let (m, _) = self.store_new(id, material, &bytes)?;
        Ok(info(id, &m))
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        self.load(id).map(|m| info(id, &m))
    }

    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        let m = self.load(id)?;
        let KeyKind::KeyPair(algorithm) = m.kind() else {
            return Err(KeyError::WrongAlgorithm(format!(
                "{id:?} is a symmetric key and has no public key"
            )));
        };
        let spki_der = m
            .spki()
            .ok_or_else(|| KeyError::Backend("public key encoding failed".into()))?;
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

    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.derive_bytes(base, label)
    }

    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_with(key, plaintext, aad)
    }

    fn decrypt(&self, key: &KeyRef, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt_with(key, ciphertext, aad)
    }

    fn import(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        let (material, stored) = match material {
            ImportMaterial::Pem(pem) => {
                let (alg, pkcs8) = material::parse_private_key(&pem, true)?;
                (Material::from_stored(KeyKind::KeyPair(alg), &pkcs8), pkcs8)
            }
            ImportMaterial::Pkcs8Der(der) => {
                let (alg, pkcs8) = material::parse_private_key(&der, false)?;
                (Material::from_stored(KeyKind::KeyPair(alg), &pkcs8), pkcs8)
            }
            ImportMaterial::Symmetric(usage, bytes) => {
                (Some(material::symmetric(usage, &bytes)?), bytes)
            }
        };
        let material =
            material.ok_or_else(|| KeyError::InvalidInput("the key could not be loaded".into()))?;
        match self.store_new(id, material, &stored)? {
            (m, true) => Ok(info(id, &m)),
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

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = std::fs::read_dir(&self.keys_dir).map_err(|e| {
            KeyError::Backend(format!("cannot list {}: {e}", self.keys_dir.display()))
        })?;
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "key") {
                continue;
            }
            match std::fs::read(&path).ok().as_deref().and_then(record::peek) {
                Some((id, kind, _)) if self.path_of(&id) == path => keys.push(KeyInfo { id, kind }),
                _ => tracing::warn!(path = %path.display(), "skipping an unreadable key file"),
            }
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests;
