//! Token objects: which objects a key id names, what kind of key they hold, listing and deleting.
//!
//! Keys made by edgesec carry `CKA_LABEL` = the key id and `CKA_ID` = [`id_hash`] of it, and
//! only objects with both are taken as edgesec's own: an unrelated object that happens to carry
//! a key id as its label is never picked up. Preloaded keys are found through their URI instead.
//! A found key is cached (its object handle, kind and public key), so a request costs one token
//! call; the cache is dropped whenever the token resets or a handle goes stale.

use std::sync::Arc;

use aws_lc_rs::digest;
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};

use super::Pkcs11KeyStore;
use super::error::Fail;
use super::uri::{ObjectType, Pkcs11Uri};
use crate::der;
use crate::{KeyError, KeyId, KeyInfo, KeyKind, KeyPairAlgorithm, SymmetricUsage};

/// A key found on the token.
pub(crate) struct Entry {
    pub(crate) kind: KeyKind,
    /// The private or secret key object.
    pub(crate) handle: ObjectHandle,
    /// Key pairs: the public key.
    pub(crate) public: Option<PublicData>,
}

pub(crate) struct PublicData {
    /// DER SubjectPublicKeyInfo.
    pub(crate) spki: Vec<u8>,
    /// What aws-lc's verifiers take: the EC point, the PKCS#1 RSAPublicKey, or 32 Ed25519 bytes.
    pub(crate) raw: Vec<u8>,
}

/// Fails with `CKR_USER_NOT_LOGGED_IN` (made up here: the token says nothing) when `s` is not a
/// user session: after a token reset a fresh session is public, and would find no private key.
pub(crate) fn logged_in(s: &Session) -> Result<(), Fail> {
    match s.get_session_info()?.session_state() {
        SessionState::RwUser | SessionState::RoUser => Ok(()),
        _ => Err(Fail::Ck(CkError::Pkcs11(
            RvError::UserNotLoggedIn,
            Function::FindObjects,
        ))),
    }
}

/// `CKA_ID` of the key `id`: the first 16 bytes of SHA-256(id).
pub(crate) fn id_hash(id: &KeyId) -> Vec<u8> {
    digest::digest(&digest::SHA256, id.as_str().as_bytes()).as_ref()[..16].to_vec()
}

/// The attributes of `h`, missing ones left out.
pub(crate) fn attributes(
    s: &Session,
    h: ObjectHandle,
    types: &[AttributeType],
) -> Result<Vec<Attribute>, Fail> {
    Ok(s.get_attributes(h, types)?)
}

pub(crate) fn bytes(attrs: &[Attribute], t: AttributeType) -> Option<&[u8]> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Id(v), AttributeType::Id)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent) => Some(v.as_slice()),
        _ => None,
    })
}

fn class(attrs: &[Attribute]) -> Option<ObjectClass> {
    attrs.iter().find_map(|a| match a {
        Attribute::Class(c) => Some(*c),
        _ => None,
    })
}

fn key_type(attrs: &[Attribute]) -> Option<KeyType> {
    attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    })
}

fn value_len(attrs: &[Attribute]) -> Option<usize> {
    attrs.iter().find_map(|a| match a {
        Attribute::ValueLen(n) => Some(u64::from(*n) as usize),
        _ => None,
    })
}

const KIND_ATTRS: &[AttributeType] = &[
    AttributeType::Class,
    AttributeType::KeyType,
    AttributeType::EcParams,
    AttributeType::Modulus,
    AttributeType::PublicExponent,
    AttributeType::ValueLen,
    AttributeType::Label,
    AttributeType::Id,
];

/// The kind of key the object with these attributes holds, if edgesec can use it.
fn kind_of(attrs: &[Attribute]) -> Option<KeyKind> {
    let params = bytes(attrs, AttributeType::EcParams);
    Some(match (class(attrs)?, key_type(attrs)?) {
        (ObjectClass::SECRET_KEY, KeyType::GENERIC_SECRET | KeyType::SHA256_HMAC) => {
            KeyKind::Symmetric(SymmetricUsage::HmacSha256)
        }
        (ObjectClass::SECRET_KEY, KeyType::AES) if value_len(attrs) == Some(32) => {
            KeyKind::Symmetric(SymmetricUsage::Aes256Gcm)
        }
        (ObjectClass::PRIVATE_KEY, KeyType::EC) if params == Some(der::OID_P256) => {
            KeyKind::KeyPair(KeyPairAlgorithm::EcP256)
        }
        (ObjectClass::PRIVATE_KEY, KeyType::EC) if params == Some(der::OID_P384) => {
            KeyKind::KeyPair(KeyPairAlgorithm::EcP384)
        }
        (ObjectClass::PRIVATE_KEY, KeyType::EC_EDWARDS)
            if params == Some(der::OID_ED25519) || params == Some(der::NAME_ED25519) =>
        {
            KeyKind::KeyPair(KeyPairAlgorithm::Ed25519)
        }
        (ObjectClass::PRIVATE_KEY, KeyType::RSA) => {
            match bytes(attrs, AttributeType::Modulus)?.len() {
                256 => KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048),
                512 => KeyKind::KeyPair(KeyPairAlgorithm::Rsa4096),
                _ => return None,
            }
        }
        _ => return None,
    })
}

