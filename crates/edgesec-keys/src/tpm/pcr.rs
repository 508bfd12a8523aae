//! PCRs of the SHA-256 bank: extend, read and reset.

use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, DigestValues, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
};
use tss_esapi::tss2_esys::ESYS_TR;

use super::{Tpm, tpm_error};
use crate::KeyError;

/// The highest PCR index of a PC-client TPM.
pub const MAX_PCR: u8 = 23;

fn handle(pcr: u8) -> Result<PcrHandle, KeyError> {
    if pcr > MAX_PCR {
        return Err(KeyError::InvalidInput(format!(
            "PCR {pcr} does not exist (0 to 23)"
        )));
    }
    PcrHandle::try_from(ESYS_TR::from(pcr))
        .map_err(|_| KeyError::InvalidInput(format!("PCR {pcr} has no handle")))
}

/// A SHA-256 selection of `pcrs`.
pub(crate) fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, KeyError> {
    let mut slots = Vec::with_capacity(pcrs.len());
    for &p in pcrs {
        if p > MAX_PCR {
            return Err(KeyError::InvalidInput(format!(
                "PCR {p} does not exist (0 to 23)"
            )));
        }
        slots.push(PcrSlot::try_from(1u32 << p).map_err(|e| tpm_error("select PCRs", e))?);
    }
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| tpm_error("select PCRs", e))
}

impl Tpm {
    /// Extends SHA-256 PCR `pcr` with `digest`: PCR := SHA-256(PCR || digest).
    pub fn pcr_extend(&self, pcr: u8, digest: &[u8; 32]) -> Result<(), KeyError> {
        let h = handle(pcr)?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(|e| tpm_error("build a digest", e))?,
        );
        self.lock()
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| c.pcr_extend(h, values))
            .map_err(|e| tpm_error(&format!("extend PCR {pcr}"), e))
    }

    /// Resets PCR `pcr` to zeros (only the debug/application PCRs 16 and 23 allow this).
    pub fn pcr_reset(&self, pcr: u8) -> Result<(), KeyError> {
        let h = handle(pcr)?;
        self.lock()
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| c.pcr_reset(h))
            .map_err(|e| tpm_error(&format!("reset PCR {pcr}"), e))
    }

    /// The SHA-256 values of `pcrs`, in ascending PCR order, as `(index, value)`.
    pub fn pcr_read(&self, pcrs: &[u8]) -> Result<Vec<(u8, [u8; 32])>, KeyError> {
        let mut sorted = pcrs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len());
        for chunk in sorted.chunks(8) {
            let sel = selection(chunk)?;
            let (_, _, digests) = self
                .lock()
                .ctx
                .execute_without_session(|c| c.pcr_read(sel))
                .map_err(|e| tpm_error("read PCRs", e))?;
            let values = digests.value();
            if values.len() != chunk.len() {
                return Err(KeyError::Backend(format!(
                    "the TPM returned {} PCR values for {} PCRs: is the SHA-256 bank active?",
                    values.len(),
                    chunk.len()
                )));
            }
            for (&p, d) in chunk.iter().zip(values) {
                let v: [u8; 32] = d.value().try_into().map_err(|_| {
                    KeyError::Backend("the TPM returned a PCR value that is not 32 bytes".into())
                })?;
                out.push((p, v));
            }
        }
        Ok(out)
    }
}
