//! Every operation on a SoftHSM token, checked against independent computations.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use zeroize::Zeroizing;

use super::super::objects::attributes;
use super::*;
use crate::soft::SoftKeyStore;
use crate::{KeyKind, der};

/// The verifier an outside party would use for a public key from the store.
fn independent_verify(pk: &PublicKey, alg: SignAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
    let verifier: &dyn signature::VerificationAlgorithm = match alg {
        SignAlgorithm::EcdsaSha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignAlgorithm::EcdsaSha384 => &signature::ECDSA_P384_SHA384_ASN1,
        SignAlgorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SignAlgorithm::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        SignAlgorithm::Ed25519 => &signature::ED25519,
        SignAlgorithm::HmacSha256 => unreachable!(),
    };
    // aws-lc's verifiers take the key inside the SPKI's BIT STRING.
    let mut r = der::Reader(&pk.spki_der);
    let mut spki = der::Reader(r.take(0x30).unwrap());
    spki.take(0x30).unwrap();
    let bits = spki.take(0x03).unwrap();
    UnparsedPublicKey::new(verifier, &bits[1..])
        .verify(msg, sig)
        .is_ok()
}

#[test]
fn every_algorithm_signs_on_the_token_and_keys_cannot_be_exported() {
    let Some((_d, config)) = token("algs") else {
        return;
    };
    let s = Pkcs11KeyStore::open(&config).unwrap();
    let msg = b"signed on the token";
    for alg in s.capabilities().key_pair_algorithms {
        let name = format!("kp/{alg}");
        let info = s.create_key_pair(&id(&name), alg).unwrap();
        assert_eq!(info.kind, KeyKind::KeyPair(alg));
        let pk = s.public_key(&id(&name)).unwrap();
        assert_eq!(pk.algorithm, alg);
        for &sa in alg.sign_algorithms() {
            let sig = s.sign(&stored(&name), sa, SignInput::Message(msg)).unwrap();
            assert!(independent_verify(&pk, sa, msg, &sig), "{alg} {sa}");
            assert!(
                s.verify(&stored(&name), sa, SignInput::Message(msg), &sig)
                    .unwrap()
            );
            assert!(
                !s.verify(&stored(&name), sa, SignInput::Message(b"other"), &sig)
                    .unwrap()
            );
            if let Some(n) = sa.digest_len() {
                let h = if n == 32 {
                    &digest::SHA256
                } else {
                    &digest::SHA384
                };
                let d = digest::digest(h, msg);
                let dsig = s
                    .sign(&stored(&name), sa, SignInput::Digest(d.as_ref()))
                    .unwrap();
                assert!(independent_verify(&pk, sa, msg, &dsig), "digest {alg} {sa}");
            }
        }
        // the private key is on the token, sensitive, and was never extractable
        s.run("test", |session| {
            let objects = s.own_objects(session, &id(&name))?;
            assert_eq!(objects.len(), 2, "a private and a public key object");
            for h in objects {
                let a = attributes(
                    session,
                    h,
                    &[
                        AttributeType::Class,
                        AttributeType::Token,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                        AttributeType::Local,
                    ],
                )?;
                if !a.contains(&Attribute::Class(ObjectClass::PRIVATE_KEY)) {
                    continue;
                }
                for want in [
                    Attribute::Token(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::NeverExtractable(true),
                    Attribute::Local(true),
                ] {
                    assert!(a.contains(&want), "{alg}: {want:?} in {a:?}");
                }
                // C_GetAttributeValue of the secret (CKA_VALUE; an RSA key's is its private
                // exponent) is refused as sensitive and gives no bytes
                let secret = match alg {
                    KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
                        AttributeType::PrivateExponent
                    }
                    _ => AttributeType::Value,
                };
                let info = session.get_attribute_info(h, &[secret])?;
                assert!(
                    matches!(info.as_slice(), [AttributeInfo::Sensitive]),
                    "{alg}: {info:?}"
                );
                assert!(session.get_attributes(h, &[secret])?.is_empty());
            }
            Ok(())
        })
        .unwrap();
    }
    // a key of one algorithm makes no signatures of another
    assert!(matches!(
        s.sign(
            &stored("kp/ec-p256"),
            SignAlgorithm::EcdsaSha384,
            SignInput::Message(b"x")
        ),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.sign(
            &stored("kp/ec-p256"),
            SignAlgorithm::EcdsaSha256,
            SignInput::Digest(&[0; 31])
        ),
        Err(KeyError::InvalidInput(_))
    ));
}

