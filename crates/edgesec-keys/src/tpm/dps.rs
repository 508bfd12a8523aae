//! DPS TPM attestation, device side: the endorsement key and the RSA storage key the service
//! encrypts to, and the import of the HMAC authentication key the service sends back.
//!
//! The service's challenge (`authenticationKey`, after base64) is five size-prefixed TPM
//! structures one after the other, each a u16 big-endian length and that many bytes:
//!
//! 1. TPM2B_ID_OBJECT — a credential made for the endorsement key (TPM2_MakeCredential), bound
//!    to the name of the storage key. Its content is the key of the inner duplication wrapper.
//! 2. TPM2B_ENCRYPTED_SECRET — the credential's seed, RSA-OAEP-encrypted to the endorsement key.
//! 3. TPM2B_PRIVATE — the duplicate of the HMAC key's sensitive area: inner wrapper with the
//!    credential's key, outer wrapper from the seed below.
//! 4. TPM2B_ENCRYPTED_SECRET — the outer wrapper's seed, RSA-OAEP-encrypted to the storage key.
//! 5. TPM2B_PUBLIC — the HMAC key's public area.
//!
//! Only this TPM can undo both wrappers: ActivateCredential needs the endorsement key (authorized
//! by PolicySecret on the endorsement hierarchy, as the EK template's policy says) and checks that
//! the credential names our storage key; Import needs the storage key and checks the inner and
//! outer integrity over the key's name. The imported key is kept like every other key here: a
//! wrapped blob in the store directory, its auth value changed to the one derived from its id.

use tss_esapi::Error as TssError;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::{AuthHandle, KeyHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, Data, EncryptedSecret, IdObject, KeyedHashScheme, Private, Public,
    PublicKeyedHashParameters, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::blob;
use super::device::{Inner, Parent};
use super::{TpmKeyStore, backend, seal, templates, tpm_error};
use crate::{KeyError, KeyId, KeyInfo, KeyKind, Result, SymmetricUsage, TpmPublicKeys};

/// Where the endorsement key is kept (the TCG's handle for the RSA EK).
pub const ENDORSEMENT_KEY_HANDLE: u32 = 0x8101_0001;
/// Where the RSA storage key of DPS attestation is kept: in the owner's storage-key range, clear
/// of 0x81000001/0x81000002, which the TCG suggests for the RSA and ECC SRKs (our ECC storage
/// root key sits at the first by default).
pub const DPS_STORAGE_KEY_HANDLE: u32 = 0x8100_0010;

/// The largest challenge accepted; a real one is about 1 KiB.
pub const MAX_AUTH_KEY_BLOB: usize = 4096;

/// The five parts of the service's challenge.
struct Challenge {
    credential: IdObject,
    credential_seed: EncryptedSecret,
    duplicate: Private,
    import_seed: EncryptedSecret,
    public: Public,
}

fn malformed(part: &str) -> KeyError {
    KeyError::InvalidInput(format!(
        "the TPM authentication key blob is malformed: its {part} is missing, truncated or too \
         large"
    ))
}

/// The next size-prefixed structure.
fn take_sized<'a>(rest: &mut &'a [u8], part: &str) -> Result<&'a [u8]> {
    let &[a, b, ref tail @ ..] = *rest else {
        return Err(malformed(part));
    };
    let len = usize::from(u16::from_be_bytes([a, b]));
    let body = tail.get(..len).ok_or_else(|| malformed(part))?;
    *rest = &tail[len..];
    Ok(body)
}

