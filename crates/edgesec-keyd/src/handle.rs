//! Key handles: what callers hold instead of keys.
//!
//! A handle is `v1.<payload>.<tag>` (unpadded base64url parts). The payload is JSON naming the
//! key id, the derivation label for a derived key, and a random nonce (so no two handles are
//! alike and callers cannot treat them as stable names). The tag is HMAC-SHA256 over the payload
//! bytes with a key that lives in the key store itself, so handles survive restarts and nobody
//! without that key can forge or change one. The tag is checked, in constant time, before the
//! payload is even parsed.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edgesec_keys::{KeyError, KeyId, KeyRef, KeyStore, SignAlgorithm, SignInput, SymmetricUsage};
use serde::{Deserialize, Serialize};

/// Key ids under this prefix belong to the key service; callers can never name them.
pub const RESERVED_PREFIX: &str = "keyd/";
const HANDLE_KEY_ID: &str = "keyd/handle-key";
/// Handles longer than this are rejected before any work is done.
pub const MAX_HANDLE_LEN: usize = 4096;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    nonce: String,
}

/// Why a handle was refused. Deliberately one case: a caller learns nothing about which check
/// failed.
#[derive(Debug)]
pub struct InvalidHandle;

pub struct HandleCodec {
    store: Arc<dyn KeyStore>,
    key: KeyRef,
    rng: SystemRandom,
}

impl HandleCodec {
    /// Loads (or creates on first start) the handle key.
    pub fn new(store: Arc<dyn KeyStore>) -> Result<Self, KeyError> {
        let id = KeyId::new(HANDLE_KEY_ID).expect("valid id");
        store.create_symmetric_key(&id, SymmetricUsage::HmacSha256)?;
        Ok(HandleCodec {
            store,
            key: KeyRef::Stored(id),
            rng: SystemRandom::new(),
        })
    }

    fn tag(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.store.sign(
            &self.key,
            SignAlgorithm::HmacSha256,
            SignInput::Message(payload),
        )
    }

    /// A new handle for `key`.
    pub fn issue(&self, key: &KeyRef) -> Result<String, KeyError> {
        let mut nonce = [0u8; 16];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KeyError::Backend("the system random source failed".into()))?;
        let (id, label) = match key {
            KeyRef::Stored(id) => (id, None),
            KeyRef::Derived { base, label } => (base, Some(URL_SAFE_NO_PAD.encode(label))),
        };
        let payload = serde_json::to_vec(&Payload {
            id: id.to_string(),
            label,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        })
        .expect("serializable");
        let tag = self.tag(&payload)?;
        Ok(format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// The key a handle names, after checking its tag. `Err(Ok(InvalidHandle))` for a handle
    /// that is not ours; `Err(Err(_))` when the store failed while checking.
    pub fn open(&self, handle: &str) -> Result<KeyRef, Result<InvalidHandle, KeyError>> {
        let invalid = || Err(Ok(InvalidHandle));
        if handle.len() > MAX_HANDLE_LEN {
            return invalid();
        }
        let mut parts = handle.split('.');
        let (Some("v1"), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return invalid();
        };
        let (Ok(payload), Ok(tag)) = (URL_SAFE_NO_PAD.decode(payload), URL_SAFE_NO_PAD.decode(tag))
        else {
            return invalid();
        };
        let valid = self
            .store
            .verify(
                &self.key,
                SignAlgorithm::HmacSha256,
                SignInput::Message(&payload),
                &tag,
            )
            .map_err(Err)?;
        if !valid {
            return invalid();
        }
        // From here on the payload is our own writing; a parse failure would be our bug.
        let Ok(p) = serde_json::from_slice::<Payload>(&payload) else {
            return invalid();
        };
        let Ok(id) = KeyId::new(p.id) else {
            return invalid();
        };
        match p.label {
            None => Ok(KeyRef::Stored(id)),
            Some(l) => match URL_SAFE_NO_PAD.decode(l) {
                Ok(label) => Ok(KeyRef::Derived { base: id, label }),
                Err(_) => invalid(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgesec_keys::soft::SoftKeyStore;

    fn codec() -> (tempfile::TempDir, HandleCodec) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open(&dir.path().join("s")).unwrap());
        (dir, HandleCodec::new(store).unwrap())
    }

    #[test]
    fn round_trip_and_uniqueness() {
        let (_d, c) = codec();
        let k = KeyRef::Stored(KeyId::new("a").unwrap());
        let h1 = c.issue(&k).unwrap();
        let h2 = c.issue(&k).unwrap();
        assert_ne!(h1, h2);
        assert_eq!(c.open(&h1).unwrap(), k);
        let d = KeyRef::Derived {
            base: KeyId::new("a").unwrap(),
            label: b"m:1:primary".to_vec(),
        };
        assert_eq!(c.open(&c.issue(&d).unwrap()).unwrap(), d);
    }

    #[test]
    fn forged_tampered_and_truncated_handles_are_refused() {
        let (_d, c) = codec();
        let h = c.issue(&KeyRef::Stored(KeyId::new("a").unwrap())).unwrap();
        let (_, rest) = h.split_once('.').unwrap();
        let (payload, tag) = rest.split_once('.').unwrap();
        let json = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let other = String::from_utf8(json).unwrap().replace("\"a\"", "\"b\"");
        let swapped = format!("v1.{}.{tag}", URL_SAFE_NO_PAD.encode(other));
        let mut flipped = h.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let (_d2, other_codec) = codec();
        let foreign = other_codec
            .issue(&KeyRef::Stored(KeyId::new("a").unwrap()))
            .unwrap();
        for bad in [
            String::new(),
            "v1".into(),
            h[..h.len() - 3].to_string(),
            swapped,
            String::from_utf8(flipped).unwrap(),
            format!("v2.{rest}"),
            format!("{h}.x"),
            "v1.!!!.???".into(),
            foreign,
            "x".repeat(MAX_HANDLE_LEN + 1),
        ] {
            assert!(matches!(c.open(&bad), Err(Ok(InvalidHandle))), "{bad:?}");
        }
    }
}
