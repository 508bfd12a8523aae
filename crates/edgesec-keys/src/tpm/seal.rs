//! Sealing a secret to PCR values: a sealed data object under the SRK whose authorization policy
//! is PolicyOR(PolicyPCR over the chosen SHA-256 PCRs, PolicySecret(owner hierarchy)). Normally
//! the TPM releases the secret only while those PCRs hold the values they had when it was
//! sealed; the second branch is the operator's way back after a legitimate update (unseal with
//! the owner hierarchy's authorization, then seal again to the new values).
//!
//! The owner branch is only as strong as the owner hierarchy's authorization value: while it is
//! empty (the TPM default, and swtpm's), anyone who can send commands to the TPM unseals the
//! secret through it, whatever the PCRs hold. [`Tpm::owner_auth_set`] tells whether it has one
//! and [`Tpm::set_owner_auth`] gives it to this connection; sealing and unsealing through the
//! owner branch present it in PolicySecret, and a wrong one is [`SealError::BadOwnerAuth`].
//! Refusing to seal without one is the caller's policy (keyd's `sealing.rs`).
//!
//! File image: `"ESL2" | pcr-branch digest | owner-branch digest | public | private`, each a
//! u16-length-prefixed field.

use tss_esapi::constants::SessionType;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::AuthHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, DigestList, Private, Public, SensitiveData, SymmetricDefinition,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, Error as TssError};
use zeroize::Zeroizing;

use super::device::Inner;
use super::{Tpm, pcr, templates, tpm_error};
use crate::KeyError;

const MAGIC: &[u8; 4] = b"ESL2";

/// Why sealing or unsealing failed.
#[derive(Debug)]
pub enum SealError {
    /// The PCRs no longer hold the values the secret was sealed to.
    PcrMismatch,
    /// The TPM refused the owner hierarchy's authorization value in PolicySecret(owner).
    /// `counted`: the TPM reported TPM_RC_AUTH_FAIL, a failure that counts toward its
    /// dictionary-attack lockout (TPM_RC_BAD_AUTH, the usual answer for a hierarchy, does not).
    BadOwnerAuth { counted: bool },
    /// Anything else (TPM unreachable, corrupted file, another TPM).
    Failed(KeyError),
}

/// The name this error had when only unsealing returned it.
pub type UnsealError = SealError;

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::PcrMismatch => {
                f.write_str("the PCR values differ from those the secret was sealed to")
            }
            SealError::BadOwnerAuth { counted: false } => f.write_str(
                "the TPM refused the owner hierarchy's authorization value (TPM_RC_BAD_AUTH; this \
                 TPM exempts the owner hierarchy from dictionary-attack lockout, so the attempt \
                 did not count toward it)",
            ),
            SealError::BadOwnerAuth { counted: true } => f.write_str(
                "the TPM refused the owner hierarchy's authorization value (TPM_RC_AUTH_FAIL: \
                 the failure counted toward the TPM's dictionary-attack lockout, and repeated \
                 wrong values will lock the TPM)",
            ),
            SealError::Failed(e) => e.fmt(f),
        }
    }
}

impl From<KeyError> for SealError {
    fn from(e: KeyError) -> Self {
        SealError::Failed(e)
    }
}

/// Maps a failed PolicySecret(owner): a refused authorization value is named as such.
fn owner_error(e: TssError) -> SealError {
    match e {
        TssError::Tss2Error(rc) => match rc.kind() {
            Some(Tss2ResponseCodeKind::BadAuth) => SealError::BadOwnerAuth { counted: false },
            Some(Tss2ResponseCodeKind::AuthFail) => SealError::BadOwnerAuth { counted: true },
            _ => SealError::Failed(tpm_error("PolicySecret(owner)", e)),
        },
        e => SealError::Failed(tpm_error("PolicySecret(owner)", e)),
    }
}

/// Starts a policy (or trial) session.
pub(super) fn start(ctx: &mut Context, trial: bool) -> Result<PolicySession, KeyError> {
    let kind = if trial {
        SessionType::Trial
    } else {
        SessionType::Policy
    };
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::Null,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| tpm_error("start a policy session", e))?
        .ok_or_else(|| KeyError::Backend("the TPM gave no policy session".into()))?;
    PolicySession::try_from(session).map_err(|e| tpm_error("policy session", e))
}