impl Pkcs11KeyStore {
    /// The key `id`, from the cache or the token; [`KeyError::NotFound`] when there is none.
    pub(crate) fn entry(&self, s: &Session, id: &KeyId) -> Result<Arc<Entry>, Fail> {
        if let Some(e) = self.cache.read().expect("cache lock").get(id) {
            return Ok(e.clone());
        }
        let found = match self.preloaded.get(id) {
            Some(uri) => self.find_preloaded(s, id, uri),
            None => self.find_own(s, id),
        };
        let handle = match found {
            Ok(Some(h)) => h,
            // A session that lost its login sees no private objects: make sure "not there"
            // is not that.
            Ok(None) => {
                logged_in(s)?;
                return Err(KeyError::NotFound(id.clone()).into());
            }
            Err(e) => {
                logged_in(s)?;
                return Err(e);
            }
        };
        let entry = Arc::new(self.describe(s, id, handle)?);
        self.cache
            .write()
            .expect("cache lock")
            .insert(id.clone(), entry.clone());
        Ok(entry)
    }

    pub(crate) fn forget(&self, id: &KeyId) {
        self.cache.write().expect("cache lock").remove(id);
    }

    pub(crate) fn forget_all(&self) {
        self.cache.write().expect("cache lock").clear();
    }

    /// Every object edgesec made for `id` (a private and a public key, or one secret key).
    pub(crate) fn own_objects(&self, s: &Session, id: &KeyId) -> Result<Vec<ObjectHandle>, Fail> {
        Ok(s.find_objects(&[
            Attribute::Token(true),
            Attribute::Label(id.as_str().as_bytes().to_vec()),
            Attribute::Id(id_hash(id)),
        ])?)
    }

    fn find_own(&self, s: &Session, id: &KeyId) -> Result<Option<ObjectHandle>, Fail> {
        let mut found = None;
        for h in self.own_objects(s, id)? {
            let c = class(&attributes(s, h, &[AttributeType::Class])?);
            if matches!(c, Some(ObjectClass::PRIVATE_KEY | ObjectClass::SECRET_KEY)) {
                if found.is_some() {
                    tracing::warn!(key = %id, "the token holds more than one key for this id; using the first");
                    break;
                }
                found = Some(h);
            }
        }
        Ok(found)
    }

    fn find_preloaded(
        &self,
        s: &Session,
        id: &KeyId,
        uri: &Pkcs11Uri,
    ) -> Result<Option<ObjectHandle>, Fail> {
        let classes: &[ObjectClass] = match uri.object_type {
            Some(ObjectType::Private) => &[ObjectClass::PRIVATE_KEY],
            Some(ObjectType::SecretKey) => &[ObjectClass::SECRET_KEY],
            _ => &[ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY],
        };
        let mut found = Vec::new();
        for c in classes {
            let mut template = vec![Attribute::Token(true), Attribute::Class(*c)];
            if let Some(label) = &uri.object {
                template.push(Attribute::Label(label.as_bytes().to_vec()));
            }
            if let Some(cka_id) = &uri.id {
                template.push(Attribute::Id(cka_id.clone()));
            }
            found.extend(s.find_objects(&template)?);
        }
        match found.as_slice() {
            [] => Err(KeyError::Backend(format!(
                "preloaded key {id:?}: no key on token {:?} matches its URI",
                self.pool.label()
            ))
            .into()),
            [h] => Ok(Some(*h)),
            more => Err(KeyError::Backend(format!(
                "preloaded key {id:?}: {} keys on token {:?} match its URI; add id= or type=",
                more.len(),
                self.pool.label()
            ))
            .into()),
        }
    }

    /// Reads what the key is and, for key pairs, its public key.
    fn describe(&self, s: &Session, id: &KeyId, h: ObjectHandle) -> Result<Entry, Fail> {
        let attrs = attributes(s, h, KIND_ATTRS)?;
        let kind = kind_of(&attrs).ok_or_else(|| {
            KeyError::Backend(format!(
                "the token object of key {id:?} is not a key edgesec can use (class {:?}, type {:?})",
                class(&attrs),
                key_type(&attrs)
            ))
        })?;
        let public = match kind {
            KeyKind::Symmetric(_) => None,
            KeyKind::KeyPair(alg) => Some(self.public_data(s, id, alg, &attrs)?),
        };
        Ok(Entry {
            kind,
            handle: h,
            public,
        })
    }