#[test]
fn hmac_derivation_and_aead_match_the_soft_store() {
    let Some((_d, config)) = token("sym") else {
        return;
    };
    let s = Pkcs11KeyStore::open(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let soft = SoftKeyStore::open(&dir.path().join("soft")).unwrap();
    // the same key material in both stores gives the same results
    for store in [&s as &dyn KeyStore, &soft] {
        store
            .import(
                &id("mac"),
                ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(vec![7; 32])),
            )
            .unwrap();
        store
            .import(
                &id("aes"),
                ImportMaterial::Symmetric(SymmetricUsage::Aes256Gcm, Zeroizing::new(vec![9; 32])),
            )
            .unwrap();
    }
    let m = SignInput::Message(b"data");
    let tag = s
        .sign(&stored("mac"), SignAlgorithm::HmacSha256, m)
        .unwrap();
    assert_eq!(
        tag,
        soft.sign(&stored("mac"), SignAlgorithm::HmacSha256, m)
            .unwrap()
    );
    assert!(
        s.verify(&stored("mac"), SignAlgorithm::HmacSha256, m, &tag)
            .unwrap()
    );
    assert!(
        !s.verify(&stored("mac"), SignAlgorithm::HmacSha256, m, &tag[..31])
            .unwrap()
    );

    let child = KeyRef::Derived {
        base: id("mac"),
        label: b"mod:gen:primary".to_vec(),
    };
    s.check_derivable(&id("mac")).unwrap();
    assert_eq!(
        *s.export_derived(&id("mac"), b"mod:gen:primary").unwrap(),
        *soft.export_derived(&id("mac"), b"mod:gen:primary").unwrap()
    );
    let ctag = s.sign(&child, SignAlgorithm::HmacSha256, m).unwrap();
    assert_eq!(
        ctag,
        soft.sign(&child, SignAlgorithm::HmacSha256, m).unwrap()
    );
    assert!(
        s.verify(&child, SignAlgorithm::HmacSha256, m, &ctag)
            .unwrap()
    );

    // AES-GCM on the token writes the soft store's layout: each opens the other's
    let ct = s.encrypt(&stored("aes"), b"secret", b"aad").unwrap();
    assert_eq!(ct.len(), 1 + 12 + 6 + 16);
    assert_eq!(
        &*soft.decrypt(&stored("aes"), &ct, b"aad").unwrap(),
        b"secret"
    );
    let back = soft.encrypt(&stored("aes"), b"other", b"").unwrap();
    assert_eq!(&*s.decrypt(&stored("aes"), &back, b"").unwrap(), b"other");
    assert_ne!(ct, s.encrypt(&stored("aes"), b"secret", b"aad").unwrap());
    let mut flipped = ct.clone();
    *flipped.last_mut().unwrap() ^= 1;
    for (blob, aad) in [
        (&ct[..], &b"other aad"[..]),
        (&flipped[..], b"aad"),
        (&ct[..20], b"aad"),
        (&ct[..0], b"aad"),
    ] {
        assert!(matches!(
            s.decrypt(&stored("aes"), blob, aad),
            Err(KeyError::DecryptFailed)
        ));
    }
    // the token still serves after refusing those
    assert_eq!(&*s.decrypt(&stored("aes"), &ct, b"aad").unwrap(), b"secret");
    // derived keys encrypt too, in the same format
    let dct = s.encrypt(&child, b"x", b"").unwrap();
    assert_eq!(&*soft.decrypt(&child, &dct, b"").unwrap(), b"x");

    // generated keys work the same way
    s.create_symmetric_key(&id("gen-mac"), SymmetricUsage::HmacSha256)
        .unwrap();
    s.create_symmetric_key(&id("gen-aes"), SymmetricUsage::Aes256Gcm)
        .unwrap();
    let ct = s.encrypt(&stored("gen-aes"), b"p", b"a").unwrap();
    assert_eq!(&*s.decrypt(&stored("gen-aes"), &ct, b"a").unwrap(), b"p");
    assert_eq!(
        s.sign(&stored("gen-mac"), SignAlgorithm::HmacSha256, m)
            .unwrap()
            .len(),
        32
    );
    // wrong uses
    assert!(matches!(
        s.encrypt(&stored("gen-mac"), b"x", b""),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.check_derivable(&id("gen-aes")),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.public_key(&id("gen-aes")),
        Err(KeyError::WrongAlgorithm(_))
    ));
    assert!(matches!(
        s.export_derived(&id("mac"), b""),
        Err(KeyError::InvalidInput(_))
    ));
    // SoftHSM wants HMAC keys of 32 bytes or more; a shorter one is refused, and says why
    let e = s
        .import(
            &id("short"),
            ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(vec![1; 16])),
        )
        .unwrap_err();
    assert!(e.to_string().contains("at least 32 bytes"), "{e}");
}

