//! DPS TPM attestation, service side: the challenge sent in answer to the first register
//! request of a TPM device. Owned by the TPM helper (see COORDINATION.md).
//!
//! Everything here is software, written from the TPM 2.0 specification (Part 1 §23 duplication,
//! §24 credential protection, §11.4.10 KDFa) and independent of the device side, which lets the
//! TPM do the reverse: a mistake on either side makes the round trip fail instead of hiding.
//!
//! The challenge carries a fresh HMAC-SHA256 key in two wrappers:
//! - the key's sensitive area is duplicated to the device's storage key: an inner wrapper
//!   (AES-128-CFB with a random 16-byte key, integrity = hash of the sensitive area and the key's
//!   name) inside an outer one (keys derived from a seed RSA-OAEP-encrypted to the storage key
//!   with the label "DUPLICATE");
//! - the inner wrapper's key travels as a credential made for the endorsement key and bound to
//!   the storage key's name (seed RSA-OAEP-encrypted to the EK with the label "IDENTITY").
//!
//! So only the TPM that holds both keys can import the HMAC key, and only as a child of that
//! storage key. Blob = TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET ‖ TPM2B_PRIVATE ‖
//! TPM2B_ENCRYPTED_SECRET ‖ TPM2B_PUBLIC.

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};

const ALG_RSA: u16 = 0x0001;
const ALG_HMAC: u16 = 0x0005;
const ALG_AES: u16 = 0x0006;
const ALG_KEYEDHASH: u16 = 0x0008;
const ALG_SHA256: u16 = 0x000B;
const ALG_NULL: u16 = 0x0010;
const ALG_CFB: u16 = 0x0043;

const ATTR_USER_WITH_AUTH: u32 = 1 << 6;
const ATTR_NO_DA: u32 = 1 << 10;
const ATTR_RESTRICTED: u32 = 1 << 16;
const ATTR_DECRYPT: u32 = 1 << 17;
const ATTR_SIGN: u32 = 1 << 18;

/// SHA-256 output, the seed and HMAC key size of every SHA-256 protector.
const DIGEST_LEN: usize = 32;
/// AES-128: the symmetric algorithm of the EK and storage key templates.
const AES_KEY_BITS: u32 = 128;

/// An RSA restricted decryption key read from a TPM2B_PUBLIC.
struct RsaProtector {
    spki_der: Vec<u8>,
    /// nameAlg ‖ SHA-256(TPMT_PUBLIC).
    name: Vec<u8>,
}

/// Reads big-endian fields off a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn sized(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }
}

/// Parses a marshalled TPM2B_PUBLIC that must be an RSA-2048 restricted decryption key with
/// SHA-256 names and AES-128-CFB, the shape of the TCG's EK and SRK templates.
fn rsa_protector(tpm2b_public: &[u8], what: &str) -> Result<RsaProtector, String> {
    let bad = |why: &str| format!("the {what} is not usable: {why}");
    let mut outer = Reader(tpm2b_public);
    let area = outer.sized().map_err(|e| bad(&e))?;
    if !outer.0.is_empty() {
        return Err(bad("bytes follow the public area"));
    }
    let mut r = Reader(area);
    let parse = |r: &mut Reader<'_>| -> Result<(Vec<u8>, u32), String> {
        if r.u16()? != ALG_RSA {
            return Err("not an RSA key".into());
        }
        if r.u16()? != ALG_SHA256 {
            return Err("its name algorithm is not SHA-256".into());
        }
        let attributes = r.u32()?;
        if attributes & (ATTR_RESTRICTED | ATTR_DECRYPT) != (ATTR_RESTRICTED | ATTR_DECRYPT) {
            return Err("not a restricted decryption key".into());
        }
        r.sized()?; // authPolicy
        if (r.u16()?, r.u16()?, r.u16()?) != (ALG_AES, 128, ALG_CFB) {
            return Err("its symmetric algorithm is not AES-128-CFB".into());
        }
        if r.u16()? != ALG_NULL {
            return Err("it has an RSA scheme (a storage key has none)".into());
        }
        if r.u16()? != 2048 {
            return Err("not a 2048-bit key".into());
        }
        let exponent = match r.u32()? {
            0 => 65537,
            e => e,
        };
        let modulus = r.sized()?.to_vec();
        if modulus.len() != 256 || !r.0.is_empty() {
            return Err("its modulus is not 2048 bits".into());
        }
        Ok((modulus, exponent))
    };
    let (modulus, exponent) = parse(&mut r).map_err(|e| bad(&e))?;
    Ok(RsaProtector {
        spki_der: rsa_spki(&modulus, exponent),
        name: name_of(area),
    })
}