/// One policy branch in `session`: PolicyPCR over the current values of `pcrs`, or (`pcrs`
/// `None`) PolicySecret with the owner hierarchy's authorization. The TPM checks that
/// authorization in a trial session too, so sealing proves the value right.
fn branch(g: &mut Inner, session: PolicySession, pcrs: Option<&[u8]>) -> Result<(), SealError> {
    match pcrs {
        Some(pcrs) => {
            let selection = pcr::selection(pcrs)?;
            g.ctx
                .policy_pcr(session, Digest::default(), selection)
                .map_err(|e| SealError::Failed(tpm_error("PolicyPCR", e)))
        }
        None => g
            .as_owner(|ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |c| {
                    c.policy_secret(
                        session,
                        AuthHandle::Owner,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
            })
            .map(|_| ())
            .map_err(owner_error),
    }
}

/// The digest of one branch, computed in a trial session.
fn branch_digest(g: &mut Inner, pcrs: Option<&[u8]>) -> Result<Digest, SealError> {
    let s = start(&mut g.ctx, true)?;
    let r = branch(g, s, pcrs).and_then(|()| {
        g.ctx
            .policy_get_digest(s)
            .map_err(|e| SealError::Failed(tpm_error("policy digest", e)))
    });
    flush_session(&mut g.ctx, s);
    r
}

fn or_list(a: &Digest, b: &Digest) -> Result<DigestList, KeyError> {
    let mut list = DigestList::new();
    list.add(a.clone())
        .map_err(|e| tpm_error("policy list", e))?;
    list.add(b.clone())
        .map_err(|e| tpm_error("policy list", e))?;
    Ok(list)
}

pub(super) fn flush_session(ctx: &mut Context, s: PolicySession) {
    let _ = ctx.flush_context(tss_esapi::handles::SessionHandle::from(s).into());
}

fn field(out: &mut Vec<u8>, f: &[u8]) {
    out.extend_from_slice(&(f.len() as u16).to_be_bytes());
    out.extend_from_slice(f);
}

impl Tpm {
    /// Seals `secret` (at most 128 bytes) to the current values of `pcrs`; returns the file image.
    /// Needs the owner hierarchy's authorization ([`Tpm::set_owner_auth`]) when it has one.
    pub fn seal(&self, secret: &[u8], pcrs: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut g = self.lock();
        let srk = g.srk()?;
        let pcr_branch = branch_digest(&mut g, Some(pcrs))?;
        let owner_branch = branch_digest(&mut g, None)?;
        let trial = start(&mut g.ctx, true)?;
        let digest = or_list(&pcr_branch, &owner_branch).and_then(|l| {
            g.ctx
                .policy_or(trial, l)
                .map_err(|e| tpm_error("PolicyOR", e))?;
            g.ctx
                .policy_get_digest(trial)
                .map_err(|e| tpm_error("policy digest", e))
        });
        flush_session(&mut g.ctx, trial);
        let digest = digest?;
        let public = templates::keyed_hash(false, true, Some(digest))
            .map_err(|e| tpm_error("build a sealing template", e))?;
        let data = SensitiveData::try_from(secret.to_vec())
            .map_err(|e| tpm_error("wrap the secret", e))?;
        let created = g
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create(srk, public, None, Some(data), None, None)
            })
            .map_err(|e| tpm_error("seal", e))?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| tpm_error("encode the sealed object", e))?;
        let mut out = MAGIC.to_vec();
        field(&mut out, pcr_branch.value());
        field(&mut out, owner_branch.value());
        field(&mut out, &public);
        field(&mut out, created.out_private.value());
        Ok(out)
    }

    /// Unseals a file image made by [`Tpm::seal`] with the current values of `pcrs`.
    pub fn unseal(&self, sealed: &[u8], pcrs: &[u8]) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
        self.unseal_with(sealed, Some(pcrs))
    }

    /// Unseals through the owner branch, whatever the PCRs hold: the operator's re-seal path
    /// after a legitimate change. Needs the owner hierarchy's authorization
    /// ([`Tpm::set_owner_auth`]); without the right one the TPM refuses.
    pub fn unseal_as_owner(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
        self.unseal_with(sealed, None)
    }

    fn unseal_with(
        &self,
        sealed: &[u8],
        pcrs: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
        let corrupted =
            || UnsealError::Failed(KeyError::Backend("the sealed file is corrupted".into()));
        let mut rest = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(corrupted)?;
        let mut fields = Vec::new();
        for _ in 0..4 {
            let n = usize::from(u16::from_be_bytes([
                *rest.first().ok_or_else(corrupted)?,
                *rest.get(1).ok_or_else(corrupted)?,
            ]));
            fields.push(rest.get(2..2 + n).ok_or_else(corrupted)?.to_vec());
            rest = &rest[2 + n..];
        }
        if !rest.is_empty() {
            return Err(corrupted());
        }
        let pcr_branch = Digest::try_from(fields[0].clone()).map_err(|_| corrupted())?;
        let owner_branch = Digest::try_from(fields[1].clone()).map_err(|_| corrupted())?;
        let public = Public::unmarshall(&fields[2]).map_err(|_| corrupted())?;
        let private = Private::try_from(fields[3].clone()).map_err(|_| corrupted())?;
        let list = or_list(&pcr_branch, &owner_branch).map_err(UnsealError::Failed)?;
        let mut g = self.lock();
        let srk = g.srk().map_err(UnsealError::Failed)?;
        let handle = g
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.load(srk, private, public)
            })
            .map_err(|e| {
                UnsealError::Failed(tpm_error(
                    "load the sealed object (was it sealed by another TPM or SRK?)",
                    e,
                ))
            })?;
        let result = (|| {
            let session = start(&mut g.ctx, false).map_err(UnsealError::Failed)?;
            let r = (|| {
                branch(&mut g, session, pcrs)?;
                // With other PCR values the session digest is in neither branch.
                g.ctx
                    .policy_or(session, list)
                    .map_err(|_| UnsealError::PcrMismatch)?;
                g.ctx
                    .execute_with_session(Some(AuthSession::PolicySession(session)), |c| {
                        c.unseal(handle.into())
                    })
                    .map(|d| Zeroizing::new(d.value().to_vec()))
                    .map_err(|e| match e {
                        TssError::Tss2Error(rc)
                            if matches!(
                                rc.kind(),
                                Some(
                                    Tss2ResponseCodeKind::PolicyFail | Tss2ResponseCodeKind::Policy
                                )
                            ) =>
                        {
                            UnsealError::PcrMismatch
                        }
                        e => UnsealError::Failed(tpm_error("unseal", e)),
                    })
            })();
            flush_session(&mut g.ctx, session);
            r
        })();
        let _ = g.ctx.flush_context(handle.into());
        result
    }
}
