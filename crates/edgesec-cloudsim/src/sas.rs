//! Checking `SharedAccessSignature` tokens, as DPS and the hub do.
//!
//! A token is `SharedAccessSignature sr=<audience>&sig=<signature>&se=<expiry>`
//! (DPS adds `&skn=registration`). The signature is HMAC-SHA256 over
//! `"<sr>\n<se>"` with `sr` exactly as it appears in the token (already
//! URL-encoded), base64 encoded and then URL-encoded.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

/// Tokens that expired this long ago still pass: device clocks drift.
const CLOCK_SKEW_SECS: u64 = 60;
/// A token may not live longer than this (plus the skew): the clients we
/// check mint short-lived tokens, and a far-future expiry is a bug.
const MAX_TOKEN_LIFETIME_SECS: u64 = 3600;
const PREFIX: &str = "SharedAccessSignature ";

/// What a verified token must say besides its signature.
pub(crate) struct Expected<'a> {
    /// The resource the request is for, e.g. `scope/registrations/reg1`.
    pub audience: &'a str,
    /// `Some("registration")` for DPS; `None` for device tokens at the hub.
    pub key_name: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
}

/// The key a group enrollment's device signs with.
pub(crate) fn derive_group_device_key(group_key: &[u8], registration_id: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, group_key);
    hmac::sign(&key, registration_id.as_bytes())
        .as_ref()
        .to_vec()
}

/// Checks the `Authorization` header value against the expectations and
/// the key; the error says which part is wrong.
pub(crate) fn verify(
    header: Option<&str>,
    expected: &Expected<'_>,
    key: &[u8],
) -> Result<(), String> {
    let header = header.ok_or("missing Authorization header with a SharedAccessSignature")?;
    let fields = header
        .strip_prefix(PREFIX)
        .ok_or("Authorization is not a SharedAccessSignature token")?;
    let token = parse_fields(fields)?;

    let audience = percent_decode_str(token.sr)
        .decode_utf8()
        .map_err(|_| "token sr is not valid UTF-8 after URL decoding")?;
    if !audience.eq_ignore_ascii_case(expected.audience) {
        return Err(format!(
            "token audience {audience:?} does not match the resource {:?}",
            expected.audience
        ));
    }
    if token.skn.as_deref() != expected.key_name {
        return Err(match expected.key_name {
            Some(name) => format!("token skn must be {name:?}"),
            None => "device tokens must not carry skn".to_owned(),
        });
    }

    let expiry: u64 = token
        .se
        .parse()
        .map_err(|_| format!("token se {:?} is not Unix seconds", token.se))?;
    if expiry.saturating_add(CLOCK_SKEW_SECS) < expected.now {
        return Err(format!("token expired at {expiry} (now {})", expected.now));
    }
    if expiry > expected.now + MAX_TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS {
        return Err(format!(
            "token expiry {expiry} is more than {MAX_TOKEN_LIFETIME_SECS} s ahead (now {})",
            expected.now
        ));
    }

    let sig_b64 = percent_decode_str(token.sig)
        .decode_utf8()
        .map_err(|_| "token sig is not valid UTF-8 after URL decoding")?;
    let signature = STANDARD
        .decode(sig_b64.as_bytes())
        .map_err(|_| "token sig is not base64")?;
    let string_to_sign = format!("{}\n{}", token.sr, token.se);
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, string_to_sign.as_bytes(), &signature)
        .map_err(|_| "token signature does not match the enrolled key".to_owned())
}

struct TokenFields<'a> {
    sr: &'a str,
    sig: &'a str,
    se: &'a str,
    skn: Option<String>,
}

fn parse_fields(fields: &str) -> Result<TokenFields<'_>, String> {
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for field in fields.split('&') {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| format!("token field {field:?} has no '='"))?;
        let slot = match name {
            "sr" => &mut sr,
            "sig" => &mut sig,
            "se" => &mut se,
            "skn" => &mut skn,
            other => return Err(format!("unknown token field {other:?}")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("token field {name:?} appears twice"));
        }
    }
    let skn = match skn {
        Some(raw) => Some(
            percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| "token skn is not valid UTF-8")?
                .into_owned(),
        ),
        None => None,
    };
    Ok(TokenFields {
        sr: sr.ok_or("token has no sr")?,
        sig: sig.ok_or("token has no sig")?,
        se: se.ok_or("token has no se")?,
        skn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(audience_encoded: &str, key: &[u8], se: u64, skn: Option<&str>) -> String {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        let sig = STANDARD.encode(hmac::sign(
            &k,
            format!("{audience_encoded}\n{se}").as_bytes(),
        ));
        let sig = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
        let mut t = format!("SharedAccessSignature sr={audience_encoded}&sig={sig}&se={se}");
        if let Some(skn) = skn {
            t.push_str(&format!("&skn={skn}"));
        }
        t
    }

    fn dps(now: u64) -> Expected<'static> {
        Expected {
            audience: "Scope/registrations/reg1",
            key_name: Some("registration"),
            now,
        }
    }

    #[test]
    fn accepts_a_good_token_with_encoded_audience() {
        let t = token(
            "scope%2fregistrations%2freg1",
            b"k",
            1000,
            Some("registration"),
        );
        assert_eq!(verify(Some(&t), &dps(990), b"k"), Ok(()));
    }

    #[test]
    fn refuses_wrong_key_expired_far_future_and_wrong_audience() {
        let t = token(
            "scope%2fregistrations%2freg1",
            b"k",
            1000,
            Some("registration"),
        );
        assert!(
            verify(Some(&t), &dps(990), b"other")
                .unwrap_err()
                .contains("signature")
        );
        assert!(
            verify(Some(&t), &dps(1000 + CLOCK_SKEW_SECS + 1), b"k")
                .unwrap_err()
                .contains("expired")
        );
        let far = token(
            "scope%2fregistrations%2freg1",
            b"k",
            990 + 2 * MAX_TOKEN_LIFETIME_SECS,
            Some("registration"),
        );
        assert!(
            verify(Some(&far), &dps(990), b"k")
                .unwrap_err()
                .contains("ahead")
        );
        let t = token(
            "scope%2fregistrations%2freg2",
            b"k",
            1000,
            Some("registration"),
        );
        assert!(
            verify(Some(&t), &dps(990), b"k")
                .unwrap_err()
                .contains("audience")
        );
    }

    #[test]
    fn refuses_malformed_tokens() {
        let t = token("scope%2fregistrations%2freg1", b"k", 1000, None);
        assert!(
            verify(Some(&t), &dps(990), b"k")
                .unwrap_err()
                .contains("skn")
        );
        assert!(verify(None, &dps(990), b"k").is_err());
        assert!(verify(Some("Bearer x"), &dps(990), b"k").is_err());
        assert!(
            verify(Some("SharedAccessSignature sr=a&sr=b"), &dps(990), b"k")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            verify(Some("SharedAccessSignature sr=a&x=1"), &dps(990), b"k")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(verify(Some("SharedAccessSignature sr=a"), &dps(990), b"k").is_err());
    }

    #[test]
    fn group_key_derivation_is_hmac_of_the_registration_id() {
        let derived = derive_group_device_key(b"group", "dev1");
        let k = hmac::Key::new(hmac::HMAC_SHA256, b"group");
        assert_eq!(derived, hmac::sign(&k, b"dev1").as_ref());
        assert_ne!(derived, derive_group_device_key(b"group", "dev2"));
    }
}