    /// The public half of a key pair: RSA from the private object's modulus and exponent, EC and
    /// Ed25519 from the public key object with the same `CKA_ID` (or label).
    fn public_data(
        &self,
        s: &Session,
        id: &KeyId,
        alg: KeyPairAlgorithm,
        private: &[Attribute],
    ) -> Result<PublicData, Fail> {
        let missing = |what: &str| {
            Fail::Key(KeyError::Backend(format!(
                "key {id:?} on the token has no readable {what}"
            )))
        };
        if matches!(alg, KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096) {
            let n = bytes(private, AttributeType::Modulus).ok_or_else(|| missing("modulus"))?;
            let e = bytes(private, AttributeType::PublicExponent)
                .ok_or_else(|| missing("public exponent"))?;
            let raw = der::rsa_public_key(n, e);
            return Ok(PublicData {
                spki: der::rsa_spki(&raw),
                raw,
            });
        }
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        match (
            bytes(private, AttributeType::Id),
            bytes(private, AttributeType::Label),
        ) {
            (Some(cka_id), _) if !cka_id.is_empty() => template.push(Attribute::Id(cka_id.into())),
            (_, Some(label)) if !label.is_empty() => template.push(Attribute::Label(label.into())),
            _ => {
                return Err(missing(
                    "public key object (it has neither CKA_ID nor label)",
                ));
            }
        }
        let public = *s
            .find_objects(&template)?
            .first()
            .ok_or_else(|| missing("public key object"))?;
        let attrs = attributes(s, public, &[AttributeType::EcPoint])?;
        let point = bytes(&attrs, AttributeType::EcPoint).ok_or_else(|| missing("EC point"))?;
        let (len, curve) = match alg {
            KeyPairAlgorithm::EcP256 => (65, der::OID_P256),
            KeyPairAlgorithm::EcP384 => (97, der::OID_P384),
            _ => (32, der::OID_ED25519),
        };
        let raw = der::ec_point(point, len).ok_or_else(|| missing("EC point of the right size"))?;
        let spki = if alg == KeyPairAlgorithm::Ed25519 {
            der::ed25519_spki(&raw)
        } else {
            der::ec_spki(curve, &raw)
        };
        Ok(PublicData { spki, raw })
    }

    /// Every edgesec key on the token, and every preloaded key, in id order.
    pub(crate) fn list_keys(&self) -> crate::Result<Vec<KeyInfo>> {
        let mut keys = self.run("list", |s| {
            logged_in(s)?;
            let mut keys = Vec::new();
            for c in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
                for h in s.find_objects(&[Attribute::Token(true), Attribute::Class(c)])? {
                    let attrs = attributes(s, h, KIND_ATTRS)?;
                    let Some(label) = bytes(&attrs, AttributeType::Label) else {
                        continue;
                    };
                    let Some(id) = std::str::from_utf8(label)
                        .ok()
                        .and_then(|l| KeyId::new(l).ok())
                    else {
                        continue;
                    };
                    if bytes(&attrs, AttributeType::Id) != Some(&id_hash(&id))
                        || self.preloaded.contains_key(&id)
                    {
                        continue;
                    }
                    match kind_of(&attrs) {
                        Some(kind) => keys.push(KeyInfo { id, kind }),
                        None => {
                            tracing::warn!(key = %id, "skipping a token object edgesec cannot use")
                        }
                    }
                }
            }
            Ok(keys)
        })?;
        for id in self.preloaded.keys() {
            match self.run("list", |s| self.entry(s, id)) {
                Ok(e) => keys.push(KeyInfo {
                    id: id.clone(),
                    kind: e.kind,
                }),
                Err(e) => tracing::warn!(key = %id, error = %e, "a preloaded key is not usable"),
            }
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys.dedup_by(|a, b| a.id == b.id);
        Ok(keys)
    }

    /// Destroys every object of the key `id`. Preloaded keys belong to whoever made them and
    /// are refused.
    pub(crate) fn destroy(&self, id: &KeyId) -> crate::Result<()> {
        if self.preloaded.contains_key(id) {
            return Err(KeyError::InvalidInput(format!(
                "{id:?} is a preloaded key, created outside edgesec; it is not deleted through keyd"
            )));
        }
        let _creating = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.run("delete", |s| {
            let objects = self.own_objects(s, id)?;
            if objects.is_empty() {
                return Err(KeyError::NotFound(id.clone()).into());
            }
            for h in objects {
                s.destroy_object(h)?;
            }
            Ok(())
        });
        self.forget(id);
        result
    }
}
