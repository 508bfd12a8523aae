//! [`RoutedKeyStore`]: several backends behind one [`KeyStore`], chosen per key id.
//!
//! A device with a small secure element keeps its CA and device keys there and everything else
//! in the software store: rules map key id patterns to named backends, the first matching rule
//! wins, and ids no rule names go to the default backend. A derived key lives where its base key
//! does.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{
    Capabilities, ImportMaterial, KeyError, KeyId, KeyInfo, KeyPairAlgorithm, KeyRef, KeyStore,
    PublicKey, Result, SignAlgorithm, SignInput, SymmetricUsage, TpmPublicKeys,
};

/// Matches `text` against a pattern of literal characters, `*` (any run of characters) and `?`
/// (one character), in linear time.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Named backends and the rules that choose between them.
pub struct RoutedKeyStore {
    backends: Vec<(String, Arc<dyn KeyStore>)>,
    /// (pattern, index into `backends`), in order.
    rules: Vec<(String, usize)>,
    default: usize,
}

impl RoutedKeyStore {
    /// `rules` are (key id pattern, backend name); `default` names the backend of every other id.
    /// An unknown backend name is [`KeyError::InvalidInput`].
    pub fn new(
        backends: Vec<(String, Arc<dyn KeyStore>)>,
        rules: Vec<(String, String)>,
        default: &str,
    ) -> Result<Self> {
        let index = |name: &str| {
            backends
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| KeyError::InvalidInput(format!("no key store backend {name:?}")))
        };
        let default = index(default)?;
        let rules = rules
            .into_iter()
            .map(|(pattern, name)| Ok((pattern, index(&name)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(RoutedKeyStore {
            backends,
            rules,
            default,
        })
    }

    fn index_of(&self, id: &KeyId) -> usize {
        self.rules
            .iter()
            .find(|(pattern, _)| glob(pattern, id.as_str()))
            .map_or(self.default, |(_, i)| *i)
    }

    /// The name of the backend that holds (or would hold) the key `id`.
    pub fn backend_for(&self, id: &KeyId) -> &str {
        &self.backends[self.index_of(id)].0
    }

    fn pick(&self, id: &KeyId) -> &dyn KeyStore {
        &*self.backends[self.index_of(id)].1
    }
}

fn union<T: PartialEq + Copy>(parts: &[Capabilities], f: impl Fn(&Capabilities) -> &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for p in parts {
        for x in f(p) {
            if !out.contains(x) {
                out.push(*x);
            }
        }
    }
    out
}

impl KeyStore for RoutedKeyStore {
    fn capabilities(&self) -> Capabilities {
        let parts: Vec<Capabilities> = self
            .backends
            .iter()
            .enumerate()
            .map(|(i, (_, store))| {
                let mut c = store.capabilities();
                c.keys = self
                    .rules
                    .iter()
                    .filter(|(_, b)| *b == i)
                    .map(|(p, _)| p.clone())
                    .collect();
                if i == self.default {
                    c.keys.push("*".into());
                }
                c.backends.clear();
                c
            })
            .collect();
        let mut key_pair_algorithms = union(&parts, |c| &c.key_pair_algorithms);
        key_pair_algorithms.sort_by_key(|a| KeyPairAlgorithm::ALL.iter().position(|x| x == a));
        let mut sign_algorithms = union(&parts, |c| &c.sign_algorithms);
        sign_algorithms.sort_by_key(|a| SignAlgorithm::ALL.iter().position(|x| x == a));
        let any = |f: fn(&Capabilities) -> bool| parts.iter().any(f);
        let all = |f: fn(&Capabilities) -> bool| parts.iter().all(f);
        Capabilities {
            backend: "routed".into(),
            key_pair_algorithms,
            sign_algorithms,
            symmetric_usages: union(&parts, |c| &c.symmetric_usages),
            digest_signing: all(|c| c.digest_signing),
            derive: any(|c| c.derive),
            export_derived: any(|c| c.export_derived),
            aead: any(|c| c.aead),
            import: any(|c| c.import),
            delete: any(|c| c.delete),
            hardware_backed: all(|c| c.hardware_backed),
            keys: Vec::new(),
            backends: parts,
        }
    }

    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        self.pick(id).create_key_pair(id, algorithm)
    }

    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        self.pick(id).create_symmetric_key(id, usage)
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        self.pick(id).key_info(id)
    }

    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        self.pick(id).public_key(id)
    }

    fn sign(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        self.pick(key.base_id()).sign(key, algorithm, input)
    }

    fn verify(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        self.pick(key.base_id())
            .verify(key, algorithm, input, signature)
    }

    fn check_derivable(&self, base: &KeyId) -> Result<()> {
        self.pick(base).check_derivable(base)
    }

    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.pick(base).export_derived(base, label)
    }

    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.pick(key.base_id()).encrypt(key, plaintext, aad)
    }

    fn decrypt(&self, key: &KeyRef, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.pick(key.base_id()).decrypt(key, ciphertext, aad)
    }

    fn import(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        self.pick(id).import(id, material)
    }

    fn delete(&self, id: &KeyId) -> Result<()> {
        self.pick(id).delete(id)
    }

    /// The first backend's that has a TPM (a store holds at most one).
    fn tpm_public_keys(&self) -> Result<TpmPublicKeys> {
        for (_, store) in &self.backends {
            match store.tpm_public_keys() {
                Err(KeyError::NotSupported(_)) => continue,
                other => return other,
            }
        }
        Err(KeyError::NotSupported("TPM attestation"))
    }

    fn import_tpm_auth_key(&self, id: &KeyId, blob: &[u8]) -> Result<KeyInfo> {
        self.pick(id).import_tpm_auth_key(id, blob)
    }

    /// Every backend's keys that the rules route to that backend. A key a backend holds under an
    /// id now routed elsewhere (the config changed) is left out, with a warning: it cannot be
    /// used through this store.
    fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for (i, (name, store)) in self.backends.iter().enumerate() {
            let used = i == self.default || self.rules.iter().any(|(_, b)| *b == i);
            if !used {
                continue;
            }
            for k in store.list()? {
                if self.index_of(&k.id) == i {
                    keys.push(k);
                } else {
                    tracing::warn!(key = %k.id, backend = %name, routed_to = %self.backend_for(&k.id), "a key is stored on a backend its id is no longer routed to; it is not used");
                }
            }
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }
}