impl Challenge {
    fn parse(blob: &[u8]) -> Result<Self> {
        if blob.len() > MAX_AUTH_KEY_BLOB {
            return Err(KeyError::InvalidInput(format!(
                "the TPM authentication key blob is larger than {MAX_AUTH_KEY_BLOB} bytes"
            )));
        }
        let mut rest = blob;
        let credential = take_sized(&mut rest, "credential (TPM2B_ID_OBJECT)").and_then(|b| {
            IdObject::try_from(b.to_vec()).map_err(|_| malformed("credential (TPM2B_ID_OBJECT)"))
        })?;
        let credential_seed = take_sized(&mut rest, "credential secret (TPM2B_ENCRYPTED_SECRET)")
            .and_then(|b| {
            EncryptedSecret::try_from(b.to_vec())
                .map_err(|_| malformed("credential secret (TPM2B_ENCRYPTED_SECRET)"))
        })?;
        let duplicate = take_sized(&mut rest, "duplicate (TPM2B_PRIVATE)").and_then(|b| {
            Private::try_from(b.to_vec()).map_err(|_| malformed("duplicate (TPM2B_PRIVATE)"))
        })?;
        let import_seed =
            take_sized(&mut rest, "import seed (TPM2B_ENCRYPTED_SECRET)").and_then(|b| {
                EncryptedSecret::try_from(b.to_vec())
                    .map_err(|_| malformed("import seed (TPM2B_ENCRYPTED_SECRET)"))
            })?;
        let public = take_sized(&mut rest, "public area (TPM2B_PUBLIC)").and_then(|b| {
            Public::unmarshall(b).map_err(|_| malformed("public area (TPM2B_PUBLIC)"))
        })?;
        if !rest.is_empty() {
            return Err(KeyError::InvalidInput(
                "the TPM authentication key blob has bytes after its public area".into(),
            ));
        }
        check_auth_key_public(&public)?;
        Ok(Challenge {
            credential,
            credential_seed,
            duplicate,
            import_seed,
            public,
        })
    }
}

/// The imported key must be what DPS sends: an HMAC-SHA256 signing key, usable with its auth
/// value (so keyd can set its own), and importable (not fixedTPM).
fn check_auth_key_public(public: &Public) -> Result<()> {
    let Public::KeyedHash {
        object_attributes: a,
        name_hashing_algorithm,
        parameters,
        ..
    } = public
    else {
        return Err(KeyError::InvalidInput(
            "the TPM authentication key is not a keyed-hash (HMAC) key".into(),
        ));
    };
    let fits = *name_hashing_algorithm == HashingAlgorithm::Sha256
        && *parameters == PublicKeyedHashParameters::new(KeyedHashScheme::HMAC_SHA_256)
        && a.sign_encrypt()
        && !a.decrypt()
        && !a.restricted()
        && a.user_with_auth()
        && !a.admin_with_policy()
        && !a.fixed_tpm();
    if fits {
        Ok(())
    } else {
        Err(KeyError::InvalidInput(
            "the TPM authentication key must be an HMAC-SHA256 signing key with SHA-256 names, \
             usable with its auth value and not fixed to another TPM"
                .into(),
        ))
    }
}

