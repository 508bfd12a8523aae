//! The credential a device proves, at DPS (per operation) and at the hub.

use http::header::AUTHORIZATION;

use crate::clock::now_unix;
use crate::router::Call;
use crate::{sas, x509};

/// What a device must prove it holds.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// SAS tokens signed with this HMAC key (a symmetric key, a group's
    /// derived key, or a TPM's imported key).
    HmacKey(Vec<u8>),
    /// A TLS client chain ending at this CA with the expected CN.
    X509 { ca_pem: String },
}

impl Credential {
    /// "sas" or "x509", for records and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::HmacKey(_) => "sas",
            Credential::X509 { .. } => "x509",
        }
    }

    /// Checks the request against this credential. `audience` and
    /// `key_name` are what a SAS token must name; `common_name` is what an
    /// X.509 leaf must carry.
    pub fn check(
        &self,
        call: &Call,
        audience: &str,
        key_name: Option<&str>,
        common_name: &str,
    ) -> Result<(), String> {
        match self {
            Credential::HmacKey(key) => {
                let header = call
                    .headers
                    .get(AUTHORIZATION)
                    .map(|v| v.to_str().map_err(|_| "Authorization header is not ASCII"))
                    .transpose()?;
                let expected = sas::Expected {
                    audience,
                    key_name,
                    now: now_unix(),
                };
                sas::verify(header, &expected, key)
            }
            Credential::X509 { ca_pem } => {
                x509::verify_client_chain(&call.peer_certs, ca_pem, common_name)
            }
        }
    }
}
