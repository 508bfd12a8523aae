//! Key material in memory: parsed once when a key is first used and kept in the store's cache,
//! so no request re-reads or re-parses a file. The aws-lc objects wipe their secrets when freed;
//! intermediate byte buffers are `Zeroizing`.

use aws_lc_rs::aead::{self, RandomizedNonceKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, RsaKeyPair,
};
use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::{KeyError, KeyKind, KeyPairAlgorithm, SymmetricUsage};

// Keys live boxed-in-Arc in the cache, so the size spread between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Material {
    Ecdsa(KeyPairAlgorithm, EcdsaKeyPair),
    Rsa(KeyPairAlgorithm, RsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Hmac(hmac::Key),
    Aes(RandomizedNonceKey),
}

impl Material {
    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Material::Ecdsa(a, _) | Material::Rsa(a, _) => KeyKind::KeyPair(*a),
            Material::Ed25519(_) => KeyKind::KeyPair(KeyPairAlgorithm::Ed25519),
            Material::Hmac(_) => KeyKind::Symmetric(SymmetricUsage::HmacSha256),
            Material::Aes(_) => KeyKind::Symmetric(SymmetricUsage::Aes256Gcm),
        }
    }

    /// Rebuilds a key from stored bytes: PKCS#8 DER for key pairs, raw bytes for symmetric keys.
    pub(crate) fn from_stored(kind: KeyKind, bytes: &[u8]) -> Option<Self> {
        Some(match kind {
            KeyKind::KeyPair(a @ KeyPairAlgorithm::EcP256) => Material::Ecdsa(
                a,
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, bytes).ok()?,
            ),
            KeyKind::KeyPair(a @ KeyPairAlgorithm::EcP384) => Material::Ecdsa(
                a,
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, bytes).ok()?,
            ),
            KeyKind::KeyPair(a @ (KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096)) => {
                let key = RsaKeyPair::from_pkcs8(bytes).ok()?;
                (rsa_algorithm(&key)? == a).then_some(Material::Rsa(a, key))?
            }
            KeyKind::KeyPair(KeyPairAlgorithm::Ed25519) => {
                Material::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes).ok()?)
            }
            KeyKind::Symmetric(usage) => symmetric(usage, bytes).ok()?,
        })
    }

    /// A new key pair and the PKCS#8 DER to store.
    pub(crate) fn generate_key_pair(
        alg: KeyPairAlgorithm,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let failed = |_| KeyError::Backend(format!("generating an {alg} key failed"));
        let pkcs8 = match alg {
            KeyPairAlgorithm::EcP256 | KeyPairAlgorithm::EcP384 => {
                let signing = if alg == KeyPairAlgorithm::EcP256 {
                    &ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let key = EcdsaKeyPair::generate(signing).map_err(failed)?;
                Zeroizing::new(key.to_pkcs8v1().map_err(failed)?.as_ref().to_vec())
            }
            KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                let size = if alg == KeyPairAlgorithm::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa4096
                };
                let key = RsaKeyPair::generate(size).map_err(failed)?;
                let der: Pkcs8V1Der<'_> = key.as_der().map_err(failed)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            KeyPairAlgorithm::Ed25519 => {
                let key = Ed25519KeyPair::generate().map_err(failed)?;
                Zeroizing::new(key.to_pkcs8v1().map_err(failed)?.as_ref().to_vec())
            }
        };
        let material = Material::from_stored(KeyKind::KeyPair(alg), &pkcs8)
            .ok_or_else(|| KeyError::Backend(format!("a new {alg} key did not load")))?;
        Ok((material, pkcs8))
    }

    /// A new random symmetric key and the bytes to store.
    pub(crate) fn generate_symmetric(
        usage: SymmetricUsage,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Backend("the system random source failed".into()))?;
        Ok((symmetric(usage, &bytes)?, bytes))
    }

    /// The public half as DER SubjectPublicKeyInfo; `None` for symmetric keys.
    pub(crate) fn spki(&self) -> Option<Vec<u8>> {
        let der: Result<PublicKeyX509Der<'_>, _> = match self {
            Material::Ecdsa(_, k) => k.public_key().as_der(),
            Material::Rsa(_, k) => k.public_key().as_der(),
            Material::Ed25519(k) => k.public_key().as_der(),
            Material::Hmac(_) | Material::Aes(_) => return None,
        };
        der.ok().map(|d| d.as_ref().to_vec())
    }

    /// The public key bytes in the form aws-lc's verifiers take (point, PKCS#1 or raw 32 bytes).
    pub(crate) fn public_key_bytes(&self) -> Option<&[u8]> {
        match self {
            Material::Ecdsa(_, k) => Some(k.public_key().as_ref()),
            Material::Rsa(_, k) => Some(k.public_key().as_ref()),
            Material::Ed25519(k) => Some(k.public_key().as_ref()),
            Material::Hmac(_) | Material::Aes(_) => None,
        }
    }
}

