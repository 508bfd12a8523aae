//! Every key service operation, through the real binary and the client the daemon uses.

mod common;

use aws_lc_rs::digest;
use common::{ALL_KEYS, Keyd, rt};
use edgesec_keyd::api::{ImportRequest, KeyType};
use edgesec_keys::{KeyPairAlgorithm, SignAlgorithm, SignInput, SymmetricUsage};

#[test]
fn key_pairs_sign_and_verify_for_every_algorithm() {
    let keyd = Keyd::start(ALL_KEYS);
    let c = &keyd.client;
    rt().block_on(async {
        // every algorithm the backend says it has; the rest must answer 501
        let caps = c.capabilities().await.unwrap();
        for alg in KeyPairAlgorithm::ALL {
            if !caps.key_pair_algorithms.contains(&alg) {
                let e = c.create_key_pair("pair/unsupported", Some(alg)).await;
                assert_eq!(e.unwrap_err().status().map(|s| s.as_u16()), Some(501));
                continue;
            }
            let id = format!("pair/{alg}");
            let h = c.create_key_pair(&id, Some(alg)).await.unwrap();
            assert_eq!(
                (h.key_id.as_str(), h.key_type, h.algorithm.as_str()),
                (id.as_str(), KeyType::KeyPair, alg.as_str())
            );
            let pk = c.public_key(&h.key_handle).await.unwrap();
            assert_eq!(pk.algorithm, alg);
            assert!(pk.pem.contains("BEGIN PUBLIC KEY"));
            // load gives a new handle for the same key
            let loaded = c.load_key_pair(&id).await.unwrap();
            assert_ne!(loaded.key_handle, h.key_handle);
            assert_eq!(
                c.public_key(&loaded.key_handle).await.unwrap().spki,
                pk.spki
            );
            for &sa in alg.sign_algorithms() {
                if !caps.sign_algorithms.contains(&sa) {
                    continue;
                }
                let sig = c
                    .sign(&h.key_handle, sa, SignInput::Message(b"msg"))
                    .await
                    .unwrap();
                assert!(
                    c.verify(&loaded.key_handle, sa, SignInput::Message(b"msg"), &sig)
                        .await
                        .unwrap()
                );
                assert!(
                    !c.verify(&h.key_handle, sa, SignInput::Message(b"other"), &sig)
                        .await
                        .unwrap()
                );
                if let Some(n) = sa.digest_len() {
                    let d = if n == 32 {
                        digest::digest(&digest::SHA256, b"msg")
                    } else {
                        digest::digest(&digest::SHA384, b"msg")
                    };
                    let dsig = c
                        .sign(&h.key_handle, sa, SignInput::Digest(d.as_ref()))
                        .await
                        .unwrap();
                    assert!(
                        c.verify(&h.key_handle, sa, SignInput::Message(b"msg"), &dsig)
                            .await
                            .unwrap(),
                        "{sa}"
                    );
                }
            }
        }
    });
}

#[test]
fn symmetric_keys_derivation_and_aead() {
    let keyd = Keyd::start(ALL_KEYS);
    let c = &keyd.client;
    rt().block_on(async {
        let caps = c.capabilities().await.unwrap();
        if !(caps.derive && caps.aead && caps.symmetric_usages.len() == 2) {
            eprintln!(
                "skipping: the {} backend lacks HMAC, derivation or AEAD",
                caps.backend
            );
            return;
        }
        let mac = c
            .create_key("device", SymmetricUsage::HmacSha256)
            .await
            .unwrap();
        assert_eq!(
            (mac.key_type, mac.algorithm.as_str()),
            (KeyType::Symmetric, "hmac-sha256")
        );
        let tag = c
            .sign(
                &mac.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(b"data"),
            )
            .await
            .unwrap();
        assert_eq!(tag.len(), 32);
        assert!(
            c.verify(
                &mac.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(b"data"),
                &tag
            )
            .await
            .unwrap()
        );

        let child = c.derive(&mac.key_handle, b"mod:gen:primary").await.unwrap();
        assert_eq!(child.key_type, KeyType::Derived);
        let bytes = c.export_derived(&child.key_handle).await.unwrap();
        // the child is HMAC(parent, label) ...
        let expected = c
            .sign(
                &mac.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(b"mod:gen:primary"),
            )
            .await
            .unwrap();
        assert_eq!(*bytes, expected);
        // ... and signs like a plain HMAC key with those bytes
        let sig = c
            .sign(
                &child.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(b"sr\nse"),
            )
            .await
            .unwrap();
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes);
        assert_eq!(sig, aws_lc_rs::hmac::sign(&k, b"sr\nse").as_ref());

        let aes = c
            .create_key("enc", SymmetricUsage::Aes256Gcm)
            .await
            .unwrap();
        let ct = c
            .encrypt(&aes.key_handle, b"secret", b"m1:g1")
            .await
            .unwrap();
        assert_eq!(
            &*c.decrypt(&aes.key_handle, &ct, b"m1:g1").await.unwrap(),
            b"secret"
        );
        let err = c.decrypt(&aes.key_handle, &ct, b"m1:g2").await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
        let ct = c.encrypt(&child.key_handle, b"x", b"").await.unwrap();
        assert_eq!(
            &*c.decrypt(&child.key_handle, &ct, b"").await.unwrap(),
            b"x"
        );
        assert!(c.load_key("enc").await.is_ok());
        // a symmetric key is not a key pair, and the other way round
        assert_eq!(
            c.load_key_pair("enc")
                .await
                .unwrap_err()
                .status()
                .map(|s| s.as_u16()),
            Some(404)
        );
    });
}

