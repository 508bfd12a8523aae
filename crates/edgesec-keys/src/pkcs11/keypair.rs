//! Creating keys on the token (generated there, or imported) and reading public keys.
//!
//! Every private and secret key is a token object with `CKA_SENSITIVE` and without
//! `CKA_EXTRACTABLE`, so the token never gives its value out; public keys are public token
//! objects. Creation is create-or-load, under the store's creation lock, as in the soft store.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _,
};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};

use super::objects::id_hash;
use super::{Fail, Pkcs11KeyStore};
use crate::der;
use crate::soft::material;
use crate::{
    ImportMaterial, KeyError, KeyId, KeyInfo, KeyKind, KeyPairAlgorithm, PublicKey, Result,
    SymmetricUsage,
};

/// Attributes every object of key `id` carries.
fn naming(id: &KeyId) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(id.as_str().as_bytes().to_vec()),
        Attribute::Id(id_hash(id)),
    ]
}

/// A private or secret key: readable only after login, and never in clear.
fn protected(id: &KeyId) -> Vec<Attribute> {
    let mut t = naming(id);
    t.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ]);
    t
}

fn public(id: &KeyId) -> Vec<Attribute> {
    let mut t = naming(id);
    t.extend([Attribute::Private(false), Attribute::Verify(true)]);
    t
}

fn unsupported(alg: &str) -> KeyError {
    KeyError::NotSupported(match alg {
        "ed25519" => "ed25519 keys on this PKCS#11 token",
        "rsa" => "this RSA key size on this PKCS#11 token",
        "hmac" => "hmac-sha256 keys on this PKCS#11 token",
        "aes" => "aes-256-gcm keys on this PKCS#11 token",
        _ => "this key type on this PKCS#11 token",
    })
}

