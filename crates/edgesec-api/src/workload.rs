//! Workload API types (IoT Edge `workloadVersion_*` shapes, as the real SDKs use them).

use serde::{Deserialize, Serialize};

/// `POST /modules/{name}/genid/{genid}/sign`. Only `data` is used; `keyId` and `algo` are
/// accepted and ignored, as the IoT Edge daemon does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    #[serde(rename = "keyId", default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algo: Option<String>,
    /// Standard base64 of the bytes to sign.
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// Standard padded base64 of HMAC-SHA256(module key, data).
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptRequest {
    pub plaintext: String,
    #[serde(rename = "initializationVector")]
    pub initialization_vector: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptResponse {
    pub ciphertext: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptRequest {
    pub ciphertext: String,
    #[serde(rename = "initializationVector")]
    pub initialization_vector: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptResponse {
    pub plaintext: String,
}

/// `POST /modules/{name}/genid/{genid}/certificate/server`. `expiration` is accepted and, as in
/// IoT Edge, the lifetime is decided by the daemon's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCertificateRequest {
    #[serde(rename = "commonName")]
    pub common_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateKey {
    /// Always `key`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// The PKCS#8 PEM private key.
    pub bytes: String,
}

/// The answer to both certificate routes (status 201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateResponse {
    #[serde(rename = "privateKey")]
    pub private_key: PrivateKey,
    /// PEM: the leaf, then every intermediate up to (not including) the root.
    pub certificate: String,
    /// RFC 3339 not-after of the leaf.
    pub expiration: String,
}

/// `GET /trust-bundle` and `GET /manifest-trust-bundle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundleResponse {
    pub certificate: String,
}
