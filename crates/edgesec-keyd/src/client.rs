//! The async client of the key service, used by the daemon and the tests. It shares
//! [`crate::api`] with the server, keeps connections alive, and is safe to use from many tasks.

use std::path::PathBuf;

use edgesec_http::{ClientError, UdsClient};
use edgesec_keys::{Capabilities, KeyPairAlgorithm, SignAlgorithm, SignInput, SymmetricUsage};
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::api::*;

/// Characters a key id keeps in a URL path: `/` separates the id's own segments.
const ID_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

#[derive(Clone)]
pub struct KeydClient {
    http: std::sync::Arc<UdsClient>,
}

fn path(route: &str) -> String {
    format!("{route}?api-version={API_VERSION}")
}

impl KeydClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        KeydClient {
            http: std::sync::Arc::new(UdsClient::new(socket)),
        }
    }

    async fn post<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        route: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.http.post_json(&path(route), body).await
    }

    /// Creates the key pair `id` unless it exists (then the existing one is returned as it is).
    pub async fn create_key_pair(
        &self,
        id: &str,
        algorithm: Option<KeyPairAlgorithm>,
    ) -> Result<KeyHandleResponse, ClientError> {
        self.post(
            "/keypair",
            &CreateKeyPairRequest {
                key_id: id.into(),
                algorithm,
            },
        )
        .await
    }

    /// A handle for an existing key pair.
    pub async fn load_key_pair(&self, id: &str) -> Result<KeyHandleResponse, ClientError> {
        self.http
            .get_json(&path(&format!(
                "/keypair/{}",
                utf8_percent_encode(id, ID_PATH)
            )))
            .await
    }

    /// Creates the symmetric key `id` unless it exists.
    pub async fn create_key(
        &self,
        id: &str,
        usage: SymmetricUsage,
    ) -> Result<KeyHandleResponse, ClientError> {
        self.post(
            "/key",
            &CreateKeyRequest {
                key_id: id.into(),
                usage,
            },
        )
        .await
    }

    /// A handle for an existing symmetric key.
    pub async fn load_key(&self, id: &str) -> Result<KeyHandleResponse, ClientError> {
        self.http
            .get_json(&path(&format!("/key/{}", utf8_percent_encode(id, ID_PATH))))
            .await
    }

    pub async fn import(&self, request: &ImportRequest) -> Result<KeyHandleResponse, ClientError> {
        self.post("/import", request).await
    }

    pub async fn public_key(&self, handle: &str) -> Result<PublicKeyResponse, ClientError> {
        self.post(
            "/publickey",
            &HandleRequest {
                key_handle: handle.into(),
            },
        )
        .await
    }

    pub async fn sign(
        &self,
        handle: &str,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>, ClientError> {
        let (message, digest) = match input {
            SignInput::Message(m) => (Some(m.to_vec()), None),
            SignInput::Digest(d) => (None, Some(d.to_vec())),
        };
        let r: SignResponse = self
            .post(
                "/sign",
                &SignRequest {
                    key_handle: handle.into(),
                    algorithm,
                    message,
                    digest,
                },
            )
            .await?;
        Ok(r.signature)
    }

    pub async fn verify(
        &self,
        handle: &str,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool, ClientError> {
        let (message, digest) = match input {
            SignInput::Message(m) => (Some(m.to_vec()), None),
            SignInput::Digest(d) => (None, Some(d.to_vec())),
        };
        let req = VerifyRequest {
            key_handle: handle.into(),
            algorithm,
            message,
            digest,
            signature: signature.to_vec(),
        };
        let r: VerifyResponse = self.post("/verify", &req).await?;
        Ok(r.valid)
    }

    /// A handle for HMAC-SHA256(base, label).
    pub async fn derive(
        &self,
        base_handle: &str,
        label: &[u8],
    ) -> Result<KeyHandleResponse, ClientError> {
        self.post(
            "/derive",
            &DeriveRequest {
                base_key_handle: base_handle.into(),
                label: label.to_vec(),
            },
        )
        .await
    }

    /// The bytes of a derived key (only where keyd's config allows this caller).
    pub async fn export_derived(&self, handle: &str) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let r: ExportResponse = self
            .post(
                "/derive/export",
                &HandleRequest {
                    key_handle: handle.into(),
                },
            )
            .await?;
        Ok(Zeroizing::new(r.key))
    }

    pub async fn encrypt(
        &self,
        handle: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let req = EncryptRequest {
            key_handle: handle.into(),
            plaintext: plaintext.to_vec(),
            aad: aad.to_vec(),
        };
        let r: EncryptResponse = self.post("/encrypt", &req).await?;
        Ok(r.ciphertext)
    }

    pub async fn decrypt(
        &self,
        handle: &str,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let req = DecryptRequest {
            key_handle: handle.into(),
            ciphertext: ciphertext.to_vec(),
            aad: aad.to_vec(),
        };
        let r: DecryptResponse = self.post("/decrypt", &req).await?;
        Ok(Zeroizing::new(r.plaintext))
    }

    pub async fn delete(&self, handle: &str) -> Result<(), ClientError> {
        self.http
            .request_json::<(), _>(
                Method::POST,
                &path("/delete"),
                Some(&HandleRequest {
                    key_handle: handle.into(),
                }),
            )
            .await
    }

    /// The TPM's endorsement key and storage key (marshalled TPM2B_PUBLIC each), for DPS TPM
    /// attestation. Backends without a TPM answer 501 (not supported).
    pub async fn tpm_public_keys(&self) -> Result<TpmPublicKeys, ClientError> {
        self.http.get_json(&path("/tpm/keys")).await
    }

    /// Imports the HMAC key in a DPS TPM challenge (`authenticationKey`, decoded) as the new key
    /// `id`; HMAC-SHA256 `sign` with the returned handle then runs inside the TPM.
    pub async fn import_tpm_auth_key(
        &self,
        id: &str,
        blob: &[u8],
    ) -> Result<KeyHandleResponse, ClientError> {
        self.post(
            "/tpm/import",
            &ImportTpmAuthKeyRequest {
                key_id: id.into(),
                authentication_key: blob.to_vec(),
            },
        )
        .await
    }

    /// The keys this caller may use.
    pub async fn list(&self) -> Result<Vec<KeyEntry>, ClientError> {
        let r: ListResponse = self.http.get_json(&path("/keys")).await?;
        Ok(r.keys)
    }

    pub async fn capabilities(&self) -> Result<Capabilities, ClientError> {
        self.http.get_json(&path("/capabilities")).await
    }

    /// The sealed master key's state (from `/capabilities`); `None` when it is not sealed.
    pub async fn sealed_state(&self) -> Result<Option<SealedState>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Caps {
            #[serde(default)]
            sealed: Option<SealedState>,
        }
        let c: Caps = self.http.get_json(&path("/capabilities")).await?;
        Ok(c.sealed)
    }

    /// Reports a measurement (`kind`, `name`, `sha256:<hex>`) into keyd's event log. `Ok(false)`
    /// when an identical event was there already.
    pub async fn report_measurement(
        &self,
        kind: &str,
        name: &str,
        measurement: &str,
    ) -> Result<bool, ClientError> {
        #[derive(serde::Deserialize)]
        struct Recorded {
            recorded: bool,
        }
        let r: Recorded = self
            .post(
                "/measurements",
                &edgesec_integrity::evidence::MeasurementReport {
                    kind: kind.into(),
                    name: name.into(),
                    measurement: measurement.into(),
                },
            )
            .await?;
        Ok(r.recorded)
    }

    /// keyd's event log and the current value of its measurement PCR.
    pub async fn measurements(
        &self,
    ) -> Result<edgesec_integrity::evidence::MeasurementLog, ClientError> {
        self.http.get_json(&path("/measurements")).await
    }

    /// A TPM quote over keyd's measurement PCR with `nonce` (1 to 64 bytes), and the log.
    pub async fn quote(&self, nonce: &[u8]) -> Result<edgesec_integrity::Evidence, ClientError> {
        self.post(
            "/attestation/quote",
            &serde_json::json!({ "nonce": edgesec_integrity::hex(nonce) }),
        )
        .await
    }
}
