//! Quotes: the TPM signs the digest of chosen PCRs together with a verifier's nonce, with an
//! attestation key (AK) that only signs TPM-made structures (a restricted signing key).
//!
//! The AK is a primary in the endorsement hierarchy made from a fixed template, so the same TPM
//! always yields the same AK without storing anything; it is created for each quote and flushed.

use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, HashScheme, Signature, SignatureScheme};
use tss_esapi::traits::Marshall;

use super::{Tpm, pcr, templates, tpm_error};
use crate::KeyError;

/// The largest nonce a quote takes (TPM2B_DATA of a SHA-256 TPM).
pub const MAX_NONCE: usize = 64;

/// A signed quote and what a verifier needs with it.
#[derive(Clone, Debug)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST the TPM signed.
    pub attest: Vec<u8>,
    /// ECDSA P-256 signature over SHA-256(attest), DER.
    pub signature: Vec<u8>,
    /// The AK's public key, DER SubjectPublicKeyInfo.
    pub ak_spki: Vec<u8>,
    /// The quoted PCRs' SHA-256 values at quote time, in ascending order.
    pub pcrs: Vec<(u8, [u8; 32])>,
}

impl Tpm {
    /// Quotes the SHA-256 values of `pcrs` with `nonce` as the qualifying data.
    pub fn quote(&self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, KeyError> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE {
            return Err(KeyError::InvalidInput(format!(
                "a quote nonce must be 1 to {MAX_NONCE} bytes"
            )));
        }
        let mut sorted = pcrs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() > 8 {
            return Err(KeyError::InvalidInput("quote 1 to 8 PCRs".into()));
        }
        let selection = pcr::selection(&sorted)?;
        let data = Data::try_from(nonce.to_vec()).map_err(|e| tpm_error("wrap the nonce", e))?;
        let template = templates::attestation_key().map_err(|e| tpm_error("AK template", e))?;
        let mut g = self.lock();
        let ak = g
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map_err(|e| tpm_error("create the attestation key", e))?;
        let handle = ak.key_handle;
        let quoted = g
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.quote(
                    handle,
                    data,
                    SignatureScheme::EcDsa {
                        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                    },
                    selection.clone(),
                )
            });
        let values = g.ctx.execute_without_session(|c| c.pcr_read(selection));
        let _ = g.ctx.flush_context(handle.into());
        drop(g);
        let (attest, signature) = quoted.map_err(|e| tpm_error("quote", e))?;
        let (_, _, digests) = values.map_err(|e| tpm_error("read PCRs", e))?;
        let attest = attest
            .marshall()
            .map_err(|e| tpm_error("encode the quote", e))?;
        let Signature::EcDsa(sig) = signature else {
            return Err(KeyError::Backend(
                "the TPM signed the quote with another scheme".into(),
            ));
        };
        let ak_spki = templates::spki_der(&ak.out_public)
            .ok_or_else(|| KeyError::Backend("cannot encode the AK public key".into()))?;
        let mut pcrs = Vec::with_capacity(sorted.len());
        for (&p, d) in sorted.iter().zip(digests.value()) {
            let v: [u8; 32] = d
                .value()
                .try_into()
                .map_err(|_| KeyError::Backend("a PCR value is not 32 bytes".into()))?;
            pcrs.push((p, v));
        }
        Ok(Quote {
            attest,
            signature: crate::der::ecdsa_sig(sig.signature_r().value(), sig.signature_s().value()),
            ak_spki,
            pcrs,
        })
    }
}