pub(crate) fn symmetric(usage: SymmetricUsage, bytes: &[u8]) -> Result<Material, KeyError> {
    // HMAC keys from elsewhere (IoT Hub SAS keys) come in several lengths; AES-256 is 32 bytes.
    let (min, max) = match usage {
        SymmetricUsage::HmacSha256 => (16, 128),
        SymmetricUsage::Aes256Gcm => (32, 32),
    };
    if bytes.len() < min || bytes.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(KeyError::InvalidInput(format!(
            "a {} key must be {want} bytes, got {}",
            usage.as_str(),
            bytes.len()
        )));
    }
    Ok(match usage {
        SymmetricUsage::HmacSha256 => Material::Hmac(hmac::Key::new(hmac::HMAC_SHA256, bytes)),
        SymmetricUsage::Aes256Gcm => Material::Aes(
            RandomizedNonceKey::new(&aead::AES_256_GCM, bytes)
                .map_err(|_| KeyError::Backend("AES key setup failed".into()))?,
        ),
    })
}

fn rsa_algorithm(key: &RsaKeyPair) -> Option<KeyPairAlgorithm> {
    match key.public_modulus_len() {
        256 => Some(KeyPairAlgorithm::Rsa2048),
        512 => Some(KeyPairAlgorithm::Rsa4096),
        _ => None,
    }
}

/// Parses an imported private key (PEM or PKCS#8 DER) into its algorithm and the PKCS#8 DER
/// the store keeps.
pub(crate) fn parse_private_key(
    input: &[u8],
    is_pem: bool,
) -> Result<(KeyPairAlgorithm, Zeroizing<Vec<u8>>), KeyError> {
    let (label, der) = if is_pem {
        pem_decode(input)?
    } else {
        ("PRIVATE KEY".to_owned(), Zeroizing::new(input.to_vec()))
    };
    let unusable = || {
        KeyError::InvalidInput(format!(
            "the {label} is not an ec-p256, ec-p384, rsa-2048, rsa-4096 or ed25519 private key"
        ))
    };
    let to_vec = |d: &[u8]| Zeroizing::new(d.to_vec());
    match label.as_str() {
        "PRIVATE KEY" | "EC PRIVATE KEY" => {
            for (alg, signing) in [
                (KeyPairAlgorithm::EcP256, &ECDSA_P256_SHA256_ASN1_SIGNING),
                (KeyPairAlgorithm::EcP384, &ECDSA_P384_SHA384_ASN1_SIGNING),
            ] {
                if let Ok(k) = EcdsaKeyPair::from_private_key_der(signing, &der) {
                    let pkcs8 = k.to_pkcs8v1().map_err(|_| unusable())?;
                    return Ok((alg, to_vec(pkcs8.as_ref())));
                }
            }
            if label == "PRIVATE KEY" {
                if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
                    return Ok((rsa_algorithm(&k).ok_or_else(unusable)?, der));
                }
                if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                    let pkcs8 = k.to_pkcs8v1().map_err(|_| unusable())?;
                    return Ok((KeyPairAlgorithm::Ed25519, to_vec(pkcs8.as_ref())));
                }
            }
            Err(unusable())
        }
        "RSA PRIVATE KEY" => {
            let k = RsaKeyPair::from_der(&der).map_err(|_| unusable())?;
            let alg = rsa_algorithm(&k).ok_or_else(unusable)?;
            let pkcs8: Pkcs8V1Der<'_> = k.as_der().map_err(|_| unusable())?;
            Ok((alg, to_vec(pkcs8.as_ref())))
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::InvalidInput(
            "encrypted private keys cannot be imported; decrypt it first".into(),
        )),
        other => Err(KeyError::InvalidInput(format!(
            "expected a PEM private key, found a {other:?} block"
        ))),
    }
}

/// Decodes the first PEM block: its label and DER body.
fn pem_decode(input: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let bad = |why: &str| KeyError::InvalidInput(format!("not a PEM private key: {why}"));
    let text = std::str::from_utf8(input).map_err(|_| bad("not UTF-8 text"))?;
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no BEGIN line"))?;
    let rest = &text[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| bad("unterminated BEGIN line"))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| bad("no matching END line"))?;
    let b64: Zeroizing<String> = Zeroizing::new(body[..end].split_whitespace().collect());
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| bad("the body is not base64"))?;
    Ok((label, Zeroizing::new(der)))
}

/// Verifies with only a public key, as any outside party would.
pub(crate) fn verifier(
    key: KeyPairAlgorithm,
    alg: crate::SignAlgorithm,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use crate::SignAlgorithm as S;
    Some(match (key, alg) {
        (KeyPairAlgorithm::EcP256, S::EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyPairAlgorithm::EcP384, S::EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096, S::RsaPkcs1Sha256) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096, S::RsaPssSha256) => {
            &signature::RSA_PSS_2048_8192_SHA256
        }
        (KeyPairAlgorithm::Ed25519, S::Ed25519) => &signature::ED25519,
        _ => return None,
    })
}
