//! AES-256-GCM on the token (`CKM_AES_GCM`), with the soft store's blob layout so callers see
//! one format: `0x01 | nonce (12) | ciphertext | tag (16)`. The nonce is 12 fresh random bytes
//! per call (96-bit random nonces; the same bound as the soft store). Derived keys encrypt in
//! software with their child key (see `symmetric.rs`).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use zeroize::Zeroizing;

use super::error::{describe, needs_relogin, stale_object};
use super::{Fail, Pkcs11KeyStore};
use crate::soft::record::aead_blob;
use crate::{KeyError, KeyId, KeyKind, KeyRef, Result, SymmetricUsage};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

fn not_aes(id: &KeyId, kind: KeyKind) -> Fail {
    KeyError::WrongAlgorithm(format!(
        "{id:?} is not an aes-256-gcm key ({kind:?}); it cannot encrypt"
    ))
    .into()
}

impl Pkcs11KeyStore {
    pub(crate) fn encrypt_with(
        &self,
        key: &KeyRef,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let id = match key {
            KeyRef::Derived { base, label } => {
                return aead_blob::seal(&self.derived_aead_key(base, label)?, plaintext, aad);
            }
            KeyRef::Stored(id) => id,
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Backend("the system random source failed".into()))?;
        let sealed = self.run("encrypt", |s| {
            let e = self.entry(s, id)?;
            if e.kind != KeyKind::Symmetric(SymmetricUsage::Aes256Gcm) {
                return Err(not_aes(id, e.kind));
            }
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, aad, (TAG_LEN as u64 * 8).into())?;
            Ok(s.encrypt(&Mechanism::AesGcm(params), e.handle, plaintext)?)
        })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub(crate) fn decrypt_with(
        &self,
        key: &KeyRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let id = match key {
            KeyRef::Derived { base, label } => {
                return aead_blob::open(&self.derived_aead_key(base, label)?, blob, aad);
            }
            KeyRef::Stored(id) => id,
        };
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != VERSION {
            return Err(KeyError::DecryptFailed);
        }
        let (nonce, sealed) = blob[1..].split_at(NONCE_LEN);
        self.run("decrypt", |s| {
            let e = self.entry(s, id)?;
            if e.kind != KeyKind::Symmetric(SymmetricUsage::Aes256Gcm) {
                return Err(not_aes(id, e.kind));
            }
            let mut iv = [0u8; NONCE_LEN];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, aad, (TAG_LEN as u64 * 8).into())?;
            match s.decrypt(&Mechanism::AesGcm(params), e.handle, sealed) {
                Ok(plain) => Ok(Zeroizing::new(plain)),
                // Lost sessions are retried; anything else is a tag that did not verify, which
                // tokens report variously (SoftHSM: CKR_GENERAL_ERROR; others
                // CKR_ENCRYPTED_DATA_INVALID or CKR_AEAD_DECRYPT_FAILED).
                Err(err) if needs_relogin(&err) || stale_object(&err) => Err(err.into()),
                Err(err) => {
                    tracing::debug!(key = %id, pkcs11 = %describe(&err), "AES-GCM decryption refused");
                    Err(KeyError::DecryptFailed.into())
                }
            }
        })
    }
}