fn name_of(tpmt_public: &[u8]) -> Vec<u8> {
    let mut name = ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(digest(&SHA256, tpmt_public).as_ref());
    name
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

fn der_positive_integer(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let mut body = Vec::new();
    if magnitude.get(start).is_none_or(|&b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(&magnitude[start..]);
    der(0x02, &body)
}

/// SubjectPublicKeyInfo DER of an RSA public key.
fn rsa_spki(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let mut key = der_positive_integer(modulus);
    key.extend(der_positive_integer(&exponent.to_be_bytes()));
    let mut bits = vec![0u8];
    bits.extend(der(0x30, &key));
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let mut body = der(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    );
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// KDFa with SHA-256 (Part 1 §11.4.10.2): HMAC(key, i ‖ label ‖ 0 ‖ contextU ‖ contextV ‖ bits)
/// for i = 1, 2, ..., truncated to `bits`.
fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let len = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(len + DIGEST_LEN);
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// AES-128-CFB with a zero IV, as the TPM uses for both wrappers and the credential.
fn aes128_cfb(key: &[u8], data: &mut [u8]) -> Result<(), String> {
    let key = UnboundCipherKey::new(&AES_128, key).map_err(|_| "bad AES key")?;
    let key = EncryptingKey::cfb128(key).map_err(|_| "AES-CFB setup failed")?;
    key.less_safe_encrypt(data, EncryptionContext::Iv128([0u8; 16].into()))
        .map_err(|_| "AES-CFB failed")?;
    Ok(())
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(|_| "the random source failed")?;
    Ok(out)
}

/// A fresh seed and its RSA-OAEP(SHA-256) encryption to `to`, with `label` ("IDENTITY",
/// "DUPLICATE"; the TPM counts the terminating zero as part of the label).
fn encrypted_seed(
    rng: &SystemRandom,
    to: &RsaProtector,
    label: &str,
) -> Result<([u8; DIGEST_LEN], Vec<u8>), String> {
    let seed = random::<DIGEST_LEN>(rng)?;
    let key = PublicEncryptingKey::from_der(&to.spki_der).map_err(|_| "bad RSA key")?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| "bad RSA key")?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let mut label = label.as_bytes().to_vec();
    label.push(0);
    let n = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, &seed, &mut out, Some(&label))
        .map_err(|_| "RSA-OAEP failed")?
        .len();
    out.truncate(n);
    Ok((seed, out))
}

fn sized(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The outer protection of Part 1 §23.3.2.4 and §24.4: `plaintext` encrypted with
/// KDFa(seed, "STORAGE", name), then HMAC(KDFa(seed, "INTEGRITY"), ciphertext ‖ name) in front.
/// The result is the body of a TPM2B_ID_OBJECT or TPM2B_PRIVATE.
fn outer_wrap(seed: &[u8], name: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let mut data = plaintext.to_vec();
    aes128_cfb(&kdfa(seed, "STORAGE", name, &[], AES_KEY_BITS), &mut data)?;
    let integrity_key = kdfa(seed, "INTEGRITY", &[], &[], (DIGEST_LEN * 8) as u32);
    let mut mac = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &integrity_key));
    mac.update(&data);
    mac.update(name);
    let mut out = sized(mac.sign().as_ref());
    out.extend(data);
    Ok(out)
}

