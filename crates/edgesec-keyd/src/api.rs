//! The key service's wire types, shared by the server and [`crate::client`]. Binary values are
//! standard padded base64. The protocol is described in `docs/keyd-protocol.md`.

use edgesec_keys::{KeyPairAlgorithm, SignAlgorithm, SymmetricUsage};
use serde::{Deserialize, Serialize};

/// The api-version every request must carry.
pub const API_VERSION: &str = "2026-12-01";
/// Every api-version this build serves.
pub const API_VERSIONS: &[&str] = &[API_VERSION];

/// Serde helpers for base64 fields.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(s)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&s).map_err(|_| D::Error::custom("not valid base64"))
    }

    /// The same for `Option<Vec<u8>>` fields.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => s.serialize_str(&super::encode(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            s.map(|s| super::decode(&s).map_err(|_| D::Error::custom("not valid base64")))
                .transpose()
        }
    }
}

/// `POST /keypair`: create a key pair unless it exists.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyPairRequest {
    pub key_id: String,
    #[serde(default)]
    pub algorithm: Option<KeyPairAlgorithm>,
}

/// `POST /key`: create a symmetric key unless it exists.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub key_id: String,
    pub usage: SymmetricUsage,
}

/// `POST /import`: store existing key material under a new id. Exactly one source is given.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    pub key_id: String,
    /// `file:///path` of a PEM private key owned by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// A PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// PKCS#8 DER (key pairs) or raw bytes (symmetric keys, with `usage`).
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub key_bytes: Option<Vec<u8>>,
    /// Set for symmetric keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<SymmetricUsage>,
}

/// A key's type on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    KeyPair,
    Symmetric,
    Derived,
}

/// Answer to create, load, import and derive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyHandleResponse {
    pub key_handle: String,
    pub key_id: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// `ec-p256`, ..., `hmac-sha256` or `aes-256-gcm`.
    pub algorithm: String,
}

/// A request that names only a handle: `/publickey`, `/derive/export`, `/delete`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandleRequest {
    pub key_handle: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyResponse {
    pub algorithm: KeyPairAlgorithm,
    /// DER SubjectPublicKeyInfo.
    #[serde(with = "b64")]
    pub spki: Vec<u8>,
    pub pem: String,
}

/// `POST /sign`: exactly one of `message` and `digest`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    pub key_handle: String,
    pub algorithm: SignAlgorithm,
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub message: Option<Vec<u8>>,
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub digest: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignResponse {
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// `POST /verify`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    pub key_handle: String,
    pub algorithm: SignAlgorithm,
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub message: Option<Vec<u8>>,
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub digest: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyResponse {
    pub valid: bool,
}

/// `POST /derive`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeriveRequest {
    pub base_key_handle: String,
    #[serde(with = "b64")]
    pub label: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExportResponse {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
}

/// `POST /encrypt`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptRequest {
    pub key_handle: String,
    #[serde(with = "b64")]
    pub plaintext: Vec<u8>,
    #[serde(default, with = "b64")]
    pub aad: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EncryptResponse {
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

/// `POST /decrypt`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecryptRequest {
    pub key_handle: String,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    #[serde(default, with = "b64")]
    pub aad: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DecryptResponse {
    #[serde(with = "b64")]
    pub plaintext: Vec<u8>,
}

/// One entry of `GET /keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyEntry {
    pub key_id: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub algorithm: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ListResponse {
    pub keys: Vec<KeyEntry>,
}

/// `"sealed"` in `GET /capabilities`, present when the soft store's master key is sealed to the
/// TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedState {
    /// False: the TPM's owner hierarchy has no authorization value, so anyone with TPM access
    /// can open the sealed store through the owner branch. `None`: the TPM could not say.
    pub owner_auth_set: Option<bool>,
}

/// `GET /tpm/keys`: the TPM's public keys for DPS TPM attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmPublicKeys {
    /// The endorsement key, marshalled TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub endorsement_key: Vec<u8>,
    /// The RSA storage key the service duplicates the authentication key to, marshalled
    /// TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub storage_root_key: Vec<u8>,
}

/// The largest `authenticationKey` blob `POST /tpm/import` takes (a real one is about 1 KiB).
pub const MAX_TPM_AUTH_KEY_BLOB: usize = 4096;

/// `POST /tpm/import`: import the key a DPS TPM challenge carries under a new id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportTpmAuthKeyRequest {
    pub key_id: String,
    /// The service's `authenticationKey`, as sent (decoded from base64).
    #[serde(with = "b64")]
    pub authentication_key: Vec<u8>,
}
