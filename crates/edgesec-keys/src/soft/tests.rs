use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use zeroize::Zeroizing;

use super::*;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn store() -> (tempfile::TempDir, SoftKeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SoftKeyStore::open(&dir.path().join("store")).unwrap();
    (dir, s)
}

fn stored(s: &str) -> KeyRef {
    KeyRef::Stored(id(s))
}

#[test]
fn key_pairs_of_every_algorithm_sign_and_verify() {
    let (_d, s) = store();
    for alg in KeyPairAlgorithm::ALL {
        let name = format!("kp-{alg}");
        let info = s.create_key_pair(&id(&name), alg).unwrap();
        assert_eq!(info.kind, KeyKind::KeyPair(alg));
        let pk = s.public_key(&id(&name)).unwrap();
        assert_eq!(pk.algorithm, alg);
        assert!(pk.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        for &sa in alg.sign_algorithms() {
            let msg = b"the message";
            let sig = s.sign(&stored(&name), sa, SignInput::Message(msg)).unwrap();
            assert!(
                s.verify(&stored(&name), sa, SignInput::Message(msg), &sig)
                    .unwrap(),
                "{alg} {sa}"
            );
            assert!(
                !s.verify(&stored(&name), sa, SignInput::Message(b"other"), &sig)
                    .unwrap()
            );
            if let Some(n) = sa.digest_len() {
                let d = if n == 32 {
                    digest::digest(&digest::SHA256, msg)
                } else {
                    digest::digest(&digest::SHA384, msg)
                };
                let dsig = s
                    .sign(&stored(&name), sa, SignInput::Digest(d.as_ref()))
                    .unwrap();
                // a digest signature is a signature over the message, and the other way round
                assert!(
                    s.verify(&stored(&name), sa, SignInput::Message(msg), &dsig)
                        .unwrap(),
                    "{alg} {sa}"
                );
                assert!(
                    s.verify(&stored(&name), sa, SignInput::Digest(d.as_ref()), &sig)
                        .unwrap(),
                    "{alg} {sa}"
                );
            }
        }
    }
}

#[test]
fn create_is_create_or_load() {
    let (_d, s) = store();
    s.create_key_pair(&id("k"), KeyPairAlgorithm::EcP256)
        .unwrap();
    let first = s.public_key(&id("k")).unwrap();
    // asking again, even for another algorithm, returns the stored key as it is
    let again = s
        .create_key_pair(&id("k"), KeyPairAlgorithm::Ed25519)
        .unwrap();
    assert_eq!(again.kind, KeyKind::KeyPair(KeyPairAlgorithm::EcP256));
    assert_eq!(s.public_key(&id("k")).unwrap(), first);
}

#[test]
fn algorithm_must_fit_the_key() {
    let (_d, s) = store();
    s.create_key_pair(&id("ec"), KeyPairAlgorithm::EcP256)
        .unwrap();
    s.create_key_pair(&id("ed"), KeyPairAlgorithm::Ed25519)
        .unwrap();
    s.create_symmetric_key(&id("mac"), SymmetricUsage::HmacSha256)
        .unwrap();
    s.create_symmetric_key(&id("aes"), SymmetricUsage::Aes256Gcm)
        .unwrap();
    let m = SignInput::Message(b"x");
    for (key, alg) in [
        ("ec", SignAlgorithm::RsaPssSha256),
        ("ec", SignAlgorithm::EcdsaSha384),
        ("ec", SignAlgorithm::HmacSha256),
        ("mac", SignAlgorithm::EcdsaSha256),
        ("aes", SignAlgorithm::HmacSha256),
    ] {
        assert!(
            matches!(
                s.sign(&stored(key), alg, m),
                Err(KeyError::WrongAlgorithm(_))
            ),
            "{key} {alg}"
        );
    }
    assert!(matches!(
        s.encrypt(&stored("mac"), b"x", b""),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.check_derivable(&id("aes")),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.public_key(&id("aes")),
        Err(KeyError::WrongAlgorithm(_))
    ));
    // digests: wrong length, and an algorithm that signs only messages
    let short = SignInput::Digest(&[0u8; 31]);
    assert!(matches!(
        s.sign(&stored("ec"), SignAlgorithm::EcdsaSha256, short),
        Err(KeyError::InvalidInput(_))
    ));
    let d = SignInput::Digest(&[0u8; 32]);
    assert!(matches!(
        s.sign(&stored("ed"), SignAlgorithm::Ed25519, d),
        Err(KeyError::InvalidInput(_))
    ));
}

#[test]
fn hmac_matches_an_independent_computation() {
    let (_d, s) = store();
    let raw = [7u8; 32];
    s.import(
        &id("mac"),
        ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(raw.to_vec())),
    )
    .unwrap();
    let tag = s
        .sign(
            &stored("mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"data"),
        )
        .unwrap();
    // HMAC-SHA256 from its definition, with only a hash function
    let block = |pad: u8| {
        raw.iter()
            .map(|b| b ^ pad)
            .chain(std::iter::repeat_n(pad, 32))
            .collect::<Vec<_>>()
    };
    let mut inner = block(0x36);
    inner.extend_from_slice(b"data");
    let mut outer = block(0x5c);
    outer.extend_from_slice(digest::digest(&digest::SHA256, &inner).as_ref());
    assert_eq!(tag, digest::digest(&digest::SHA256, &outer).as_ref());
    assert!(
        s.verify(
            &stored("mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"data"),
            &tag
        )
        .unwrap()
    );
    assert!(
        !s.verify(
            &stored("mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"data"),
            &tag[..31]
        )
        .unwrap()
    );
}

#[test]
fn derived_keys_are_hmac_of_the_parent_over_the_label() {
    let (_d, s) = store();
    s.create_symmetric_key(&id("device"), SymmetricUsage::HmacSha256)
        .unwrap();
    s.check_derivable(&id("device")).unwrap();
    let label = b"mod1:gen1:primary";
    let child = KeyRef::Derived {
        base: id("device"),
        label: label.to_vec(),
    };
    let expected = s
        .sign(
            &stored("device"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(label),
        )
        .unwrap();
    let exported = s.export_derived(&id("device"), label).unwrap();
    assert_eq!(*exported, expected);
    let tag = s
        .sign(
            &child,
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"sr\nse"),
        )
        .unwrap();
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &exported);
    assert_eq!(tag, aws_lc_rs::hmac::sign(&k, b"sr\nse").as_ref());
    let other = KeyRef::Derived {
        base: id("device"),
        label: b"mod2:gen1:primary".to_vec(),
    };
    assert_ne!(
        tag,
        s.sign(
            &other,
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"sr\nse")
        )
        .unwrap()
    );
    // derived keys encrypt too, bound to their label
    let ct = s.encrypt(&child, b"secret", b"aad").unwrap();
    assert_eq!(&*s.decrypt(&child, &ct, b"aad").unwrap(), b"secret");
    assert!(matches!(
        s.decrypt(&other, &ct, b"aad"),
        Err(KeyError::DecryptFailed)
    ));
    assert!(matches!(
        s.export_derived(&id("device"), b""),
        Err(KeyError::InvalidInput(_))
    ));
}

#[test]
fn aead_round_trips_and_rejects_any_change() {
    let (_d, s) = store();
    s.create_symmetric_key(&id("aes"), SymmetricUsage::Aes256Gcm)
        .unwrap();
    let k = stored("aes");
    let ct = s.encrypt(&k, b"plain text", b"module:gen").unwrap();
    assert_ne!(
        ct,
        s.encrypt(&k, b"plain text", b"module:gen").unwrap(),
        "nonces are fresh"
    );
    assert_eq!(&*s.decrypt(&k, &ct, b"module:gen").unwrap(), b"plain text");
    assert!(matches!(
        s.decrypt(&k, &ct, b"module:other"),
        Err(KeyError::DecryptFailed)
    ));
    let mut flipped = ct.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        s.decrypt(&k, &flipped, b"module:gen"),
        Err(KeyError::DecryptFailed)
    ));
    for n in [0, 1, 12, ct.len() - 1] {
        assert!(
            matches!(
                s.decrypt(&k, &ct[..n], b"module:gen"),
                Err(KeyError::DecryptFailed)
            ),
            "{n}"
        );
    }
}

