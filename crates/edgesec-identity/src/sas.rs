//! Shared access signature tokens, as DPS and IoT Hub take them:
//!
//! `SharedAccessSignature sr=<sr>&sig=<urlencoded base64 HMAC>&se=<expiry>[&skn=registration]`
//!
//! `sr` is the audience (`{scope}/registrations/{id}` for DPS, `{hub}/devices/{id}` for a hub)
//! lowercased and percent-encoded; the HMAC-SHA256 is over `"<sr>\n<se>"` and is computed by
//! whatever holds the key ([`HmacKey`]): keyd, or the TPM behind it. Tokens are minted per
//! request and live [`TOKEN_LIFETIME`], so the device clock must be right.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::error::CloudError;

/// How long a minted token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(30);

/// The URL path-segment set, plus `=`: what the audience is encoded with.
const AUDIENCE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'=');

/// Everything but unreserved characters: how the signature goes into the token.
const QUERY_VALUE: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub type HmacFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, CloudError>> + Send + 'a>>;

/// Something that computes HMAC-SHA256 with a key it does not hand out.
pub trait HmacKey: Send + Sync {
    fn hmac<'a>(&'a self, data: &'a [u8]) -> HmacFuture<'a>;
}

/// A key in keyd, by handle.
#[derive(Clone)]
pub struct KeydHmacKey {
    keyd: KeydClient,
    handle: String,
}

impl KeydHmacKey {
    pub fn new(keyd: KeydClient, handle: impl Into<String>) -> Self {
        KeydHmacKey {
            keyd,
            handle: handle.into(),
        }
    }
}

impl HmacKey for KeydHmacKey {
    fn hmac<'a>(&'a self, data: &'a [u8]) -> HmacFuture<'a> {
        Box::pin(async move {
            self.keyd
                .sign(
                    &self.handle,
                    SignAlgorithm::HmacSha256,
                    SignInput::Message(data),
                )
                .await
                .map_err(|e| CloudError::Keys(format!("cannot sign a SAS token: {e}")))
        })
    }
}

/// Whom a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// DPS: `{scope}/registrations/{registration id}`, with `skn=registration`.
    Registration {
        scope: &'a str,
        registration_id: &'a str,
    },
    /// A hub: `{hub}/devices/{device id}`.
    Device { hub: &'a str, device_id: &'a str },
}

impl Audience<'_> {
    /// `sr`: the resource, lowercased and percent-encoded.
    pub fn resource(&self) -> String {
        let plain = match self {
            Audience::Registration {
                scope,
                registration_id,
            } => format!("{scope}/registrations/{registration_id}"),
            Audience::Device { hub, device_id } => format!("{hub}/devices/{device_id}"),
        };
        utf8_percent_encode(&plain.to_lowercase(), AUDIENCE).to_string()
    }

    fn key_name(&self) -> Option<&'static str> {
        match self {
            Audience::Registration { .. } => Some("registration"),
            Audience::Device { .. } => None,
        }
    }
}

/// The text that is signed.
pub fn string_to_sign(resource: &str, expiry: u64) -> String {
    format!("{resource}\n{expiry}")
}

/// A token for `audience` that expires at `expiry` (Unix seconds).
pub async fn token_expiring(
    key: &dyn HmacKey,
    audience: Audience<'_>,
    expiry: u64,
) -> Result<String, CloudError> {
    let sr = audience.resource();
    let mac = key.hmac(string_to_sign(&sr, expiry).as_bytes()).await?;
    let sig = utf8_percent_encode(&STANDARD.encode(mac), QUERY_VALUE).to_string();
    let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}");
    if let Some(skn) = audience.key_name() {
        token.push_str("&skn=");
        token.push_str(skn);
    }
    Ok(token)
}

/// A fresh token, valid for [`TOKEN_LIFETIME`] from now.
pub async fn token(key: &dyn HmacKey, audience: Audience<'_>) -> Result<String, CloudError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CloudError::Setup("the system clock is before 1970".into()))?;
    token_expiring(key, audience, (now + TOKEN_LIFETIME).as_secs()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key held in memory, for the test vectors only.
    struct Plain(Vec<u8>);

    impl HmacKey for Plain {
        fn hmac<'a>(&'a self, data: &'a [u8]) -> HmacFuture<'a> {
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
            let tag = aws_lc_rs::hmac::sign(&k, data).as_ref().to_vec();
            Box::pin(async move { Ok(tag) })
        }
    }

    fn key() -> Plain {
        Plain(
            STANDARD
                .decode("c2FtcGxlLWtleS1ub3QtcmVhbC1zYW1wbGUta2V5LW5vdC1yZWFs")
                .unwrap(),
        )
    }

    // The expected tokens were computed with Python's hmac, hashlib, base64 and urllib.parse,
    // not with this code.
    #[tokio::test]
    async fn a_dps_token_matches_the_independent_vector() {
        let t = token_expiring(
            &key(),
            Audience::Registration {
                scope: "0ne00AB12CD",
                registration_id: "Line3-Gateway",
            },
            1_700_000_030,
        )
        .await
        .unwrap();
        assert_eq!(
            t,
            "SharedAccessSignature sr=0ne00ab12cd%2Fregistrations%2Fline3-gateway\
             &sig=zbwmS7kmrOJi2%2BfQ8MFYhfyqpVoz07O9IYlp35u2p6k%3D&se=1700000030&skn=registration"
        );
    }

    #[tokio::test]
    async fn a_hub_token_has_no_key_name_and_encodes_the_audience() {
        let t = token_expiring(
            &key(),
            Audience::Device {
                hub: "MyHub.azure-devices.net",
                device_id: "dev 1",
            },
            1_700_000_030,
        )
        .await
        .unwrap();
        assert_eq!(
            t,
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev%201\
             &sig=CMlRg3OqS26CDxjwxCwL9SeHoeFQgfrs1iXKkNbwGMs%3D&se=1700000030"
        );
    }

    #[test]
    fn the_audience_keeps_a_port_and_encodes_equals_and_percent() {
        let a = Audience::Device {
            hub: "localhost:8443",
            device_id: "a=b%c",
        };
        assert_eq!(a.resource(), "localhost:8443%2Fdevices%2Fa%3Db%25c");
        assert_eq!(string_to_sign("x", 5), "x\n5");
    }

    #[tokio::test]
    async fn a_fresh_token_expires_shortly() {
        let t = token(
            &key(),
            Audience::Device {
                hub: "h",
                device_id: "d",
            },
        )
        .await
        .unwrap();
        let se: u64 = t.rsplit("se=").next().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            se > now && se <= now + TOKEN_LIFETIME.as_secs() + 1,
            "{se} {now}"
        );
    }
}