/// An RSA-2048 restricted decryption key with AES-128-CFB and SHA-256 names: what the service
/// can make credentials and duplicates for.
fn check_rsa_storage_shape(public: &Public, what: &str, handle: u32) -> Result<()> {
    let fits = match public {
        Public::Rsa {
            object_attributes: a,
            name_hashing_algorithm,
            parameters,
            ..
        } => {
            *name_hashing_algorithm == HashingAlgorithm::Sha256
                && a.restricted()
                && a.decrypt()
                && parameters.key_bits() == RsaKeyBits::Rsa2048
                && parameters.symmetric_definition_object()
                    == SymmetricDefinitionObject::AES_128_CFB
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(KeyError::Backend(format!(
            "the persistent TPM object at 0x{handle:08x} is not an RSA-2048 restricted decryption \
             key with AES-128-CFB, so it cannot serve as the {what}; free that handle or remove \
             the object"
        )))
    }
}

/// Whether a TPM error is about the command's input (an altered blob, a blob for another TPM).
fn input_error(e: &TssError) -> bool {
    use Tss2ResponseCodeKind as K;
    matches!(
        e,
        TssError::Tss2Error(rc) if matches!(
            rc.kind(),
            Some(
                K::Integrity
                    | K::Value
                    | K::Size
                    | K::Insufficient
                    | K::Key
                    | K::KeySize
                    | K::Attributes
                    | K::Scheme
                    | K::Symmetric
                    | K::Hash
                    | K::Type
                    | K::Kdf
                    | K::Mgf
                    | K::Mode
                    | K::Asymmetric
                    | K::Binding
                    | K::Sensitive
                    | K::Tag
                    | K::Selector
            )
        )
    )
}

fn is_failure(e: &TssError) -> bool {
    matches!(e, TssError::Tss2Error(rc) if rc.kind() == Some(Tss2ResponseCodeKind::Failure))
}

fn marshalled_tpm2b(public: &Public) -> Result<Vec<u8>> {
    let body = public
        .marshall()
        .map_err(|e| tpm_error("encode a public area", e))?;
    let len = u16::try_from(body.len())
        .map_err(|_| KeyError::Backend("a TPM public area is too large".into()))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend(body);
    Ok(out)
}

impl Inner {
    /// The endorsement key, created from the default RSA template and persisted when absent.
    pub(crate) fn endorsement_key(&mut self) -> Result<KeyHandle> {
        if let Some(h) = self.endorsement_key {
            return Ok(h);
        }
        let h = self.persistent_primary(
            ENDORSEMENT_KEY_HANDLE,
            Hierarchy::Endorsement,
            templates::endorsement_key,
            "endorsement key",
        )?;
        let public = self.public_of(h)?;
        check_rsa_storage_shape(&public, "endorsement key", ENDORSEMENT_KEY_HANDLE)?;
        self.endorsement_key = Some(h);
        Ok(h)
    }

    /// The RSA storage key of DPS attestation, created and persisted when absent.
    pub(crate) fn dps_storage_key(&mut self) -> Result<KeyHandle> {
        if let Some(h) = self.dps_storage_key {
            return Ok(h);
        }
        let h = self.persistent_primary(
            DPS_STORAGE_KEY_HANDLE,
            Hierarchy::Owner,
            templates::rsa_storage_key,
            "DPS storage key",
        )?;
        let public = self.public_of(h)?;
        check_rsa_storage_shape(&public, "DPS storage key", DPS_STORAGE_KEY_HANDLE)?;
        self.dps_storage_key = Some(h);
        Ok(h)
    }

    /// A TPM refusal of the challenge's content is the caller's problem (wrong TPM, altered
    /// blob); anything else (TPM busy, gone) is ours. libtpms answers TPM_RC_FAILURE when an
    /// RSA-OAEP secret does not decrypt, which otherwise means a TPM in failure mode: a TPM that
    /// still answers a harmless command right after is not in failure mode.
    fn refused(&mut self, step: &str, e: TssError) -> KeyError {
        let input = input_error(&e) || (is_failure(&e) && self.ctx.get_random(1).is_ok());
        if input {
            tracing::info!(error = %e, "{step}: the TPM refused the authentication key");
            KeyError::InvalidInput(format!(
                "the TPM refused the authentication key ({step}): it was made for another TPM's \
                 endorsement or storage key, or it was altered"
            ))
        } else {
            tpm_error(step, e)
        }
    }

    fn public_of(&mut self, h: KeyHandle) -> Result<Public> {
        self.ctx
            .read_public(h)
            .map(|(public, _, _)| public)
            .map_err(|e| tpm_error("read a public area", e))
    }

    /// Unwraps the challenge's key in the TPM; its private blob under the DPS storage key, with
    /// `auth` as its new auth value.
    fn import_challenge(&mut self, c: Challenge, auth: Auth) -> Result<Private> {
        let ek = self.endorsement_key()?;
        let storage = self.dps_storage_key()?;
        let session = seal::start(&mut self.ctx, false)?;
        let activated = (|| {
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.policy_secret(
                        session,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
                .map_err(|e| tpm_error("PolicySecret(endorsement)", e))?;
            self.ctx
                .execute_with_sessions(
                    (
                        Some(AuthSession::Password),
                        Some(AuthSession::PolicySession(session)),
                        None,
                    ),
                    |ctx| ctx.activate_credential(storage, ek, c.credential, c.credential_seed),
                )
                .map_err(|e| self.refused("activate the credential", e))
        })();
        seal::flush_session(&mut self.ctx, session);
        let inner_key = activated?;
        let inner_key = Data::try_from(inner_key.value().to_vec())
            .map_err(|_| KeyError::InvalidInput("the credential is too large".into()))?;
        let private = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.import(
                    storage.into(),
                    Some(inner_key),
                    c.public.clone(),
                    c.duplicate,
                    c.import_seed,
                    SymmetricDefinitionObject::AES_128_CFB,
                )
            })
            .map_err(|e| self.refused("import the duplicate", e))?;
        let handle = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(storage, private, c.public)
            })
            .map_err(|e| self.refused("load the imported key", e))?;
        // The service chose an empty auth value; ours binds the key to its id like every other.
        let changed = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.object_change_auth(handle.into(), storage.into(), auth)
            })
            .map_err(|e| self.refused("set the imported key's auth value", e));
        if let Err(e) = self.ctx.flush_context(handle.into()) {
            tracing::warn!(error = %e, "cannot flush a TPM object");
        }
        changed
    }
}