fn p256_pkcs8() -> Vec<u8> {
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    kp.to_pkcs8v1().unwrap().as_ref().to_vec()
}

#[test]
fn import_pem_der_and_raw_keys() {
    let (_d, s) = store();
    let der = p256_pkcs8();
    let pem = crate::pem_encode("PRIVATE KEY", &der);
    s.import(
        &id("pem"),
        ImportMaterial::Pem(Zeroizing::new(pem.into_bytes())),
    )
    .unwrap();
    s.import(
        &id("der"),
        ImportMaterial::Pkcs8Der(Zeroizing::new(der.clone())),
    )
    .unwrap();
    // both hold the same key: same public key
    assert_eq!(
        s.public_key(&id("pem")).unwrap(),
        s.public_key(&id("der")).unwrap()
    );
    let expected = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der).unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    let spki = expected.public_key().as_der().unwrap();
    assert_eq!(s.public_key(&id("pem")).unwrap().spki_der, spki.as_ref());

    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa_der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = rsa.as_der().unwrap();
    let info = s
        .import(
            &id("rsa"),
            ImportMaterial::Pkcs8Der(Zeroizing::new(rsa_der.as_ref().to_vec())),
        )
        .unwrap();
    assert_eq!(info.kind, KeyKind::KeyPair(KeyPairAlgorithm::Rsa2048));

    assert!(matches!(
        s.import(&id("pem"), ImportMaterial::Pkcs8Der(Zeroizing::new(der))),
        Err(KeyError::AlreadyExists(_))
    ));
    for bad in [
        "not pem at all",
        "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    ] {
        let r = s.import(
            &id("bad"),
            ImportMaterial::Pem(Zeroizing::new(bad.as_bytes().to_vec())),
        );
        assert!(matches!(r, Err(KeyError::InvalidInput(_))), "{bad:?}");
    }
    for (usage, len) in [
        (SymmetricUsage::HmacSha256, 15),
        (SymmetricUsage::HmacSha256, 129),
        (SymmetricUsage::Aes256Gcm, 16),
    ] {
        let r = s.import(
            &id("bad"),
            ImportMaterial::Symmetric(usage, Zeroizing::new(vec![1; len])),
        );
        assert!(
            matches!(r, Err(KeyError::InvalidInput(_))),
            "{usage:?} {len}"
        );
    }
    // IoT Hub keys of other lengths are fine for HMAC
    s.import(
        &id("hub-key"),
        ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(vec![1; 64])),
    )
    .unwrap();
    assert!(
        matches!(s.key_info(&id("bad")), Err(KeyError::NotFound(_))),
        "failed imports store nothing"
    );
}

