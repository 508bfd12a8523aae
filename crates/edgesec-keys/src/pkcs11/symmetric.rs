//! HMAC keys and the keys derived from them.
//!
//! A derived key is HMAC-SHA256(base, label), as in the soft store. The HMAC is computed **on the
//! token** with the base key (`CKM_SHA256_HMAC`); its output is the child key, which therefore
//! exists in keyd's memory while it is used, in a zeroizing buffer dropped right after, and is
//! used in software (HMAC, AES-256-GCM). It is not imported back as a session object: the bytes
//! have already left the token as the HMAC's output, so a token copy would protect nothing and
//! cost two more token calls per use. What stays on the token is the base key, without which no
//! child can be made.

use aws_lc_rs::aead::{self, RandomizedNonceKey};
use aws_lc_rs::{constant_time, hmac};
use cryptoki::mechanism::Mechanism;
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::objects::Entry;
use super::{Fail, Pkcs11KeyStore};
use crate::soft::symmetric::MAX_LABEL_LEN;
use crate::{KeyError, KeyId, KeyKind, Result, SignAlgorithm, SignInput, SymmetricUsage};

impl Pkcs11KeyStore {
    /// The HMAC key `base`, or an error saying why it cannot derive.
    pub(crate) fn hmac_entry(
        &self,
        s: &Session,
        base: &KeyId,
    ) -> std::result::Result<std::sync::Arc<Entry>, Fail> {
        let e = self.entry(s, base)?;
        if e.kind != KeyKind::Symmetric(SymmetricUsage::HmacSha256) {
            return Err(KeyError::WrongAlgorithm(format!(
                "only hmac-sha256 keys can derive child keys; {base:?} is not one"
            ))
            .into());
        }
        Ok(e)
    }

    /// HMAC-SHA256(base, label), made by the token.
    pub(crate) fn derive_bytes(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(KeyError::InvalidInput(format!(
                "a derivation label must be 1 to {MAX_LABEL_LEN} bytes"
            )));
        }
        self.run("derive", |s| {
            let e = self.hmac_entry(s, base)?;
            Ok(Zeroizing::new(s.sign(
                &Mechanism::Sha256Hmac,
                e.handle,
                label,
            )?))
        })
    }

    fn derived_hmac(
        &self,
        base: &KeyId,
        label: &[u8],
        alg: SignAlgorithm,
        input: SignInput<'_>,
        verb: &str,
    ) -> Result<hmac::Tag> {
        if alg != SignAlgorithm::HmacSha256 {
            return Err(KeyError::WrongAlgorithm(format!(
                "a derived key {verb} only hmac-sha256 signatures, not {alg}"
            )));
        }
        let SignInput::Message(msg) = input else {
            unreachable!("checked by SignInput::check")
        };
        let child = self.derive_bytes(base, label)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &child);
        Ok(hmac::sign(&key, msg))
    }

    pub(crate) fn sign_derived(
        &self,
        base: &KeyId,
        label: &[u8],
        alg: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        let tag = self.derived_hmac(base, label, alg, input, "makes")?;
        Ok(tag.as_ref().to_vec())
    }

    pub(crate) fn verify_derived(
        &self,
        base: &KeyId,
        label: &[u8],
        alg: SignAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool> {
        let tag = self.derived_hmac(base, label, alg, input, "checks")?;
        Ok(constant_time::verify_slices_are_equal(tag.as_ref(), sig).is_ok())
    }

    /// The AES-256-GCM key of a derived key, for `aead.rs`.
    pub(crate) fn derived_aead_key(
        &self,
        base: &KeyId,
        label: &[u8],
    ) -> Result<RandomizedNonceKey> {
        let child = self.derive_bytes(base, label)?;
        RandomizedNonceKey::new(&aead::AES_256_GCM, &child)
            .map_err(|_| KeyError::Backend("AES key setup failed".into()))
    }
}
