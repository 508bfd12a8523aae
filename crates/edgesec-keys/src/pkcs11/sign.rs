//! Signing on the token, verification with the public key.
//!
//! - ECDSA: the store hashes (SHA-256/384, in software, or the caller's digest) and the token
//!   signs the digest with raw `CKM_ECDSA`, which every token has; the combined
//!   `CKM_ECDSA_SHA256` is not used (SoftHSM 2.6 lacks it). The token's r ‖ s is turned into DER.
//! - RSA PKCS#1 v1.5: `CKM_RSA_PKCS` over the SHA-256 DigestInfo, or `CKM_SHA256_RSA_PKCS` over
//!   the message where the token has only that. PSS: `CKM_RSA_PKCS_PSS` over the digest (MGF1
//!   with SHA-256, salt as long as the digest), or `CKM_SHA256_RSA_PKCS_PSS` over the message.
//! - Ed25519: `CKM_EDDSA` over the message.
//! - HMAC-SHA256: `CKM_SHA256_HMAC` on the token.
//!
//! Verification of public-key signatures needs no secret, so it is done here with aws-lc and
//! the cached public key (as any outside verifier would); HMAC verification makes the tag on the
//! token and compares in constant time. Derived keys are in `symmetric.rs`.

use aws_lc_rs::signature::UnparsedPublicKey;
use aws_lc_rs::{constant_time, digest};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::session::Session;

use super::objects::Entry;
use super::{Fail, Pkcs11KeyStore};
use crate::der;
use crate::soft::material;
use crate::{KeyError, KeyKind, KeyPairAlgorithm, KeyRef, Result, SignAlgorithm, SignInput};

pub(crate) fn wrong(kind: KeyKind, alg: SignAlgorithm) -> KeyError {
    let what = match kind {
        KeyKind::KeyPair(a) => a.as_str(),
        KeyKind::Symmetric(u) => u.as_str(),
    };
    KeyError::WrongAlgorithm(format!("an {what} key cannot make {alg} signatures"))
}

/// The digest to sign: the caller's, or one made here over the message.
fn digest_of(alg: SignAlgorithm, input: SignInput<'_>) -> Vec<u8> {
    match input {
        SignInput::Digest(d) => d.to_vec(),
        SignInput::Message(m) => {
            let h = if alg == SignAlgorithm::EcdsaSha384 {
                &digest::SHA384
            } else {
                &digest::SHA256
            };
            digest::digest(h, m).as_ref().to_vec()
        }
    }
}

fn pss() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32u64.into(),
    }
}

impl Pkcs11KeyStore {
    fn sign_entry(
        &self,
        s: &Session,
        e: &Entry,
        alg: SignAlgorithm,
        input: SignInput<'_>,
    ) -> std::result::Result<Vec<u8>, Fail> {
        let m = &self.mechs;
        let not_here = |what| Fail::Key(KeyError::NotSupported(what));
        match (e.kind, alg) {
            (KeyKind::KeyPair(KeyPairAlgorithm::EcP256), SignAlgorithm::EcdsaSha256)
            | (KeyKind::KeyPair(KeyPairAlgorithm::EcP384), SignAlgorithm::EcdsaSha384) => {
                let raw = s.sign(&Mechanism::Ecdsa, e.handle, &digest_of(alg, input))?;
                der::ecdsa_signature(&raw).ok_or_else(|| {
                    Fail::Key(KeyError::Backend(format!(
                        "the token gave a {}-byte ECDSA signature",
                        raw.len()
                    )))
                })
            }
            (
                KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096),
                SignAlgorithm::RsaPkcs1Sha256,
            ) => match input {
                SignInput::Message(msg) if !m.rsa_pkcs && m.sha256_rsa_pkcs => {
                    Ok(s.sign(&Mechanism::Sha256RsaPkcs, e.handle, msg)?)
                }
                _ if m.rsa_pkcs => {
                    let mut info = der::SHA256_DIGEST_INFO.to_vec();
                    info.extend_from_slice(&digest_of(alg, input));
                    Ok(s.sign(&Mechanism::RsaPkcs, e.handle, &info)?)
                }
                _ => Err(not_here("signing a digest with RSA on this PKCS#11 token")),
            },
            (
                KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096),
                SignAlgorithm::RsaPssSha256,
            ) => match input {
                SignInput::Message(msg) if !m.rsa_pss && m.sha256_rsa_pss => {
                    Ok(s.sign(&Mechanism::Sha256RsaPkcsPss(pss()), e.handle, msg)?)
                }
                _ if m.rsa_pss => Ok(s.sign(
                    &Mechanism::RsaPkcsPss(pss()),
                    e.handle,
                    &digest_of(alg, input),
                )?),
                _ => Err(not_here("RSA-PSS on this PKCS#11 token")),
            },
            (KeyKind::KeyPair(KeyPairAlgorithm::Ed25519), SignAlgorithm::Ed25519) => {
                let SignInput::Message(msg) = input else {
                    unreachable!("checked by SignInput::check")
                };
                let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                Ok(s.sign(&mech, e.handle, msg)?)
            }
            (KeyKind::Symmetric(crate::SymmetricUsage::HmacSha256), SignAlgorithm::HmacSha256) => {
                let SignInput::Message(msg) = input else {
                    unreachable!("checked by SignInput::check")
                };
                Ok(s.sign(&Mechanism::Sha256Hmac, e.handle, msg)?)
            }
            (kind, alg) => Err(wrong(kind, alg).into()),
        }
    }

    pub(crate) fn sign_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        match key {
            KeyRef::Derived { base, label } => self.sign_derived(base, label, alg, input),
            KeyRef::Stored(id) => self.run("sign", |s| {
                let e = self.entry(s, id)?;
                self.sign_entry(s, &e, alg, input)
            }),
        }
    }

    pub(crate) fn verify_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool> {
        let id = match key {
            KeyRef::Derived { base, label } => {
                return self.verify_derived(base, label, alg, input, sig);
            }
            KeyRef::Stored(id) => id,
        };
        let e = self.run("verify", |s| self.entry(s, id))?;
        match (e.kind, &e.public) {
            (KeyKind::Symmetric(_), _) => {
                let tag = self.run("verify", |s| self.sign_entry(s, &e, alg, input))?;
                Ok(constant_time::verify_slices_are_equal(&tag, sig).is_ok())
            }
            (KeyKind::KeyPair(key_alg), Some(public)) => {
                let verifier =
                    material::verifier(key_alg, alg).ok_or_else(|| wrong(e.kind, alg))?;
                let public = UnparsedPublicKey::new(verifier, &public.raw);
                Ok(match input {
                    SignInput::Message(msg) => public.verify(msg, sig).is_ok(),
                    SignInput::Digest(d) => {
                        let h = if alg == SignAlgorithm::EcdsaSha384 {
                            &digest::SHA384
                        } else {
                            &digest::SHA256
                        };
                        let d = digest::Digest::import_less_safe(d, h).map_err(|_| {
                            KeyError::InvalidInput(format!(
                                "a digest for {alg} has the wrong length"
                            ))
                        })?;
                        public.verify_digest(&d, sig).is_ok()
                    }
                })
            }
            (KeyKind::KeyPair(_), None) => {
                Err(KeyError::Backend(format!("no public key for {id:?}")))
            }
        }
    }
}