#[test]
fn delete_and_list() {
    let (_d, s) = store();
    s.create_key_pair(&id("b"), KeyPairAlgorithm::EcP256)
        .unwrap();
    s.create_symmetric_key(&id("a/x"), SymmetricUsage::HmacSha256)
        .unwrap();
    let ids: Vec<_> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|k| (k.id.to_string(), k.kind))
        .collect();
    assert_eq!(
        ids,
        [
            (
                "a/x".to_string(),
                KeyKind::Symmetric(SymmetricUsage::HmacSha256)
            ),
            ("b".to_string(), KeyKind::KeyPair(KeyPairAlgorithm::EcP256)),
        ]
    );
    s.delete(&id("b")).unwrap();
    assert!(matches!(s.key_info(&id("b")), Err(KeyError::NotFound(_))));
    assert!(matches!(
        s.sign(
            &stored("b"),
            SignAlgorithm::EcdsaSha256,
            SignInput::Message(b"x")
        ),
        Err(KeyError::NotFound(_))
    ));
    assert!(matches!(s.delete(&id("b")), Err(KeyError::NotFound(_))));
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn keys_survive_reopening_and_the_store_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = SoftKeyStore::open(&path).unwrap();
    s.create_key_pair(&id("k"), KeyPairAlgorithm::Ed25519)
        .unwrap();
    let pk = s.public_key(&id("k")).unwrap();
    let err = SoftKeyStore::open(&path)
        .err()
        .expect("a second open must fail")
        .to_string();
    assert!(err.contains("in use by another process"), "{err}");
    drop(s);
    let s = SoftKeyStore::open(&path).unwrap();
    assert_eq!(s.public_key(&id("k")).unwrap(), pk);
}

#[test]
fn a_corrupted_key_is_named_and_the_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let s = SoftKeyStore::open(&path).unwrap();
        for name in ["good", "trunc", "flip", "swap"] {
            s.create_key_pair(&id(name), KeyPairAlgorithm::EcP256)
                .unwrap();
        }
    }
    let file = |name: &str| {
        let s = SoftKeyStore::open(&path).unwrap();
        s.path_of(&id(name))
    };
    let (trunc, flip, swap, good) = (file("trunc"), file("flip"), file("swap"), file("good"));
    let bytes = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&flip).unwrap();
    let mid = bytes.len() - 20;
    bytes[mid] ^= 0x40;
    std::fs::write(&flip, bytes).unwrap();
    std::fs::copy(&good, &swap).unwrap(); // another key's file under this key's name

    let s = SoftKeyStore::open(&path).unwrap();
    for name in ["trunc", "flip", "swap"] {
        match s.sign(
            &stored(name),
            SignAlgorithm::EcdsaSha256,
            SignInput::Message(b"x"),
        ) {
            Err(KeyError::Corrupted(k)) => assert_eq!(k.as_str(), name),
            other => panic!("{name}: {other:?}"),
        }
    }
    s.sign(
        &stored("good"),
        SignAlgorithm::EcdsaSha256,
        SignInput::Message(b"x"),
    )
    .unwrap();
    // creating over a corrupted key does not silently replace it
    assert!(matches!(
        s.create_key_pair(&id("flip"), KeyPairAlgorithm::EcP256),
        Err(KeyError::Corrupted(_))
    ));
}

#[test]
fn a_store_others_can_change_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(SoftKeyStore::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = SoftKeyStore::open(&path).err().unwrap().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("0777"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();

    let master = path.join("master.key");
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SoftKeyStore::open(&path).err().unwrap().to_string();
    assert!(err.contains("master.key") && err.contains("0644"), "{err}");
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();

    let keys = path.join("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o770)).unwrap();
    let err = SoftKeyStore::open(&path).err().unwrap().to_string();
    assert!(err.contains("keys"), "{err}");
}

#[test]
fn concurrent_creators_all_get_the_same_key() {
    let (_d, s) = store();
    let s = Arc::new(s);
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.create_key_pair(&id("shared"), KeyPairAlgorithm::EcP256)
                    .unwrap();
                s.public_key(&id("shared")).unwrap()
            })
        })
        .collect();
    let keys: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(s.list().unwrap().len(), 1);
}