#[test]
fn imported_key_pairs_keep_their_public_key() {
    let Some((_d, config)) = token("import") else {
        return;
    };
    let s = Pkcs11KeyStore::open(&config).unwrap();
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let ec = signature::EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let ec_der = ec.to_pkcs8v1().unwrap().as_ref().to_vec();
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa_der: Pkcs8V1Der<'_> = rsa.as_der().unwrap();
    let ed = signature::Ed25519KeyPair::generate().unwrap();
    let ed_der = ed.to_pkcs8v1().unwrap().as_ref().to_vec();
    for (name, der, pem, sa) in [
        ("ec", ec_der, true, SignAlgorithm::EcdsaSha384),
        (
            "rsa",
            rsa_der.as_ref().to_vec(),
            false,
            SignAlgorithm::RsaPssSha256,
        ),
        ("ed", ed_der, false, SignAlgorithm::Ed25519),
    ] {
        let material = if pem {
            ImportMaterial::Pem(Zeroizing::new(
                crate::pem_encode("PRIVATE KEY", &der).into_bytes(),
            ))
        } else {
            ImportMaterial::Pkcs8Der(Zeroizing::new(der.clone()))
        };
        s.import(&id(name), material).unwrap();
        let pk = s.public_key(&id(name)).unwrap();
        let sig = s.sign(&stored(name), sa, SignInput::Message(b"m")).unwrap();
        assert!(independent_verify(&pk, sa, b"m", &sig), "{name}");
        assert!(matches!(
            s.import(&id(name), ImportMaterial::Pkcs8Der(Zeroizing::new(der))),
            Err(KeyError::AlreadyExists(_))
        ));
    }
    let expected = ec.public_key().as_der().unwrap();
    assert_eq!(s.public_key(&id("ec")).unwrap().spki_der, expected.as_ref());
    let expected = rsa.public_key().as_der().unwrap();
    assert_eq!(
        s.public_key(&id("rsa")).unwrap().spki_der,
        expected.as_ref()
    );
    let expected = ed.public_key().as_der().unwrap();
    assert_eq!(s.public_key(&id("ed")).unwrap().spki_der, expected.as_ref());
}

#[test]
fn create_list_delete() {
    let Some((_d, config)) = token("lifecycle") else {
        return;
    };
    let s = Pkcs11KeyStore::open(&config).unwrap();
    s.create_key_pair(&id("b"), KeyPairAlgorithm::EcP256)
        .unwrap();
    s.create_symmetric_key(&id("a/x"), SymmetricUsage::HmacSha256)
        .unwrap();
    let first = s.public_key(&id("b")).unwrap();
    // create is create-or-load, even for another algorithm
    let again = s
        .create_key_pair(&id("b"), KeyPairAlgorithm::Rsa2048)
        .unwrap();
    assert_eq!(again.kind, KeyKind::KeyPair(KeyPairAlgorithm::EcP256));
    assert_eq!(s.public_key(&id("b")).unwrap(), first);
    let listed: Vec<_> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.kind))
        .collect();
    assert_eq!(
        listed,
        [
            (id("a/x"), KeyKind::Symmetric(SymmetricUsage::HmacSha256)),
            (id("b"), KeyKind::KeyPair(KeyPairAlgorithm::EcP256)),
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
    // a store opened afterwards (keyd restarted) finds the same keys
    drop(s);
    let s = Pkcs11KeyStore::open(&config).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn preloaded_keys_are_used_by_uri_and_never_deleted() {
    let Some((_d, config)) = token("preload") else {
        return;
    };
    // Made beforehand, as pkcs11-tool would: its own label and CKA_ID, nothing edgesec-like.
    let s = Pkcs11KeyStore::open(&config).unwrap();
    s.run("test", |session| {
        let label = Attribute::Label(b"factory-key".to_vec());
        session.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                label.clone(),
                Attribute::Id(vec![0xfa, 0xc7]),
                Attribute::EcParams(der::OID_P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                label,
                Attribute::Id(vec![0xfa, 0xc7]),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
            ],
        )?;
        session.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"factory mac".to_vec()),
            Attribute::Value(vec![3; 32]),
            Attribute::Sign(true),
        ])?;
        Ok(())
    })
    .unwrap();
    drop(s);
    let s = Pkcs11KeyStore::open(&Pkcs11Config {
        preloaded: vec![
            (
                id("device-key-from-factory"),
                "pkcs11:token=preload;object=factory-key;type=private".into(),
            ),
            (id("factory-mac"), "pkcs11:object=factory%20mac".into()),
        ],
        ..config
    })
    .unwrap();
    let pk = s.public_key(&id("device-key-from-factory")).unwrap();
    let sig = s
        .sign(
            &stored("device-key-from-factory"),
            SignAlgorithm::EcdsaSha256,
            SignInput::Message(b"m"),
        )
        .unwrap();
    assert!(independent_verify(
        &pk,
        SignAlgorithm::EcdsaSha256,
        b"m",
        &sig
    ));
    let tag = s
        .sign(
            &stored("factory-mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"m"),
        )
        .unwrap();
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[3; 32]);
    assert_eq!(tag, aws_lc_rs::hmac::sign(&k, b"m").as_ref());
    // create-or-load returns it as it is; import over it and delete are refused
    let info = s
        .create_key_pair(&id("device-key-from-factory"), KeyPairAlgorithm::Rsa2048)
        .unwrap();
    assert_eq!(info.kind, KeyKind::KeyPair(KeyPairAlgorithm::EcP256));
    let e = s
        .delete(&id("device-key-from-factory"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("preloaded"), "{e}");
    let ids: Vec<_> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(ids, ["device-key-from-factory", "factory-mac"]);
}
