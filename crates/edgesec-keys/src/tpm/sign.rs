//! Signing in the TPM (ECDSA, RSA PKCS#1 v1.5 and PSS, HMAC-SHA256) and verification.
//! Messages are hashed here and the digest is signed by the TPM; verification of key pair
//! signatures needs only the public key, so it runs in software.

use aws_lc_rs::digest::{self, Digest as SwDigest};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use aws_lc_rs::{constant_time, hmac};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{
    Digest, HashScheme, HashcheckTicket, MaxBuffer, Signature, SignatureScheme,
};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::{TpmKeyStore, tpm_error};
use crate::{KeyError, KeyKind, KeyPairAlgorithm, KeyRef, Result, SignAlgorithm, SignInput};

/// The longest message the TPM's HMAC command takes in one call.
pub const MAX_HMAC_MESSAGE: usize = 1024;

fn null_ticket() -> Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| tpm_error("build a hashcheck ticket", e))
}

fn wrong(kind: KeyKind, alg: SignAlgorithm) -> KeyError {
    let what = match kind {
        KeyKind::KeyPair(a) => a.as_str(),
        KeyKind::Symmetric(u) => u.as_str(),
    };
    KeyError::WrongAlgorithm(format!("an {what} key cannot make {alg} signatures"))
}

/// Whether a key pair of `key` can make `alg` signatures, and the hash it uses.
fn fits(key: KeyPairAlgorithm, alg: SignAlgorithm) -> bool {
    key.sign_algorithms().contains(&alg)
}

fn digest_of(alg: SignAlgorithm, input: SignInput<'_>) -> Vec<u8> {
    match input {
        SignInput::Digest(d) => d.to_vec(),
        SignInput::Message(m) => {
            let a = if alg == SignAlgorithm::EcdsaSha384 {
                &digest::SHA384
            } else {
                &digest::SHA256
            };
            digest::digest(a, m).as_ref().to_vec()
        }
    }
}

fn message_of(input: SignInput<'_>) -> &[u8] {
    match input {
        SignInput::Message(m) => m,
        SignInput::Digest(_) => unreachable!("checked by SignInput::check"),
    }
}

fn verifier(alg: SignAlgorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        SignAlgorithm::EcdsaSha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignAlgorithm::EcdsaSha384 => &signature::ECDSA_P384_SHA384_ASN1,
        SignAlgorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        _ => &signature::RSA_PSS_2048_8192_SHA256,
    }
}

impl TpmKeyStore {
    /// HMAC-SHA256 of `msg` with the stored HMAC key `blob`, computed by the TPM.
    pub(super) fn tpm_hmac(&self, blob: &super::blob::Blob, msg: &[u8]) -> Result<Vec<u8>> {
        if msg.len() > MAX_HMAC_MESSAGE {
            return Err(KeyError::InvalidInput(format!(
                "a TPM HMAC key signs messages of at most {MAX_HMAC_MESSAGE} bytes"
            )));
        }
        let buffer =
            MaxBuffer::try_from(msg.to_vec()).map_err(|e| tpm_error("build an HMAC buffer", e))?;
        self.with_key(blob, |ctx, handle| {
            ctx.execute_with_session(
                Some(tss_esapi::interface_types::session_handles::AuthSession::Password),
                |c| c.hmac(handle.into(), buffer, HashingAlgorithm::Sha256),
            )
            .map(|d| d.value().to_vec())
            .map_err(|e| tpm_error("HMAC", e))
        })
    }

    pub(super) fn sign_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        if let KeyRef::Derived { base, label } = key {
            if alg != SignAlgorithm::HmacSha256 {
                return Err(KeyError::WrongAlgorithm(format!(
                    "a derived key makes only hmac-sha256 signatures, not {alg}"
                )));
            }
            let bytes = self.derive_bytes(base, label)?;
            let k = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
            return Ok(hmac::sign(&k, message_of(input)).as_ref().to_vec());
        }
        let b = self.load(key.base_id())?;
        match b.kind {
            KeyKind::Symmetric(crate::SymmetricUsage::HmacSha256)
                if alg == SignAlgorithm::HmacSha256 =>
            {
                self.tpm_hmac(&b, message_of(input))
            }
            KeyKind::KeyPair(k) if fits(k, alg) => {
                let hash = if alg == SignAlgorithm::EcdsaSha384 {
                    HashingAlgorithm::Sha384
                } else {
                    HashingAlgorithm::Sha256
                };
                let hash_scheme = HashScheme::new(hash);
                let scheme = match alg {
                    SignAlgorithm::EcdsaSha256 | SignAlgorithm::EcdsaSha384 => {
                        SignatureScheme::EcDsa { hash_scheme }
                    }
                    SignAlgorithm::RsaPkcs1Sha256 => SignatureScheme::RsaSsa { hash_scheme },
                    _ => SignatureScheme::RsaPss { hash_scheme },
                };
                let digest = Digest::try_from(digest_of(alg, input))
                    .map_err(|e| tpm_error("build a digest", e))?;
                let ticket = null_ticket()?;
                let sig = self.with_key(&b, |ctx, handle| {
                    ctx.execute_with_session(
                        Some(tss_esapi::interface_types::session_handles::AuthSession::Password),
                        |c| c.sign(handle, digest, scheme, ticket),
                    )
                    .map_err(|e| tpm_error("sign", e))
                })?;
                match sig {
                    Signature::EcDsa(s) => Ok(crate::der::ecdsa_sig(
                        s.signature_r().value(),
                        s.signature_s().value(),
                    )),
                    Signature::RsaSsa(s) | Signature::RsaPss(s) => {
                        Ok(s.signature().value().to_vec())
                    }
                    _ => Err(KeyError::Backend(
                        "the TPM answered with an unexpected signature type".into(),
                    )),
                }
            }
            kind => Err(wrong(kind, alg)),
        }
    }

    pub(super) fn verify_with(
        &self,
        key: &KeyRef,
        alg: SignAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool> {
        if let KeyRef::Derived { .. } = key {
            let tag = self.sign_with(key, alg, input)?;
            return Ok(constant_time::verify_slices_are_equal(&tag, sig).is_ok());
        }
        let b = self.load(key.base_id())?;
        match b.kind {
            KeyKind::Symmetric(crate::SymmetricUsage::HmacSha256)
                if alg == SignAlgorithm::HmacSha256 =>
            {
                let tag = self.tpm_hmac(&b, message_of(input))?;
                Ok(constant_time::verify_slices_are_equal(&tag, sig).is_ok())
            }
            KeyKind::KeyPair(k) if fits(k, alg) => {
                let raw = super::templates::raw_public(&b.public)
                    .ok_or_else(|| KeyError::Corrupted(key.base_id().clone()))?;
                let public = UnparsedPublicKey::new(verifier(alg), raw);
                Ok(match input {
                    SignInput::Message(m) => public.verify(m, sig).is_ok(),
                    SignInput::Digest(d) => {
                        let a = if alg == SignAlgorithm::EcdsaSha384 {
                            &digest::SHA384
                        } else {
                            &digest::SHA256
                        };
                        let d = SwDigest::import_less_safe(d, a).map_err(|_| {
                            KeyError::InvalidInput(format!(
                                "a digest for {alg} has the wrong length"
                            ))
                        })?;
                        public.verify_digest(&d, sig).is_ok()
                    }
                })
            }
            kind => Err(wrong(kind, alg)),
        }
    }
}