#[cfg(all(test, feature = "soft"))]
mod tests {
    use super::*;
    use crate::soft::SoftKeyStore;
    use crate::{KeyKind, KeyPairAlgorithm};

    #[test]
    fn glob_matches() {
        for (p, t, m) in [
            ("*", "anything", true),
            ("*", "", true),
            ("ca/*", "ca/edge", true),
            ("ca/*", "cab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-id", "device-id", true),
            ("device-id", "device-id2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob(p, t), m, "{p} {t}");
        }
    }

    fn id(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_the_rest_goes_to_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let a: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open(&dir.path().join("a")).unwrap());
        let b: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open(&dir.path().join("b")).unwrap());
        let routed = RoutedKeyStore::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            vec![
                ("ca/special".into(), "a".into()),
                ("ca/*".into(), "b".into()),
            ],
            "a",
        )
        .unwrap();
        assert_eq!(routed.backend_for(&id("ca/root")), "b");
        assert_eq!(routed.backend_for(&id("ca/special")), "a");
        assert_eq!(routed.backend_for(&id("other")), "a");
        routed
            .create_key_pair(&id("ca/root"), KeyPairAlgorithm::EcP256)
            .unwrap();
        routed
            .create_symmetric_key(&id("other"), SymmetricUsage::HmacSha256)
            .unwrap();
        assert!(b.key_info(&id("ca/root")).is_ok());
        assert!(matches!(
            a.key_info(&id("ca/root")),
            Err(KeyError::NotFound(_))
        ));
        assert!(a.key_info(&id("other")).is_ok());
        // a derived key is used where its base lives
        let child = KeyRef::Derived {
            base: id("other"),
            label: b"l".to_vec(),
        };
        let tag = routed
            .sign(&child, SignAlgorithm::HmacSha256, SignInput::Message(b"m"))
            .unwrap();
        assert_eq!(
            tag,
            a.sign(&child, SignAlgorithm::HmacSha256, SignInput::Message(b"m"))
                .unwrap()
        );
        // a key stranded on a backend its id no longer routes to is not listed
        a.create_key_pair(&id("ca/stranded"), KeyPairAlgorithm::EcP256)
            .unwrap();
        let listed: Vec<_> = routed.list().unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(listed, [id("ca/root"), id("other")]);
        assert_eq!(
            routed.key_info(&id("ca/root")).unwrap().kind,
            KeyKind::KeyPair(KeyPairAlgorithm::EcP256)
        );

        let caps = routed.capabilities();
        assert_eq!(caps.backend, "routed");
        assert_eq!(caps.backends.len(), 2);
        assert_eq!(caps.backends[0].keys, ["ca/special", "*"]);
        assert_eq!(caps.backends[1].keys, ["ca/*"]);
        let json = serde_json::to_value(&caps).unwrap();
        assert_eq!(json["backends"][1]["keys"][0], "ca/*");
        assert!(
            serde_json::to_value(&caps.backends[0]).unwrap()["backends"].is_null(),
            "a part has no parts of its own"
        );
        assert!(RoutedKeyStore::new(vec![("a".into(), a)], vec![], "nope").is_err());
    }
}