impl Pkcs11KeyStore {
    fn existing(&self, id: &KeyId) -> Result<Option<KeyInfo>> {
        match self.key_info(id) {
            Ok(info) => Ok(Some(info)),
            Err(KeyError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        crate::KeyStore::key_info(self, id)
    }

    pub(crate) fn create_key_pair_on_token(
        &self,
        id: &KeyId,
        alg: KeyPairAlgorithm,
    ) -> Result<KeyInfo> {
        let _creating = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = self.existing(id)? {
            return Ok(info);
        }
        if self.preloaded.contains_key(id) {
            // existing() found nothing: the preloaded object is gone; never make a new one.
            return Err(KeyError::NotFound(id.clone()));
        }
        let m = &self.mechs;
        let mut pub_t = public(id);
        let mut priv_t = protected(id);
        priv_t.push(Attribute::Sign(true));
        let mechanism = match alg {
            KeyPairAlgorithm::EcP256 | KeyPairAlgorithm::EcP384 => {
                if !(m.ec && (alg == KeyPairAlgorithm::EcP256 || m.ec_p384)) {
                    return Err(KeyError::NotSupported("this curve on this PKCS#11 token"));
                }
                let curve = if alg == KeyPairAlgorithm::EcP256 {
                    der::OID_P256
                } else {
                    der::OID_P384
                };
                pub_t.push(Attribute::EcParams(curve.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                let bits = if alg == KeyPairAlgorithm::Rsa2048 {
                    if !m.rsa_2048 {
                        return Err(unsupported("rsa"));
                    }
                    2048u64
                } else {
                    if !m.rsa_4096 {
                        return Err(unsupported("rsa"));
                    }
                    4096
                };
                pub_t.push(Attribute::ModulusBits(bits.into()));
                pub_t.push(Attribute::PublicExponent(vec![1, 0, 1]));
                Mechanism::RsaPkcsKeyPairGen
            }
            KeyPairAlgorithm::Ed25519 => {
                if !m.ed25519 {
                    return Err(unsupported("ed25519"));
                }
                pub_t.push(Attribute::EcParams(der::OID_ED25519.to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
        };
        self.run("key pair generation", |s| {
            s.generate_key_pair(&mechanism, &pub_t, &priv_t)?;
            Ok(())
        })?;
        tracing::info!(key = %id, algorithm = %alg, "generated a key pair on the PKCS#11 token");
        self.key_info(id)
    }

    pub(crate) fn create_secret_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        let _creating = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = self.existing(id)? {
            return Ok(info);
        }
        if self.preloaded.contains_key(id) {
            return Err(KeyError::NotFound(id.clone()));
        }
        let mut t = protected(id);
        t.push(Attribute::ValueLen(32u64.into()));
        let mechanism = match usage {
            SymmetricUsage::HmacSha256 => {
                if !self.mechs.hmac {
                    return Err(unsupported("hmac"));
                }
                t.extend([
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::Sign(true),
                    Attribute::Verify(true),
                ]);
                Mechanism::GenericSecretKeyGen
            }
            SymmetricUsage::Aes256Gcm => {
                if !self.mechs.aes_gcm {
                    return Err(unsupported("aes"));
                }
                t.extend([
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ]);
                Mechanism::AesKeyGen
            }
        };
        self.run("secret key generation", |s| {
            s.generate_key(&mechanism, &t)?;
            Ok(())
        })?;
        tracing::info!(key = %id, usage = usage.as_str(), "generated a secret key on the PKCS#11 token");
        self.key_info(id)
    }

    pub(crate) fn public_key_of(&self, id: &KeyId) -> Result<PublicKey> {
        let e = self.run("public key", |s| self.entry(s, id))?;
        match (e.kind, &e.public) {
            (KeyKind::KeyPair(algorithm), Some(p)) => Ok(PublicKey {
                algorithm,
                spki_der: p.spki.clone(),
            }),
            _ => Err(KeyError::WrongAlgorithm(format!(
                "{id:?} is a symmetric key and has no public key"
            ))),
        }
    }

    /// Stores key material on the token (`C_CreateObject`), as sensitive and non-extractable as
    /// a generated key. The material passed through keyd's memory, so such a key is only as
    /// secret as its past: the token marks it `CKA_LOCAL` false.
    pub(crate) fn import_to_token(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        let (alg, pkcs8) = match material {
            ImportMaterial::Pem(pem) => material::parse_private_key(&pem, true)?,
            ImportMaterial::Pkcs8Der(der) => material::parse_private_key(&der, false)?,
            ImportMaterial::Symmetric(usage, bytes) => {
                return self.import_secret(id, usage, &bytes);
            }
        };
        let bad = || KeyError::InvalidInput("the key could not be loaded".into());
        let mut private = protected(id);
        private.extend([
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Sign(true),
        ]);
        let mut public_t = public(id);
        public_t.push(Attribute::Class(ObjectClass::PUBLIC_KEY));
        match alg {
            KeyPairAlgorithm::EcP256 | KeyPairAlgorithm::EcP384 => {
                let (signing, curve) = if alg == KeyPairAlgorithm::EcP256 {
                    (&ECDSA_P256_SHA256_ASN1_SIGNING, der::OID_P256)
                } else {
                    (&ECDSA_P384_SHA384_ASN1_SIGNING, der::OID_P384)
                };
                let key = EcdsaKeyPair::from_pkcs8(signing, &pkcs8).map_err(|_| bad())?;
                let d = key.private_key().as_be_bytes().map_err(|_| bad())?;
                private.extend([
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(curve.to_vec()),
                    Attribute::Value(d.as_ref().to_vec()),
                ]);
                public_t.extend([
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(curve.to_vec()),
                    Attribute::EcPoint(der::tlv(0x04, key.public_key().as_ref())),
                ]);
            }
            KeyPairAlgorithm::Ed25519 => {
                let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| bad())?;
                let seed = key
                    .seed()
                    .and_then(|s| s.as_be_bytes())
                    .map_err(|_| bad())?;
                private.extend([
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::EcParams(der::OID_ED25519.to_vec()),
                    Attribute::Value(seed.as_ref().to_vec()),
                ]);
                public_t.extend([
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::EcParams(der::OID_ED25519.to_vec()),
                    Attribute::EcPoint(der::tlv(0x04, key.public_key().as_ref())),
                ]);
            }
            KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                let p = der::rsa_private_key(&pkcs8).ok_or_else(bad)?;
                private.extend([
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Modulus(p.modulus.to_vec()),
                    Attribute::PublicExponent(p.public_exponent.to_vec()),
                    Attribute::PrivateExponent(p.private_exponent.to_vec()),
                    Attribute::Prime1(p.prime_1.to_vec()),
                    Attribute::Prime2(p.prime_2.to_vec()),
                    Attribute::Exponent1(p.exponent_1.to_vec()),
                    Attribute::Exponent2(p.exponent_2.to_vec()),
                    Attribute::Coefficient(p.coefficient.to_vec()),
                ]);
                public_t.extend([
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Modulus(p.modulus.to_vec()),
                    Attribute::PublicExponent(p.public_exponent.to_vec()),
                ]);
            }
        }
        if !crate::KeyStore::capabilities(self)
            .key_pair_algorithms
            .contains(&alg)
        {
            wipe(&mut private);
            return Err(KeyError::NotSupported(
                "this key type on this PKCS#11 token",
            ));
        }
        let result = self.create_objects(id, &[&private, &public_t]);
        wipe(&mut private);
        result
    }

    fn import_secret(&self, id: &KeyId, usage: SymmetricUsage, bytes: &[u8]) -> Result<KeyInfo> {
        // Same lengths as the soft store, and no shorter than the token's HMAC minimum.
        material::symmetric(usage, bytes)?;
        let min = self.mechs.hmac_min_key;
        let (ok, key_type, uses) = match usage {
            SymmetricUsage::HmacSha256 => (
                self.mechs.hmac,
                KeyType::GENERIC_SECRET,
                [Attribute::Sign(true), Attribute::Verify(true)],
            ),
            SymmetricUsage::Aes256Gcm => (
                self.mechs.aes_gcm,
                KeyType::AES,
                [Attribute::Encrypt(true), Attribute::Decrypt(true)],
            ),
        };
        if !ok {
            return Err(unsupported(if usage == SymmetricUsage::HmacSha256 {
                "hmac"
            } else {
                "aes"
            }));
        }
        if usage == SymmetricUsage::HmacSha256 && bytes.len() < min {
            return Err(KeyError::InvalidInput(format!(
                "this PKCS#11 token takes hmac-sha256 keys of at least {min} bytes, got {}",
                bytes.len()
            )));
        }
        let mut t = protected(id);
        t.extend([
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Value(bytes.to_vec()),
        ]);
        t.extend(uses);
        let result = self.create_objects(id, &[&t]);
        wipe(&mut t);
        result
    }

    /// Creates the objects of a new key, unless the id is taken.
    fn create_objects(&self, id: &KeyId, templates: &[&[Attribute]]) -> Result<KeyInfo> {
        let _creating = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.preloaded.contains_key(id) || self.existing(id)?.is_some() {
            return Err(KeyError::AlreadyExists(id.clone()));
        }
        self.run("import", |s| {
            let mut made = Vec::new();
            for t in templates {
                match s.create_object(t) {
                    Ok(h) => made.push(h),
                    Err(e) => {
                        for h in made {
                            let _ = s.destroy_object(h);
                        }
                        return Err(Fail::Ck(e));
                    }
                }
            }
            Ok(())
        })?;
        tracing::info!(key = %id, "imported a key onto the PKCS#11 token");
        self.key_info(id)
    }
}

/// Zeroes the secret values in a template once the token has them.
fn wipe(template: &mut [Attribute]) {
    use zeroize::Zeroize as _;
    for a in template {
        if let Attribute::Value(v)
        | Attribute::PrivateExponent(v)
        | Attribute::Prime1(v)
        | Attribute::Prime2(v)
        | Attribute::Exponent1(v)
        | Attribute::Exponent2(v)
        | Attribute::Coefficient(v) = a
        {
            v.zeroize();
        }
    }
}
