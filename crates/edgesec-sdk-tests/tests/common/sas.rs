//! Checking a SAS token the way IoT Hub / edgeHub would: the signature is HMAC-SHA256 under the
//! module's key of `sr` exactly as it appears in the token (the URL-encoded resource) + `\n` +
//! `se`; `sig` is the URL-encoded standard base64 of that HMAC.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

#[derive(Debug)]
pub struct SasToken {
    /// As in the token (URL-encoded).
    pub sr: String,
    /// As in the token (URL-encoded base64).
    pub sig: String,
    pub se: String,
    pub skn: Option<String>,
}

pub fn parse(token: &str) -> Result<SasToken, String> {
    let fields = token
        .strip_prefix("SharedAccessSignature ")
        .ok_or_else(|| format!("not a SharedAccessSignature: {token:?}"))?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for part in fields.split('&') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("field {part:?} is not k=v"))?;
        let slot = match k {
            "sr" => &mut sr,
            "sig" => &mut sig,
            "se" => &mut se,
            "skn" => &mut skn,
            other => return Err(format!("unexpected field {other:?} in {token:?}")),
        };
        if slot.replace(v.to_owned()).is_some() {
            return Err(format!("field {k} given twice in {token:?}"));
        }
    }
    let need = |f: Option<String>, name: &str| f.ok_or_else(|| format!("no {name} in {token:?}"));
    Ok(SasToken {
        sr: need(sr, "sr")?,
        sig: need(sig, "sig")?,
        se: need(se, "se")?,
        skn,
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(s)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

/// Checks `token` for `resource` (e.g. `hub/devices/dev/modules/mod`) under `key`: resource,
/// expiry in the next hour (what the SDKs ask for by default, with slack), and the signature
/// (compared in constant time). Returns the parsed token.
pub fn verify(token: &str, resource: &str, key: &[u8]) -> Result<SasToken, String> {
    let t = parse(token)?;
    if decode(&t.sr) != resource {
        return Err(format!("sr is not {resource:?}: {token:?}"));
    }
    if t.skn.is_some() {
        return Err(format!("a module token has no skn: {token:?}"));
    }
    let se: u64 =
        t.se.parse()
            .map_err(|_| format!("se is not a number: {token:?}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if se <= now || se > now + 3600 + 300 {
        return Err(format!(
            "expiry {se} is not within the next hour (now {now}): {token:?}"
        ));
    }
    let sig = STANDARD
        .decode(decode(&t.sig))
        .map_err(|e| format!("sig is not standard base64 ({e}): {token:?}"))?;
    if sig.len() != 32 {
        return Err(format!("sig is not an HMAC-SHA256: {token:?}"));
    }
    let signed = format!("{}\n{}", t.sr, t.se);
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::verify(&hmac_key, signed.as_bytes(), &sig).map_err(|_| {
        format!("the signature does not verify with the module's key over {signed:?}: {token:?}")
    })?;
    Ok(t)
}

#[test]
fn verifies_a_token_made_here_and_refuses_altered_ones() {
    let key = b"0123456789abcdef0123456789abcdef";
    let se = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let sr = "hub.example%2Fdevices%2Fd%2Fmodules%2Fm";
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        format!("{sr}\n{se}").as_bytes(),
    );
    let sig = percent_encoding::utf8_percent_encode(
        &STANDARD.encode(tag),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}");
    let resource = "hub.example/devices/d/modules/m";
    verify(&token, resource, key).unwrap();
    let later = token.replace(&format!("se={se}"), &format!("se={}", se + 1));
    assert!(
        verify(&later, resource, key)
            .unwrap_err()
            .contains("does not verify")
    );
    assert!(verify(&token, resource, b"another key of 32 bytes........").is_err());
    assert!(verify(&token, "hub.example/devices/d/modules/other", key).is_err());
}
