//! The public data types: what a test enrolls, and what the sim saw.

/// One DPS enrollment, keyed by its registration id.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub registration_id: String,
    pub attestation: EnrollmentAttestation,
    /// The device id DPS assigns; default: the registration id.
    pub device_id: Option<String>,
    /// The hub DPS assigns; default: [`crate::CloudSim::hub_hostname`].
    pub assigned_hub: Option<String>,
    /// Polls answered "assigning" before the operation ends.
    pub assigning_polls: u32,
    /// `(errorCode, message)`: the operation ends "failed" with these.
    pub fail_with: Option<(u32, String)>,
    /// Returned as `registrationState.payload` when assigned.
    pub return_payload: Option<serde_json::Value>,
}

impl Enrollment {
    /// An enrollment with defaults for everything but the id and attestation.
    pub fn new(registration_id: &str, attestation: EnrollmentAttestation) -> Enrollment {
        Enrollment {
            registration_id: registration_id.to_owned(),
            attestation,
            device_id: None,
            assigned_hub: None,
            assigning_polls: 0,
            fail_with: None,
            return_payload: None,
        }
    }
}

/// How an enrolled device proves itself to DPS.
#[derive(Debug, Clone)]
pub enum EnrollmentAttestation {
    /// Individual enrollment: SAS tokens signed with this key.
    SymmetricKey { primary_key_b64: String },
    /// Group enrollment: device key = HMAC-SHA256(group key, registration id).
    GroupSymmetricKey { group_key_b64: String },
    /// The TLS client chain must end at this CA (PEM, one or more
    /// certificates) and the leaf CN must equal the registration id.
    X509 { ca_pem: String },
    /// TPM: `None` accepts the first endorsement key seen for this id.
    Tpm { endorsement_key_b64: Option<String> },
}

/// How a device proves itself to the hub when added by hand.
#[derive(Debug, Clone)]
pub enum HubDeviceAuth {
    /// SAS tokens signed with this key.
    Sas { key_b64: String },
    /// TLS client chain ending at this CA, leaf CN = device id.
    X509 { ca_pem: String },
    /// SAS tokens signed with this raw HMAC key (the TPM's imported key).
    TpmAuthKey { key: Vec<u8> },
}

/// One register PUT the sim saw.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRecord {
    /// The `payload` of the request body, if it had one.
    pub payload: Option<serde_json::Value>,
    /// How the request was authenticated or refused: "sas", "x509", "tpm",
    /// "tpm-challenge", or "none" when it was refused before that.
    pub method: String,
    /// True when the sim answered 202 and started an operation.
    pub accepted: bool,
    /// Why the request was not accepted (or the TPM challenge was sent).
    pub error: Option<String>,
}

/// A module identity as the sim's hub stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct HubModule {
    pub module_id: String,
    pub generation_id: String,
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
}