#[test]
fn import_delete_list_and_capabilities() {
    let keyd = Keyd::start(ALL_KEYS);
    let c = &keyd.client;
    let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap();
    let der = kp.to_pkcs8v1().unwrap().as_ref().to_vec();
    let pem = edgesec_keys::pem_encode("PRIVATE KEY", &der);
    let file = keyd.dir.path().join("import.pem");
    std::fs::write(&file, &pem).unwrap();
    if common::backend() == "tpm" {
        // A TPM-made key never exists outside the TPM: key pairs cannot be imported into it
        // (501), symmetric keys can.
        rt().block_on(async {
            let e = c
                .import(&ImportRequest {
                    key_id: "imp/pem".into(),
                    pem: Some(pem.clone()),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(e.status().map(|s| s.as_u16()), Some(501), "{e}");
            c.import(&ImportRequest {
                key_id: "imp/mac".into(),
                key_bytes: Some(vec![9; 32]),
                usage: Some(SymmetricUsage::HmacSha256),
                ..Default::default()
            })
            .await
            .unwrap();
            let caps = c.capabilities().await.unwrap();
            assert!(caps.hardware_backed && caps.import);
        });
        return;
    }
    rt().block_on(async {
        let from_file = ImportRequest {
            key_id: "imp/file".into(),
            uri: Some(format!("file://{}", file.display())),
            ..Default::default()
        };
        let a = c.import(&from_file).await.unwrap();
        let b = c
            .import(&ImportRequest {
                key_id: "imp/pem".into(),
                pem: Some(pem.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        let d = c
            .import(&ImportRequest {
                key_id: "imp/der".into(),
                key_bytes: Some(der.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        let s = c
            .import(&ImportRequest {
                key_id: "imp/mac".into(),
                key_bytes: Some(vec![9; 32]),
                usage: Some(SymmetricUsage::HmacSha256),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(s.algorithm, "hmac-sha256");
        let pa = c.public_key(&a.key_handle).await.unwrap().spki;
        assert_eq!(pa, c.public_key(&b.key_handle).await.unwrap().spki);
        assert_eq!(pa, c.public_key(&d.key_handle).await.unwrap().spki);
        // importing over an existing id is a conflict, and changes nothing
        let again = c
            .import(&ImportRequest {
                key_id: "imp/pem".into(),
                pem: Some(pem.clone()),
                ..Default::default()
            })
            .await;
        assert_eq!(again.unwrap_err().status().map(|s| s.as_u16()), Some(409));

        let ids: Vec<String> = c
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(
            ids,
            ["imp/der", "imp/file", "imp/mac", "imp/pem"],
            "keyd's own handle key is never listed"
        );
        c.delete(&d.key_handle).await.unwrap();
        assert_eq!(
            c.public_key(&d.key_handle)
                .await
                .unwrap_err()
                .status()
                .map(|s| s.as_u16()),
            Some(404)
        );
        assert_eq!(c.list().await.unwrap().len(), 3);

        let caps = c.capabilities().await.unwrap();
        assert_eq!(caps.backend, common::backend());
        assert!(caps.derive && caps.aead && caps.import);
        assert_eq!(caps.hardware_backed, common::backend() != "soft");
        if common::backend() == "soft" {
            assert_eq!(caps.key_pair_algorithms.len(), 5);
        }
    });
}