impl TpmKeyStore {
    pub(super) fn public_keys(&self) -> Result<TpmPublicKeys> {
        let mut g = self.tpm.lock();
        let ek = g.endorsement_key()?;
        let storage = g.dps_storage_key()?;
        Ok(TpmPublicKeys {
            endorsement_key: marshalled_tpm2b(&g.public_of(ek)?)?,
            storage_root_key: marshalled_tpm2b(&g.public_of(storage)?)?,
        })
    }

    /// Imports the challenge's key as `id`. A previous TPM authentication key under `id` is
    /// replaced (the service sends a new one at each registration); any other key is kept and
    /// the import refused.
    pub(super) fn import_auth_key(&self, id: &KeyId, blob: &[u8]) -> Result<KeyInfo> {
        let challenge = Challenge::parse(blob)?;
        let replace = match self.load(id) {
            Ok(b) if b.parent == Parent::DpsStorage => true,
            Ok(_) => return Err(KeyError::AlreadyExists(id.clone())),
            Err(KeyError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let public = challenge.public.clone();
        let private = self
            .tpm
            .lock()
            .import_challenge(challenge, blob::auth_for(id))?;
        let kind = KeyKind::Symmetric(SymmetricUsage::HmacSha256);
        let file = blob::encode(id, kind, Parent::DpsStorage, &public, &private)?;
        let path = self.path_of(id);
        let mut cache = self.cache.write().expect("cache lock");
        if replace {
            edgesec_state::write_replace(&path, &file, 0o600).map_err(backend)?;
            cache.remove(id);
        } else if !edgesec_state::write_new(&path, &file).map_err(backend)? {
            return Err(KeyError::AlreadyExists(id.clone()));
        }
        Ok(KeyInfo {
            id: id.clone(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::interface_types::algorithm::PublicAlgorithm;
    use tss_esapi::structures::{Digest, PublicBuilder};

    use super::*;

    fn sized(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// What DPS sends: an HMAC-SHA256 signing key that may leave its TPM.
    fn importable(fixed_tpm: bool) -> Public {
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(fixed_tpm)
            .with_fixed_parent(fixed_tpm)
            .with_user_with_auth(true)
            .with_no_da(true)
            .with_sign_encrypt(true)
            .build()
            .unwrap();
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(
                KeyedHashScheme::HMAC_SHA_256,
            ))
            .with_keyed_hash_unique_identifier(Digest::try_from(vec![7u8; 32]).unwrap())
            .build()
            .unwrap()
    }

    /// Well-formed structures (their content is checked by the TPM, not here).
    fn blob_with(public: &Public) -> Vec<u8> {
        let mut b = sized(&[0u8; 50]);
        b.extend(sized(&[1u8; 256]));
        b.extend(sized(&[2u8; 100]));
        b.extend(sized(&[3u8; 256]));
        b.extend(sized(&public.marshall().unwrap()));
        b
    }

    fn refused(blob: &[u8]) -> String {
        match Challenge::parse(blob) {
            Err(KeyError::InvalidInput(why)) => why,
            Err(e) => panic!("not an input error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_well_formed_challenge_parses() {
        let c = Challenge::parse(&blob_with(&importable(false))).unwrap();
        assert_eq!(c.credential.value(), [0u8; 50]);
        assert_eq!(c.import_seed.value(), [3u8; 256]);
    }

    #[test]
    fn every_truncation_and_trailing_bytes_are_refused_by_name() {
        let blob = blob_with(&importable(false));
        for n in 0..blob.len() {
            let why = refused(&blob[..n]);
            assert!(why.contains("malformed"), "{n}: {why}");
        }
        assert!(refused(&[blob.as_slice(), &[0]].concat()).contains("after its public area"));
        assert!(refused(&vec![0u8; MAX_AUTH_KEY_BLOB + 1]).contains("larger than"));
        // A size larger than what its structure can hold.
        let mut big = sized(&[0u8; 1000]);
        big.extend(&blob);
        assert!(refused(&big).contains("credential"));
    }

    #[test]
    fn keys_other_than_an_importable_hmac_key_are_refused() {
        for public in [
            importable(true),
            templates::keyed_hash(false, true, None).unwrap(),
            templates::rsa_storage_key().unwrap(),
        ] {
            let why = refused(&blob_with(&public));
            assert!(why.contains("HMAC"), "{why}");
        }
    }
}
