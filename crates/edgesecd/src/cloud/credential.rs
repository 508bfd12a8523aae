//! The device's cloud credential, set up in keyd from the config: the key that signs SAS
//! tokens (a manual device key, a DPS enrollment key, a group-derived key, a TPM
//! authentication key), or an X.509 identity certificate whose key keyd holds.

use std::path::Path;
use std::sync::Arc;

use edgesec_identity::dps::Attestation;
use edgesec_identity::hub::HubAuth;
use edgesec_identity::sas::{HmacKey, KeydHmacKey};
use edgesec_identity::tls::{ClientIdentity, read_pem_certs};
use edgesec_keyd::client::KeydClient;
use edgesec_pki::config::KeySource;
use http::StatusCode;
use zeroize::Zeroizing;

use crate::config::{Config, DeviceAuth, DpsAttestation};
use crate::identity::{Identities, import_hmac_key};

/// keyd ids of keys that the config gives as files (imported at boot).
pub const DPS_KEY_ID: &str = "edgesec/dps-key";
pub const DPS_GROUP_KEY_ID: &str = "edgesec/dps-group-key";
pub const IDENTITY_KEY_ID: &str = "edgesec/device-identity";
/// The TPM authentication key DPS hands over, imported into the TPM by keyd.
pub const TPM_AUTH_KEY_ID: &str = "edgesec/tpm-auth-key";

#[derive(Clone)]
pub enum Credential {
    /// SAS tokens signed with this key, for DPS and the hub alike.
    Sas(Arc<dyn HmacKey>),
    /// The TLS client certificate, for DPS and the hub alike.
    X509(ClientIdentity),
    /// DPS TPM attestation; the hub takes the authentication key DPS gives.
    Tpm,
}

impl Credential {
    /// `sas`, `x509` or `tpm`, for the cache and the status.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Sas(_) => "sas",
            Credential::X509(_) => "x509",
            Credential::Tpm => "tpm",
        }
    }

    pub fn client_identity(&self) -> Option<ClientIdentity> {
        match self {
            Credential::X509(id) => Some(id.clone()),
            _ => None,
        }
    }

    pub fn dps_attestation(&self, keyd: &KeydClient) -> Attestation {
        match self {
            Credential::Sas(k) => Attestation::SymmetricKey(k.clone()),
            Credential::X509(_) => Attestation::X509,
            Credential::Tpm => Attestation::Tpm {
                keyd: keyd.clone(),
                auth_key_id: TPM_AUTH_KEY_ID.into(),
            },
        }
    }

    /// How the hub is called. For TPM: with the authentication key DPS gave (`tpm_handle`
    /// from the registration just made, else the one kept in keyd from an earlier one).
    pub async fn hub_auth(
        &self,
        keyd: &KeydClient,
        tpm_handle: Option<&str>,
    ) -> Result<HubAuth, String> {
        Ok(match self {
            Credential::Sas(k) => HubAuth::Sas(k.clone()),
            Credential::X509(_) => HubAuth::X509,
            Credential::Tpm => {
                let handle = match tpm_handle {
                    Some(h) => h.to_owned(),
                    None => keyd
                        .load_key(TPM_AUTH_KEY_ID)
                        .await
                        .map_err(|e| {
                            format!("the TPM authentication key from DPS is not in keyd ({e}); provision again")
                        })?
                        .key_handle,
                };
                HubAuth::Sas(Arc::new(KeydHmacKey::new(keyd.clone(), handle)))
            }
        })
    }
}

/// Sets up the credential the config names. `registration_id` is the DPS registration id
/// (for a group enrollment's key derivation).
pub async fn resolve(
    config: &Config,
    keyd: &KeydClient,
    identities: &Identities,
    registration_id: Option<&str>,
) -> Result<Credential, String> {
    let sas = |handle: String| -> Credential {
        Credential::Sas(Arc::new(KeydHmacKey::new(keyd.clone(), handle)))
    };
    match &config.provisioning.auth {
        // the device key that Identities set up (a connection string's or device_id_pk)
        DeviceAuth::SharedKey | DeviceAuth::SasKey(_) => Ok(sas(identities.device_key().into())),
        DeviceAuth::X509 {
            identity_cert,
            identity_pk,
        }
        | DeviceAuth::Dps {
            attestation:
                DpsAttestation::X509 {
                    identity_cert,
                    identity_pk,
                },
            ..
        } => x509(config, keyd, identity_cert, identity_pk).await,
        DeviceAuth::Dps {
            attestation: DpsAttestation::SymmetricKey(k),
            ..
        } => Ok(sas(symmetric_key(keyd, k, DPS_KEY_ID).await?)),
        DeviceAuth::Dps {
            attestation: DpsAttestation::GroupKey(k),
            ..
        } => {
            let group = symmetric_key(keyd, k, DPS_GROUP_KEY_ID).await?;
            let reg = registration_id.ok_or("a group enrollment needs a registration_id")?;
            // the device key = HMAC-SHA256(group key, registration id), computed in keyd
            let derived = keyd.derive(&group, reg.as_bytes()).await.map_err(|e| {
                format!("cannot derive the device key from the enrollment group key in keyd: {e}")
            })?;
            Ok(sas(derived.key_handle))
        }
        DeviceAuth::Dps {
            attestation: DpsAttestation::Tpm,
            ..
        } => Ok(Credential::Tpm),
    }
}

