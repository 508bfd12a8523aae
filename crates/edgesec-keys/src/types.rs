use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{KeyError, KeyId};

/// Algorithms of key pairs, named as on the wire (`ec-p256`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum KeyPairAlgorithm {
    #[default]
    #[serde(rename = "ec-p256")]
    EcP256,
    #[serde(rename = "ec-p384")]
    EcP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyPairAlgorithm {
    pub const ALL: [KeyPairAlgorithm; 5] = [
        KeyPairAlgorithm::EcP256,
        KeyPairAlgorithm::EcP384,
        KeyPairAlgorithm::Rsa2048,
        KeyPairAlgorithm::Rsa4096,
        KeyPairAlgorithm::Ed25519,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyPairAlgorithm::EcP256 => "ec-p256",
            KeyPairAlgorithm::EcP384 => "ec-p384",
            KeyPairAlgorithm::Rsa2048 => "rsa-2048",
            KeyPairAlgorithm::Rsa4096 => "rsa-4096",
            KeyPairAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The signature algorithms this kind of key can make.
    pub fn sign_algorithms(self) -> &'static [SignAlgorithm] {
        match self {
            KeyPairAlgorithm::EcP256 => &[SignAlgorithm::EcdsaSha256],
            KeyPairAlgorithm::EcP384 => &[SignAlgorithm::EcdsaSha384],
            KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                &[SignAlgorithm::RsaPkcs1Sha256, SignAlgorithm::RsaPssSha256]
            }
            KeyPairAlgorithm::Ed25519 => &[SignAlgorithm::Ed25519],
        }
    }
}

impl fmt::Display for KeyPairAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyPairAlgorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        KeyPairAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                KeyError::InvalidInput(format!(
                    "unknown key pair algorithm {s:?}; expected one of ec-p256, ec-p384, rsa-2048, rsa-4096, ed25519"
                ))
            })
    }
}

/// What a symmetric key is for. A key serves one usage only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymmetricUsage {
    /// HMAC-SHA256 sign and verify, and derivation of child keys.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// AES-256-GCM encryption and decryption.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl SymmetricUsage {
    pub fn as_str(self) -> &'static str {
        match self {
            SymmetricUsage::HmacSha256 => "hmac-sha256",
            SymmetricUsage::Aes256Gcm => "aes-256-gcm",
        }
    }
}

/// The kind of a stored key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "algorithm")]
pub enum KeyKind {
    KeyPair(KeyPairAlgorithm),
    Symmetric(SymmetricUsage),
}

/// A stored key's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: KeyId,
    pub kind: KeyKind,
}

/// A key pair's public half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyPairAlgorithm,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
}

impl PublicKey {
    /// The SPKI as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der)
    }
}

/// Wraps DER in a PEM block with 64-character lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Signature algorithms, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignAlgorithm {
    #[serde(rename = "ecdsa-sha256")]
    EcdsaSha256,
    #[serde(rename = "ecdsa-sha384")]
    EcdsaSha384,
    #[serde(rename = "rsa-pkcs1-sha256")]
    RsaPkcs1Sha256,
    #[serde(rename = "rsa-pss-sha256")]
    RsaPssSha256,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl SignAlgorithm {
    pub const ALL: [SignAlgorithm; 6] = [
        SignAlgorithm::EcdsaSha256,
        SignAlgorithm::EcdsaSha384,
        SignAlgorithm::RsaPkcs1Sha256,
        SignAlgorithm::RsaPssSha256,
        SignAlgorithm::Ed25519,
        SignAlgorithm::HmacSha256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignAlgorithm::EcdsaSha256 => "ecdsa-sha256",
            SignAlgorithm::EcdsaSha384 => "ecdsa-sha384",
            SignAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignAlgorithm::RsaPssSha256 => "rsa-pss-sha256",
            SignAlgorithm::Ed25519 => "ed25519",
            SignAlgorithm::HmacSha256 => "hmac-sha256",
        }
    }

    /// The length a precomputed digest must have, or `None` where the algorithm signs only
    /// whole messages.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            SignAlgorithm::EcdsaSha256
            | SignAlgorithm::RsaPkcs1Sha256
            | SignAlgorithm::RsaPssSha256 => Some(32),
            SignAlgorithm::EcdsaSha384 => Some(48),
            SignAlgorithm::Ed25519 | SignAlgorithm::HmacSha256 => None,
        }
    }
}

impl fmt::Display for SignAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is signed: a whole message (hashed by the store) or a digest computed by the caller.
#[derive(Clone, Copy, Debug)]
pub enum SignInput<'a> {
    Message(&'a [u8]),
    Digest(&'a [u8]),
}

impl SignInput<'_> {
    /// Checks a digest's length against the algorithm; messages always pass.
    pub fn check(&self, algorithm: SignAlgorithm) -> Result<(), KeyError> {
        let SignInput::Digest(d) = self else {
            return Ok(());
        };
        match algorithm.digest_len() {
            None => Err(KeyError::InvalidInput(format!(
                "{algorithm} signs whole messages, not digests"
            ))),
            Some(n) if n != d.len() => Err(KeyError::InvalidInput(format!(
                "{algorithm} needs a {n}-byte digest, got {} bytes",
                d.len()
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// A key an operation works on: a stored key, or a child derived from a stored HMAC key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    Stored(KeyId),
    /// HMAC-SHA256(base, label), usable for HMAC and AEAD.
    Derived {
        base: KeyId,
        label: Vec<u8>,
    },
}

impl KeyRef {
    /// The stored key this reference rests on.
    pub fn base_id(&self) -> &KeyId {
        match self {
            KeyRef::Stored(id) | KeyRef::Derived { base: id, .. } => id,
        }
    }
}

/// What a backend can do, for `capabilities()` and the key service's `/capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub backend: String,
    pub key_pair_algorithms: Vec<KeyPairAlgorithm>,
    pub sign_algorithms: Vec<SignAlgorithm>,
    pub symmetric_usages: Vec<SymmetricUsage>,
    pub digest_signing: bool,
    pub derive: bool,
    pub export_derived: bool,
    pub aead: bool,
    pub import: bool,
    pub delete: bool,
    /// True when keys never leave protected hardware.
    pub hardware_backed: bool,
    /// Key id patterns this backend serves, when it is one part of a routed store (`*` for the
    /// default backend, which serves every id no rule names). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A routed store's parts, each with its own capabilities and `keys`. The fields above are
    /// then the union (lists, operations) or the intersection (`digestSigning`,
    /// `hardwareBacked`) of the parts: an operation listed above may still be refused for a key
    /// that lives on a part without it. Empty for a single backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Capabilities>,
}

impl Capabilities {
    /// A backend that can do nothing (yet): the starting point of a capability list.
    pub fn none(backend: impl Into<String>) -> Self {
        Capabilities {
            backend: backend.into(),
            key_pair_algorithms: Vec::new(),
            sign_algorithms: Vec::new(),
            symmetric_usages: Vec::new(),
            digest_signing: false,
            derive: false,
            export_derived: false,
            aead: false,
            import: false,
            delete: false,
            hardware_backed: false,
            keys: Vec::new(),
            backends: Vec::new(),
        }
    }
}

/// The public areas a provisioning service needs for TPM attestation, each a marshalled
/// TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmPublicKeys {
    /// The endorsement key (RSA-2048, TCG default EK template).
    pub endorsement_key: Vec<u8>,
    /// The RSA-2048 storage key the service duplicates the authentication key to.
    pub storage_root_key: Vec<u8>,
}
