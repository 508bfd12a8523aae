//! Object templates (TPMT_PUBLIC) and the conversion of a TPM public area to a DER
//! SubjectPublicKeyInfo.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, KeyedHashScheme, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyRsa, PublicKeyedHashParameters,
    PublicRsaParametersBuilder, RsaExponent, RsaScheme, SymmetricDefinitionObject,
};

use crate::{KeyPairAlgorithm, der};

type TssResult<T> = Result<T, tss_esapi::Error>;

/// A storage key's attributes (the TCG's SRK shape): made in this TPM and never leaving it,
/// restricted to decrypting (wrapping) its children.
fn storage_key_attributes() -> TssResult<tss_esapi::attributes::ObjectAttributes> {
    ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
}

/// The storage root key: an ECC P-256 restricted decryption primary (the TCG's SRK shape).
pub(crate) fn storage_root() -> TssResult<Public> {
    let attributes = storage_key_attributes()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The endorsement key: the TCG EK Credential Profile's default RSA-2048 template (restricted
/// decryption, AES-128-CFB, authorized only by PolicySecret(endorsement hierarchy)). A TPM with
/// a manufacturer's EK certificate gives the certified key from this very template.
pub(crate) fn endorsement_key() -> TssResult<Public> {
    tss_esapi::abstraction::ek::create_ek_public_from_default_template(
        tss_esapi::interface_types::algorithm::AsymmetricAlgorithm::Rsa,
        None::<tss_esapi::abstraction::DefaultKey>,
    )
}

/// The RSA storage key of DPS TPM attestation: the TCG's RSA-2048 SRK shape (restricted
/// decryption, AES-128-CFB). The service encrypts the import seed to it with RSA-OAEP, which an
/// ECC key cannot take, so it stands beside the ECC storage root key.
pub(crate) fn rsa_storage_key() -> TssResult<Public> {
    let attributes = storage_key_attributes()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                RsaKeyBits::Rsa2048,
                RsaExponent::ZERO_EXPONENT,
            )
            .build()?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
}

/// An unrestricted signing key pair, its scheme chosen at each signature.
pub(crate) fn key_pair(alg: KeyPairAlgorithm) -> TssResult<Option<Public>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .build()?;
    let builder = PublicBuilder::new()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    let curve = match alg {
        KeyPairAlgorithm::EcP256 => Some(EccCurve::NistP256),
        KeyPairAlgorithm::EcP384 => Some(EccCurve::NistP384),
        _ => None,
    };
    if let Some(curve) = curve {
        return builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(
                // Scheme Null: the scheme is chosen at each signature. (The builder refuses a
                // Null scheme on a key flagged for signing, so the flag stays off here; the
                // object attributes make it a signing key.)
                PublicEccParametersBuilder::new()
                    .with_ecc_scheme(EccScheme::Null)
                    .with_curve(curve)
                    .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                    .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .map(Some);
    }
    if alg != KeyPairAlgorithm::Rsa2048 {
        return Ok(None);
    }
    builder
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new()
                .with_scheme(RsaScheme::Null)
                .with_key_bits(RsaKeyBits::Rsa2048)
                .with_exponent(RsaExponent::ZERO_EXPONENT)
                .build()?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
        .map(Some)
}

/// A keyed-hash object: an HMAC-SHA256 key (`hmac`) or a sealed data object holding bytes that
/// only come out through Unseal. `imported` objects carry caller data, so the TPM did not make
/// their sensitive part. `policy` restricts use to a policy session (sealing to PCRs).
pub(crate) fn keyed_hash(hmac: bool, imported: bool, policy: Option<Digest>) -> TssResult<Public> {
    let mut attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(hmac && !imported)
        .with_no_da(true)
        .with_sign_encrypt(hmac);
    attributes = attributes.with_user_with_auth(policy.is_none());
    let scheme = if hmac {
        KeyedHashScheme::HMAC_SHA_256
    } else {
        KeyedHashScheme::Null
    };
    let mut builder = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes.build()?)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(scheme))
        .with_keyed_hash_unique_identifier(Digest::default());
    if let Some(p) = policy {
        builder = builder.with_auth_policy(p);
    }
    builder.build()
}

/// The attestation key: a restricted ECDSA P-256 / SHA-256 signing primary in the endorsement
/// hierarchy. Primaries are derived from the hierarchy seed and the template, so the same TPM
/// gives the same key every time without storing anything.
pub(crate) fn attestation_key() -> TssResult<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                .with_curve(EccCurve::NistP256)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(true)
                .with_restricted(true)
                .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The raw public key of an ECC or RSA public area, as aws-lc verifies with it: the
/// uncompressed point, or the PKCS#1 RSAPublicKey.
pub(crate) fn raw_public(public: &Public) -> Option<Vec<u8>> {
    match public {
        Public::Ecc {
            parameters, unique, ..
        } => {
            let n = curve_of(parameters.ecc_curve())?.1;
            let mut point = vec![0x04];
            point.extend(left_pad(unique.x().value(), n));
            point.extend(left_pad(unique.y().value(), n));
            Some(point)
        }
        Public::Rsa {
            parameters, unique, ..
        } => {
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            Some(der::rsa_public_key(unique.value(), &exponent.to_be_bytes()))
        }
        _ => None,
    }
}

/// DER SubjectPublicKeyInfo of an ECC or RSA public area.
pub(crate) fn spki_der(public: &Public) -> Option<Vec<u8>> {
    let raw = raw_public(public)?;
    match public {
        Public::Ecc { parameters, .. } => {
            Some(der::ec_spki(curve_of(parameters.ecc_curve())?.0, &raw))
        }
        _ => Some(der::rsa_spki(&raw)),
    }
}

/// The curve's OID (as a DER TLV) and its coordinate size.
fn curve_of(curve: EccCurve) -> Option<(&'static [u8], usize)> {
    match curve {
        EccCurve::NistP256 => Some((der::OID_P256, 32)),
        EccCurve::NistP384 => Some((der::OID_P384, 48)),
        _ => None,
    }
}

fn left_pad(v: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}