/// The handle of a symmetric key given as a keyd id, or as a base64 file imported as `id`.
async fn symmetric_key(keyd: &KeydClient, k: &KeySource, id: &str) -> Result<String, String> {
    match k {
        KeySource::KeyStore(key_id) => keyd
            .load_key(key_id.as_str())
            .await
            .map(|r| r.key_handle)
            .map_err(|e| format!("the DPS key {key_id} is not usable in keyd ({e}); import it first, e.g. with `edgesec config import`")),
        KeySource::File(path) => {
            let b64 = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the DPS key {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            );
            import_hmac_key(keyd, id, &b64)
                .await
                .map(|r| r.key_handle)
                .map_err(|e| format!("cannot put the DPS key {} into keyd: {e}", path.display()))
        }
    }
}

/// The identity certificate and its key in keyd (a key file is imported, replacing what keyd
/// held under [`IDENTITY_KEY_ID`], since the file is what the operator configured).
async fn x509(
    config: &Config,
    keyd: &KeydClient,
    cert: &Path,
    pk: &KeySource,
) -> Result<Credential, String> {
    read_pem_certs(cert).map_err(|e| format!("the identity certificate: {e}"))?;
    let handle = match pk {
        KeySource::KeyStore(id) => {
            keyd.load_key_pair(id.as_str())
                .await
                .map_err(|e| format!("the identity key {id} is not usable in keyd: {e}"))?
                .key_handle
        }
        KeySource::File(path) => {
            if let Ok(old) = keyd.load_key_pair(IDENTITY_KEY_ID).await {
                keyd.delete(&old.key_handle)
                    .await
                    .map_err(|e| format!("cannot replace {IDENTITY_KEY_ID} in keyd: {e}"))?;
            }
            let req = edgesec_keyd::api::ImportRequest {
                key_id: IDENTITY_KEY_ID.into(),
                uri: Some(format!("file://{}", path.display())),
                ..Default::default()
            };
            match keyd.import(&req).await {
                Ok(r) => r.key_handle,
                Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                    return Err(format!(
                        "the identity key {} does not exist",
                        path.display()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot import the identity key {} into keyd: {e}",
                        path.display()
                    ));
                }
            }
        }
    };
    check_key_matches(keyd, cert, &handle).await?;
    let identity = ClientIdentity::load(cert, &config.keyd.socket, &handle)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Credential::X509(identity))
}

/// Refuses a key that is not the certificate's: the TLS handshake would only fail later, less
/// clearly.
async fn check_key_matches(keyd: &KeydClient, cert: &Path, handle: &str) -> Result<(), String> {
    let certs = read_pem_certs(cert).map_err(|e| e.to_string())?;
    let leaf = edgesec_pki::certinfo::CertInfo::parse(&certs[0])
        .map_err(|e| format!("the identity certificate {}: {e}", cert.display()))?;
    let public = keyd
        .public_key(handle)
        .await
        .map_err(|e| format!("the identity key's public key from keyd: {e}"))?;
    if public.spki != leaf.spki {
        return Err(format!(
            "the identity key is not the key of the certificate {}",
            cert.display()
        ));
    }
    Ok(())
}

/// The CN of the identity certificate: DPS's registration id for X.509 when none is set.
pub fn common_name(cert: &Path) -> Result<String, String> {
    let certs = read_pem_certs(cert).map_err(|e| e.to_string())?;
    let info = edgesec_pki::certinfo::CertInfo::parse(&certs[0])?;
    info.subject
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("CN="))
        .next()
        .map(str::to_owned)
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| {
            format!(
                "{} has no CN to take the registration id from; set provisioning.attestation.registration_id",
                cert.display()
            )
        })
}
