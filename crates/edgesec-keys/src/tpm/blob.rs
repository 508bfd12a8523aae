//! The on-disk form of one TPM key: a clear header naming the key, then the object's public area
//! (marshalled TPM2B_PUBLIC contents) and its private blob, which the TPM encrypted and
//! integrity-protected under the storage root key. The file holds nothing secret: without this
//! TPM the private blob is useless.
//!
//! ```text
//! "ETK1" | kind u8 | algorithm u8 | id length u16 | id | public length u16 | public
//!        | private length u16 | private
//! ```
//!
//! Kind 1 is a key pair and 2 a symmetric key, both under the storage root key; kind 3 is an
//! HMAC key imported from a DPS TPM challenge, under the DPS storage key (see `dps.rs`).
//!
//! Each object's auth value is derived from its key id, so a blob copied to another key's name
//! fails to authorize in the TPM.

use aws_lc_rs::digest;
use tss_esapi::structures::{Auth, Private, Public};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::device::Parent;
use crate::{KeyError, KeyId, KeyKind, KeyPairAlgorithm, SymmetricUsage};

const MAGIC: &[u8; 4] = b"ETK1";

/// A wrapped key, parsed.
pub(crate) struct Blob {
    pub(crate) kind: KeyKind,
    pub(crate) parent: Parent,
    pub(crate) public: Public,
    pub(crate) private: Private,
    pub(crate) auth: Auth,
}

/// The auth value of the object stored under `id`.
pub(crate) fn auth_for(id: &KeyId) -> Auth {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"edgesec-tpm-key\0");
    ctx.update(id.as_str().as_bytes());
    Auth::try_from(ctx.finish().as_ref().to_vec()).expect("32 bytes fit an auth value")
}

fn codes(kind: KeyKind, parent: Parent) -> (u8, u8) {
    match kind {
        KeyKind::Symmetric(SymmetricUsage::HmacSha256) if parent == Parent::DpsStorage => (3, 1),
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
        KeyKind::Symmetric(SymmetricUsage::HmacSha256) => (2, 1),
        KeyKind::Symmetric(SymmetricUsage::Aes256Gcm) => (2, 2),
    }
}

fn kind_of(k: u8, a: u8) -> Option<(KeyKind, Parent)> {
    if (k, a) == (3, 1) {
        return Some((
            KeyKind::Symmetric(SymmetricUsage::HmacSha256),
            Parent::DpsStorage,
        ));
    }
    let kind = match (k, a) {
        (1, 1) => KeyKind::KeyPair(KeyPairAlgorithm::EcP256),
        (1, 2) => KeyKind::KeyPair(KeyPairAlgorithm::EcP384),
        (1, 3) => KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048),
        (2, 1) => KeyKind::Symmetric(SymmetricUsage::HmacSha256),
        (2, 2) => KeyKind::Symmetric(SymmetricUsage::Aes256Gcm),
        _ => return None,
    };
    Some((kind, Parent::StorageRoot))
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u16).to_be_bytes());
    out.extend_from_slice(field);
}

fn take_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let field = rest.get(2..2 + len)?;
    *rest = &rest[2 + len..];
    Some(field)
}

/// The file image of a wrapped key.
pub(crate) fn encode(
    id: &KeyId,
    kind: KeyKind,
    parent: Parent,
    public: &Public,
    private: &Private,
) -> Result<Vec<u8>, KeyError> {
    let public = public
        .marshall()
        .map_err(|e| KeyError::Backend(format!("cannot encode a TPM public area: {e}")))?;
    let (k, a) = codes(kind, parent);
    let mut out = MAGIC.to_vec();
    out.push(k);
    out.push(a);
    push_field(&mut out, id.as_str().as_bytes());
    push_field(&mut out, &public);
    push_field(&mut out, private.value());
    Ok(out)
}

/// Reads only the header: which key a file holds and its kind.
pub(crate) fn peek(file: &[u8]) -> Option<(KeyId, KeyKind)> {
    peek_parent(file).map(|(id, kind, _)| (id, kind))
}

fn peek_parent(file: &[u8]) -> Option<(KeyId, KeyKind, Parent)> {
    if file.len() < 6 || &file[..4] != MAGIC {
        return None;
    }
    let (kind, parent) = kind_of(file[4], file[5])?;
    let mut rest = &file[6..];
    let id = std::str::from_utf8(take_field(&mut rest)?).ok()?;
    Some((KeyId::new(id).ok()?, kind, parent))
}

/// Parses a file that must hold key `id`; anything else is `Corrupted(id)`.
pub(crate) fn decode(id: &KeyId, file: &[u8]) -> Result<Blob, KeyError> {
    let corrupted = || KeyError::Corrupted(id.clone());
    let (file_id, kind, parent) = peek_parent(file).ok_or_else(corrupted)?;
    if &file_id != id {
        return Err(corrupted());
    }
    let mut rest = &file[6..];
    take_field(&mut rest).ok_or_else(corrupted)?;
    let public = take_field(&mut rest).ok_or_else(corrupted)?;
    let private = take_field(&mut rest).ok_or_else(corrupted)?;
    if !rest.is_empty() {
        return Err(corrupted());
    }
    Ok(Blob {
        kind,
        parent,
        public: Public::unmarshall(public).map_err(|_| corrupted())?,
        private: Private::try_from(private.to_vec()).map_err(|_| corrupted())?,
        auth: auth_for(id),
    })
}
