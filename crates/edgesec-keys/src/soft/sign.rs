//! Signing and verification: ECDSA, RSA PKCS#1 v1.5 and PSS, Ed25519 and HMAC-SHA256.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaEncoding, UnparsedPublicKey};
use aws_lc_rs::{constant_time, hmac};

use super::SoftKeyStore;
use super::material::{self, Material};
use crate::{KeyError, KeyKind, KeyRef, Result, SignAlgorithm, SignInput};

fn wrong(kind: KeyKind, alg: SignAlgorithm) -> KeyError {
    let what = match kind {
        KeyKind::KeyPair(a) => a.as_str(),
        KeyKind::Symmetric(u) => u.as_str(),
    };
    KeyError::WrongAlgorithm(format!("an {what} key cannot make {alg} signatures"))
}

fn imported_digest(alg: SignAlgorithm, d: &[u8]) -> Result<Digest> {
    let algorithm = if alg == SignAlgorithm::EcdsaSha384 {
        &digest::SHA384
    } else {
        &digest::SHA256
    };
    Digest::import_less_safe(d, algorithm)
        .map_err(|_| KeyError::InvalidInput(format!("a digest for {alg} has the wrong length")))
}

fn rsa_padding(alg: SignAlgorithm) -> Option<&'static dyn RsaEncoding> {
    match alg {
        SignAlgorithm::RsaPkcs1Sha256 => Some(&signature::RSA_PKCS1_SHA256),
        SignAlgorithm::RsaPssSha256 => Some(&signature::RSA_PSS_SHA256),
        _ => None,
    }
}

fn failed(alg: SignAlgorithm) -> KeyError {
    KeyError::Backend(format!("{alg} signing failed"))
}

impl SoftKeyStore {
    pub(super) fn sign_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        if let KeyRef::Derived { base, label } = key {
            let bytes = self.derive_bytes(base, label)?;
            let SignInput::Message(msg) = input else {
                unreachable!("checked by SignInput::check")
            };
            if alg != SignAlgorithm::HmacSha256 {
                return Err(KeyError::WrongAlgorithm(format!(
                    "a derived key makes only hmac-sha256 signatures, not {alg}"
                )));
            }
            let k = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
            return Ok(hmac::sign(&k, msg).as_ref().to_vec());
        }
        let m = self.load(key.base_id())?;
        let rng = SystemRandom::new();
        match (&*m, input) {
            (Material::Ecdsa(a, k), input) if a.sign_algorithms().contains(&alg) => {
                let sig = match input {
                    SignInput::Message(msg) => k.sign(&rng, msg),
                    SignInput::Digest(d) => k.sign_digest(&imported_digest(alg, d)?),
                };
                sig.map(|s| s.as_ref().to_vec()).map_err(|_| failed(alg))
            }
            (Material::Rsa(_, k), input) if rsa_padding(alg).is_some() => {
                let padding = rsa_padding(alg).expect("checked");
                let mut out = vec![0u8; k.public_modulus_len()];
                match input {
                    SignInput::Message(msg) => k.sign(padding, &rng, msg, &mut out),
                    SignInput::Digest(d) => {
                        k.sign_digest(padding, &imported_digest(alg, d)?, &mut out)
                    }
                }
                .map_err(|_| failed(alg))?;
                Ok(out)
            }
            (Material::Ed25519(k), SignInput::Message(msg)) if alg == SignAlgorithm::Ed25519 => {
                Ok(k.sign(msg).as_ref().to_vec())
            }
            (Material::Hmac(k), SignInput::Message(msg)) if alg == SignAlgorithm::HmacSha256 => {
                Ok(hmac::sign(k, msg).as_ref().to_vec())
            }
            (m, _) => Err(wrong(m.kind(), alg)),
        }
    }

    pub(super) fn verify_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool> {
        let hmac_verify = |k: &hmac::Key, msg: &[u8]| {
            let tag = hmac::sign(k, msg);
            constant_time::verify_slices_are_equal(tag.as_ref(), sig).is_ok()
        };
        if let KeyRef::Derived { base, label } = key {
            let bytes = self.derive_bytes(base, label)?;
            let SignInput::Message(msg) = input else {
                unreachable!("checked by SignInput::check")
            };
            if alg != SignAlgorithm::HmacSha256 {
                return Err(KeyError::WrongAlgorithm(format!(
                    "a derived key checks only hmac-sha256 signatures, not {alg}"
                )));
            }
            return Ok(hmac_verify(&hmac::Key::new(hmac::HMAC_SHA256, &bytes), msg));
        }
        let m = self.load(key.base_id())?;
        if let Material::Hmac(k) = &*m {
            return match input {
                SignInput::Message(msg) if alg == SignAlgorithm::HmacSha256 => {
                    Ok(hmac_verify(k, msg))
                }
                _ => Err(wrong(m.kind(), alg)),
            };
        }
        let KeyKind::KeyPair(key_alg) = m.kind() else {
            return Err(wrong(m.kind(), alg));
        };
        let verifier = material::verifier(key_alg, alg).ok_or_else(|| wrong(m.kind(), alg))?;
        let public = UnparsedPublicKey::new(verifier, m.public_key_bytes().expect("key pair"));
        let ok = match input {
            SignInput::Message(msg) => public.verify(msg, sig).is_ok(),
            SignInput::Digest(d) => public.verify_digest(&imported_digest(alg, d)?, sig).is_ok(),
        };
        Ok(ok)
    }
}