/// The HMAC key's public area (TPMT_PUBLIC): keyed hash, HMAC-SHA256, signing, usable with its
/// (empty) auth value, and neither fixedTPM nor fixedParent, so it can be imported.
fn hmac_key_public(obfuscation: &[u8], key: &[u8]) -> Vec<u8> {
    let mut unique_input = obfuscation.to_vec();
    unique_input.extend_from_slice(key);
    let mut p = Vec::new();
    p.extend(ALG_KEYEDHASH.to_be_bytes());
    p.extend(ALG_SHA256.to_be_bytes());
    p.extend((ATTR_USER_WITH_AUTH | ATTR_NO_DA | ATTR_SIGN).to_be_bytes());
    p.extend(sized(&[])); // no authPolicy
    p.extend(ALG_HMAC.to_be_bytes());
    p.extend(ALG_SHA256.to_be_bytes());
    p.extend(sized(digest(&SHA256, &unique_input).as_ref()));
    p
}

/// Makes the `authenticationKey` blob for the TPM with this endorsement key and storage root
/// key (marshalled `TPM2B_PUBLIC`), and returns it with the HMAC key it carries:
/// `(authenticationKey blob, hmac key)`.
pub(crate) fn challenge(ek: &[u8], srk: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let ek = rsa_protector(ek, "endorsement key")?;
    let srk = rsa_protector(srk, "storage root key")?;
    let rng = SystemRandom::new();
    let hmac_key = random::<DIGEST_LEN>(&rng)?;
    let obfuscation = random::<DIGEST_LEN>(&rng)?;
    let public = hmac_key_public(&obfuscation, &hmac_key);
    let key_name = name_of(&public);

    // TPMT_SENSITIVE: type, authValue (empty), seedValue, the key; then as TPM2B_SENSITIVE.
    let mut sensitive = ALG_KEYEDHASH.to_be_bytes().to_vec();
    sensitive.extend(sized(&[]));
    sensitive.extend(sized(&obfuscation));
    sensitive.extend(sized(&hmac_key));
    let sensitive = sized(&sensitive);

    // Inner wrapper: (TPM2B_DIGEST H(sensitive ‖ name) ‖ sensitive), AES-128-CFB.
    let inner_key = random::<16>(&rng)?;
    let mut inner_integrity = sensitive.clone();
    inner_integrity.extend_from_slice(&key_name);
    let mut inner = sized(digest(&SHA256, &inner_integrity).as_ref());
    inner.extend_from_slice(&sensitive);
    aes128_cfb(&inner_key, &mut inner)?;

    // Outer wrapper to the storage key.
    let (import_seed, import_seed_encrypted) = encrypted_seed(&rng, &srk, "DUPLICATE")?;
    let duplicate = outer_wrap(&import_seed, &key_name, &inner)?;

    // The inner key as a credential for the EK, bound to the storage key's name.
    let (credential_seed, credential_seed_encrypted) = encrypted_seed(&rng, &ek, "IDENTITY")?;
    let credential = outer_wrap(&credential_seed, &srk.name, &sized(&inner_key))?;

    let mut blob = sized(&credential);
    blob.extend(sized(&credential_seed_encrypted));
    blob.extend(sized(&duplicate));
    blob.extend(sized(&import_seed_encrypted));
    blob.extend(sized(&public));
    Ok((blob, hmac_key.to_vec()))
}

/// [`challenge`] for tests outside this crate (the key service's TPM import tests).
#[doc(hidden)]
pub fn challenge_for_tests(ek: &[u8], srk: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    challenge(ek, srk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_follows_the_spec_layout() {
        // One block: HMAC(key, 00000001 ‖ "STORAGE" ‖ 00 ‖ u ‖ v ‖ 00000080), cut to 16 bytes.
        let mut msg = vec![0, 0, 0, 1];
        msg.extend(b"STORAGE\0");
        msg.extend(b"uv");
        msg.extend([0, 0, 0, 128]);
        let k = hmac::Key::new(hmac::HMAC_SHA256, b"seed");
        let want = hmac::sign(&k, &msg);
        assert_eq!(
            kdfa(b"seed", "STORAGE", b"u", b"v", 128),
            want.as_ref()[..16]
        );
        // Two blocks for more than 256 bits, the counter going up.
        let long = kdfa(b"seed", "X", &[], &[], 384);
        assert_eq!(long.len(), 48);
        assert_ne!(long[..16], long[32..48]);
    }

    #[test]
    fn refuses_keys_that_are_not_rsa_storage_keys() {
        assert!(challenge(&[], &[]).is_err());
        assert!(challenge(&[0, 4, 0, 1, 0, 11], &[0, 1, 0]).is_err());
    }
}
