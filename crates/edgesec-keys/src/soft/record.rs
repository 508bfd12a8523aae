//! The on-disk form of one key: a clear header naming the key, then its material sealed with
//! AES-256-GCM under the store's master key. The header is the associated data, so a file
//! renamed to another key's name, or edited in any byte, fails to open.
//!
//! ```text
//! "ESK1" | kind u8 | algorithm u8 | id length u16 BE | id | nonce [12] | ciphertext + tag [16]
//! ```

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use crate::{KeyError, KeyId, KeyKind, KeyPairAlgorithm, SymmetricUsage};

const MAGIC: &[u8; 4] = b"ESK1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The store's master key, which seals every key file.
pub(crate) struct MasterKey(RandomizedNonceKey);

impl MasterKey {
    pub(crate) fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        RandomizedNonceKey::new(&aead::AES_256_GCM, bytes)
            .map(MasterKey)
            .map_err(|_| KeyError::Backend("the master key is not a 32-byte AES-256 key".into()))
    }
}

fn kind_codes(kind: KeyKind) -> (u8, u8) {
    match kind {
        KeyKind::KeyPair(a) => (
            1,
            match a {
                KeyPairAlgorithm::EcP256 => 1,
                KeyPairAlgorithm::EcP384 => 2,
                KeyPairAlgorithm::Rsa2048 => 3,
                KeyPairAlgorithm::Rsa4096 => 4,
                KeyPairAlgorithm::Ed25519 => 5,
            },
        ),
        KeyKind::Symmetric(u) => (
            2,
            match u {
                SymmetricUsage::HmacSha256 => 1,
                SymmetricUsage::Aes256Gcm => 2,
            },
        ),
    }
}

fn kind_from_codes(kind: u8, alg: u8) -> Option<KeyKind> {
    Some(match (kind, alg) {
        (1, 1) => KeyKind::KeyPair(KeyPairAlgorithm::EcP256),
        (1, 2) => KeyKind::KeyPair(KeyPairAlgorithm::EcP384),
        (1, 3) => KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048),
        (1, 4) => KeyKind::KeyPair(KeyPairAlgorithm::Rsa4096),
        (1, 5) => KeyKind::KeyPair(KeyPairAlgorithm::Ed25519),
        (2, 1) => KeyKind::Symmetric(SymmetricUsage::HmacSha256),
        (2, 2) => KeyKind::Symmetric(SymmetricUsage::Aes256Gcm),
        _ => return None,
    })
}

fn header(id: &KeyId, kind: KeyKind) -> Vec<u8> {
    let (k, a) = kind_codes(kind);
    let id = id.as_str().as_bytes();
    let mut out = Vec::with_capacity(8 + id.len());
    out.extend_from_slice(MAGIC);
    out.push(k);
    out.push(a);
    out.extend_from_slice(
        &u16::try_from(id.len())
            .expect("key ids are short")
            .to_be_bytes(),
    );
    out.extend_from_slice(id);
    out
}

/// Seals `material` (PKCS#8 DER or raw symmetric bytes) into a file image.
pub(crate) fn seal(
    master: &MasterKey,
    id: &KeyId,
    kind: KeyKind,
    material: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mut out = header(id, kind);
    let mut buf = Zeroizing::new(material.to_vec());
    let nonce = master
        .0
        .seal_in_place_append_tag(Aad::from(out.as_slice()), &mut *buf)
        .map_err(|_| KeyError::Backend("sealing a key failed".into()))?;
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Reads only the clear header: which key a file holds and its kind.
pub(crate) fn peek(file: &[u8]) -> Option<(KeyId, KeyKind, usize)> {
    if file.len() < 8 || &file[..4] != MAGIC {
        return None;
    }
    let kind = kind_from_codes(file[4], file[5])?;
    let id_len = usize::from(u16::from_be_bytes([file[6], file[7]]));
    let id = std::str::from_utf8(file.get(8..8 + id_len)?).ok()?;
    Some((KeyId::new(id).ok()?, kind, 8 + id_len))
}

/// Opens a file image that must hold key `id`; anything else is `Corrupted(id)`.
pub(crate) fn open(
    master: &MasterKey,
    id: &KeyId,
    file: &[u8],
) -> Result<(KeyKind, Zeroizing<Vec<u8>>), KeyError> {
    let corrupted = || KeyError::Corrupted(id.clone());
    let (file_id, kind, header_len) = peek(file).ok_or_else(corrupted)?;
    if &file_id != id || file.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(corrupted());
    }
    let (aad, rest) = file.split_at(header_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupted())?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let len = master
        .0
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| corrupted())?
        .len();
    buf.truncate(len);
    Ok((kind, buf))
}

/// Seals and opens caller data for the AEAD operations of symmetric keys:
/// `version 1 | nonce [12] | ciphertext + tag [16]`.
pub(crate) mod aead_blob {
    use super::*;

    const VERSION: u8 = 1;

    pub(crate) fn seal(
        key: &RandomizedNonceKey,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut buf = plaintext.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad), &mut buf)
            .map_err(|_| KeyError::Backend("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub(crate) fn open(
        key: &RandomizedNonceKey,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != VERSION {
            return Err(KeyError::DecryptFailed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&blob[1..1 + NONCE_LEN])
            .map_err(|_| KeyError::DecryptFailed)?;
        let mut buf = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| KeyError::DecryptFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}
