//! The TPM backend against a private swtpm per test (skipped when swtpm is missing, except in CI).

use std::process::Command;

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

use super::testing::Swtpm;
use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    swtpm: Swtpm,
    store: TpmKeyStore,
}

fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(&dir.path().join("tpmstate"))?;
    let store = open(&dir, &swtpm);
    Some(Fixture { dir, swtpm, store })
}

fn open(dir: &tempfile::TempDir, swtpm: &Swtpm) -> TpmKeyStore {
    let tpm = Tpm::connect(&TpmConfig {
        tcti: swtpm.tcti(),
        ..Default::default()
    })
    .unwrap();
    TpmKeyStore::open(&dir.path().join("store"), tpm).unwrap()
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

/// Verifies with the `openssl` command: an implementation independent of ours and of the TPM.
fn openssl_verifies(
    dir: &std::path::Path,
    pem: &str,
    alg: SignAlgorithm,
    msg: &[u8],
    sig: &[u8],
) -> bool {
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
    std::fs::write(dir.join("msg"), msg).unwrap();
    std::fs::write(dir.join("sig"), sig).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).arg("dgst");
    cmd.arg(if alg == SignAlgorithm::EcdsaSha384 {
        "-sha384"
    } else {
        "-sha256"
    });
    if alg == SignAlgorithm::RsaPssSha256 {
        cmd.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:auto",
        ]);
    }
    cmd.args(["-verify", "pub.pem", "-signature", "sig", "msg"]);
    cmd.output().unwrap().status.success()
}

#[test]
fn key_pairs_sign_in_the_tpm_and_verify_independently() {
    let Some(f) = fixture() else { return };
    let s = &f.store;
    for alg in KEY_PAIR_ALGORITHMS {
        let k = id(&format!("pair/{alg}"));
        assert_eq!(
            s.create_key_pair(&k, alg).unwrap().kind,
            KeyKind::KeyPair(alg)
        );
        let pem = s.public_key(&k).unwrap().to_pem();
        for &sa in alg.sign_algorithms() {
            let r = KeyRef::Stored(k.clone());
            let sig = s.sign(&r, sa, SignInput::Message(b"hello tpm")).unwrap();
            assert!(
                s.verify(&r, sa, SignInput::Message(b"hello tpm"), &sig)
                    .unwrap(),
                "{sa}"
            );
            assert!(
                !s.verify(&r, sa, SignInput::Message(b"other"), &sig)
                    .unwrap()
            );
            assert!(
                openssl_verifies(f.dir.path(), &pem, sa, b"hello tpm", &sig),
                "{sa} via openssl"
            );
            let d = if sa == SignAlgorithm::EcdsaSha384 {
                digest::digest(&digest::SHA384, b"m")
            } else {
                digest::digest(&digest::SHA256, b"m")
            };
            let dsig = s.sign(&r, sa, SignInput::Digest(d.as_ref())).unwrap();
            assert!(
                s.verify(&r, sa, SignInput::Message(b"m"), &dsig).unwrap(),
                "{sa} digest"
            );
        }
        // An existing key is returned as it is.
        assert_eq!(
            s.create_key_pair(&k, KeyPairAlgorithm::EcP256)
                .unwrap()
                .kind,
            KeyKind::KeyPair(alg)
        );
    }
    assert!(matches!(
        s.create_key_pair(&id("ed"), KeyPairAlgorithm::Ed25519),
        Err(KeyError::NotSupported(_))
    ));
    let keys: Vec<String> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(keys, ["pair/ec-p256", "pair/ec-p384", "pair/rsa-2048"]);
}

#[test]
fn many_keys_in_a_row_never_exhaust_the_tpm_object_slots() {
    let Some(f) = fixture() else { return };
    for i in 0..8 {
        let k = id(&format!("k{i}"));
        f.store
            .create_key_pair(&k, KeyPairAlgorithm::EcP256)
            .unwrap();
        f.store
            .sign(
                &KeyRef::Stored(k),
                SignAlgorithm::EcdsaSha256,
                SignInput::Message(b"x"),
            )
            .unwrap();
    }
}

#[test]
fn hmac_derivation_and_aead() {
    let Some(f) = fixture() else { return };
    let s = &f.store;
    // An imported HMAC key gives the same tags as a software HMAC with the same bytes.
    let bytes = vec![7u8; 64];
    s.import(
        &id("dev"),
        ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(bytes.clone())),
    )
    .unwrap();
    let sw = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
    let dev = KeyRef::Stored(id("dev"));
    let tag = s
        .sign(&dev, SignAlgorithm::HmacSha256, SignInput::Message(b"sas"))
        .unwrap();
    assert_eq!(tag, hmac::sign(&sw, b"sas").as_ref());
    assert!(
        s.verify(
            &dev,
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"sas"),
            &tag
        )
        .unwrap()
    );
    let derived = s.export_derived(&id("dev"), b"module-a").unwrap();
    assert_eq!(&derived[..], hmac::sign(&sw, b"module-a").as_ref());
    let child = KeyRef::Derived {
        base: id("dev"),
        label: b"module-a".to_vec(),
    };
    let ct = s.encrypt(&child, b"secret", b"aad").unwrap();
    assert_eq!(&s.decrypt(&child, &ct, b"aad").unwrap()[..], b"secret");
    assert!(matches!(
        s.decrypt(&child, &ct, b"other"),
        Err(KeyError::DecryptFailed)
    ));
    assert!(matches!(
        s.import(
            &id("dev"),
            ImportMaterial::Symmetric(SymmetricUsage::HmacSha256, Zeroizing::new(bytes))
        ),
        Err(KeyError::AlreadyExists(_))
    ));
    // TPM-generated keys.
    s.create_symmetric_key(&id("mac"), SymmetricUsage::HmacSha256)
        .unwrap();
    s.check_derivable(&id("mac")).unwrap();
    s.create_symmetric_key(&id("aes"), SymmetricUsage::Aes256Gcm)
        .unwrap();
    let aes = KeyRef::Stored(id("aes"));
    let ct = s.encrypt(&aes, b"data", b"").unwrap();
    assert_eq!(&s.decrypt(&aes, &ct, b"").unwrap()[..], b"data");
    assert!(s.check_derivable(&id("aes")).is_err());
    assert!(matches!(
        s.sign(
            &dev,
            SignAlgorithm::HmacSha256,
            SignInput::Message(&[0u8; 2000])
        ),
        Err(KeyError::InvalidInput(_))
    ));
}

#[test]
fn keys_survive_a_reopen_and_cannot_be_used_by_another_tpm() {
    let Some(f) = fixture() else { return };
    f.store
        .create_key_pair(&id("ca"), KeyPairAlgorithm::EcP256)
        .unwrap();
    let pem = f.store.public_key(&id("ca")).unwrap().to_pem();
    assert!(matches!(
        f.store.import(
            &id("x"),
            ImportMaterial::Pem(Zeroizing::new(b"-----BEGIN".to_vec()))
        ),
        Err(KeyError::InvalidInput(_))
    ));
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &rng,
    )
    .unwrap();
    assert!(matches!(
        f.store.import(
            &id("x"),
            ImportMaterial::Pkcs8Der(Zeroizing::new(pkcs8.as_ref().to_vec()))
        ),
        Err(KeyError::NotSupported(_))
    ));
    let Fixture { dir, swtpm, store } = f;
    drop(store);
    let store = open(&dir, &swtpm);
    assert_eq!(store.public_key(&id("ca")).unwrap().to_pem(), pem);
    let r = KeyRef::Stored(id("ca"));
    store
        .sign(&r, SignAlgorithm::EcdsaSha256, SignInput::Message(b"x"))
        .unwrap();
    drop(store);
    // The wrapped blobs are useless on another TPM: the key cannot leave this one.
    let other = Swtpm::start(&dir.path().join("other-tpm")).unwrap();
    let store = open(&dir, &other);
    let e = store
        .sign(&r, SignAlgorithm::EcdsaSha256, SignInput::Message(b"x"))
        .unwrap_err();
    assert!(e.to_string().contains("TPM load a key failed"), "{e}");
}

#[test]
fn sealed_secrets_follow_the_pcr() {
    let Some(f) = fixture() else { return };
    let tpm = f.store.tpm();
    tpm.pcr_reset(23).unwrap();
    tpm.pcr_extend(23, &[1u8; 32]).unwrap();
    let sealed = tpm.seal(b"master key bytes", &[23]).unwrap();
    assert_eq!(
        &tpm.unseal(&sealed, &[23]).unwrap()[..],
        b"master key bytes"
    );
    tpm.pcr_extend(23, &[2u8; 32]).unwrap();
    assert!(matches!(
        tpm.unseal(&sealed, &[23]),
        Err(seal::UnsealError::PcrMismatch)
    ));
    // The owner branch opens it whatever the PCRs hold (the operator's re-seal path).
    assert_eq!(
        &tpm.unseal_as_owner(&sealed).unwrap()[..],
        b"master key bytes"
    );
    tpm.pcr_reset(23).unwrap();
    assert_eq!(tpm.pcr_read(&[23]).unwrap(), vec![(23, [0u8; 32])]);
    tpm.pcr_extend(23, &[1u8; 32]).unwrap();
    let mut expect = [0u8; 64];
    expect[32..].copy_from_slice(&[1u8; 32]);
    let v = digest::digest(&digest::SHA256, &expect);
    assert_eq!(tpm.pcr_read(&[23]).unwrap()[0].1, v.as_ref());
    assert_eq!(
        &tpm.unseal(&sealed, &[23]).unwrap()[..],
        b"master key bytes"
    );
}

#[test]
fn the_owner_branch_needs_the_owner_password_once_one_is_set() {
    use tss_esapi::handles::AuthHandle;
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::Auth;
    let Some(f) = fixture() else { return };
    let tpm = f.store.tpm();
    assert!(
        !tpm.owner_auth_set().unwrap(),
        "swtpm starts with no owner password"
    );
    tpm.pcr_reset(23).unwrap();
    tpm.pcr_extend(23, &[1u8; 32]).unwrap();
    let sealed = tpm.seal(b"master key bytes", &[23]).unwrap();
    // What `tpm2_changeauth -c owner secret` does.
    tpm.lock()
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.hierarchy_change_auth(AuthHandle::Owner, Auth::try_from(b"secret".to_vec())?)
        })
        .unwrap();
    assert!(tpm.owner_auth_set().unwrap());
    tpm.pcr_extend(23, &[2u8; 32]).unwrap();
    let refused = |auth: Option<&[u8]>| {
        tpm.set_owner_auth(auth).unwrap();
        let r = tpm.unseal_as_owner(&sealed);
        assert!(
            matches!(r, Err(seal::SealError::BadOwnerAuth { counted: false })),
            "{auth:?}: {:?}",
            r.map(|_| "unsealed")
        );
        let e = tpm.seal(b"other", &[23]).unwrap_err();
        assert!(matches!(e, seal::SealError::BadOwnerAuth { .. }), "{e}");
        assert!(e.to_string().contains("TPM_RC_BAD_AUTH"), "{e}");
    };
    // Without the password, or with a wrong one, the TPM refuses the owner branch (and a seal,
    // whose trial PolicySecret is authorized too); the PCR branch still refuses the new PCRs.
    refused(None);
    refused(Some(b"wrong"));
    refused(Some(b"secre"));
    assert!(matches!(
        tpm.unseal(&sealed, &[23]),
        Err(seal::SealError::PcrMismatch)
    ));
    tpm.set_owner_auth(Some(b"secret")).unwrap();
    assert_eq!(
        &tpm.unseal_as_owner(&sealed).unwrap()[..],
        b"master key bytes"
    );
    let resealed = tpm.seal(b"master key bytes", &[23]).unwrap();
    // The value does not stay in the ESYS context after use: dropping it refuses again.
    refused(None);
    // The PCR branch needs no owner password.
    assert_eq!(
        &tpm.unseal(&resealed, &[23]).unwrap()[..],
        b"master key bytes"
    );
    // A storage root key made under the owner hierarchy needs the password as well.
    let other = |auth: Option<&[u8]>| {
        let tpm = Tpm::connect(&TpmConfig {
            tcti: f.swtpm.tcti(),
            srk_handle: 0x8100_0002,
        })
        .unwrap();
        tpm.set_owner_auth(auth).unwrap();
        tpm.lock().srk().map(|_| ())
    };
    let e = other(None).unwrap_err().to_string();
    assert!(e.contains("create the storage root key"), "{e}");
    other(Some(b"secret")).unwrap();
    let too_long = [b'x'; 65];
    let e = tpm.set_owner_auth(Some(&too_long)).unwrap_err().to_string();
    assert!(e.contains("at most 64 bytes"), "{e}");
}

#[test]
fn quotes_are_signed_over_the_nonce_by_a_stable_ak() {
    let Some(f) = fixture() else { return };
    let tpm = f.store.tpm();
    tpm.pcr_extend(23, &[9u8; 32]).unwrap();
    let q = tpm.quote(b"nonce-1", &[23, 16]).unwrap();
    assert_eq!(q.pcrs.iter().map(|p| p.0).collect::<Vec<_>>(), vec![16, 23]);
    // TPMS_ATTEST starts with TPM_GENERATED_VALUE and TPM_ST_ATTEST_QUOTE.
    assert_eq!(&q.attest[..6], &[0xff, 0x54, 0x43, 0x47, 0x80, 0x18]);
    assert!(q.attest.windows(7).any(|w| w == b"nonce-1"));
    let pem = crate::pem_encode("PUBLIC KEY", &q.ak_spki);
    assert!(openssl_verifies(
        f.dir.path(),
        &pem,
        SignAlgorithm::EcdsaSha256,
        &q.attest,
        &q.signature
    ));
    let q2 = tpm.quote(b"nonce-2", &[23]).unwrap();
    assert_eq!(q2.ak_spki, q.ak_spki);
    assert!(tpm.quote(b"", &[23]).is_err());
}

#[test]
fn connection_errors_name_the_tcti() {
    let e = Tpm::connect(&TpmConfig {
        tcti: "device:/dev/no-such-tpm".into(),
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("no TPM") && e.contains("/dev/no-such-tpm"),
        "{e}"
    );
    let e = Tpm::connect(&TpmConfig {
        tcti: "bogus".into(),
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("\"bogus\""), "{e}");
    // A simulator that is not listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Tpm::connect(&TpmConfig {
        tcti: format!("swtpm:host=127.0.0.1,port={port}"),
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("cannot open the TPM") && e.contains(&port.to_string()),
        "{e}"
    );
}

#[test]
fn a_tpm_in_lockout_says_so() {
    let Some(f) = fixture() else { return };
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::Auth;
    // A DA-protected object with a password; wrong passwords until the TPM locks out.
    let mut g = f.store.tpm().lock();
    let mut public = templates::keyed_hash(true, false, None).unwrap();
    if let tss_esapi::structures::Public::KeyedHash {
        object_attributes, ..
    } = &mut public
    {
        *object_attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .build()
            .unwrap();
    }
    let auth = Auth::try_from(b"right".to_vec()).unwrap();
    let key = g
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(Hierarchy::Owner, public, Some(auth), None, None, None)
        })
        .unwrap()
        .key_handle;
    g.ctx
        .tr_set_auth(key.into(), Auth::try_from(b"wrong".to_vec()).unwrap())
        .unwrap();
    let mut last = String::new();
    for _ in 0..40 {
        let buf = tss_esapi::structures::MaxBuffer::try_from(b"x".to_vec()).unwrap();
        let r = g
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.hmac(
                    key.into(),
                    buf,
                    tss_esapi::interface_types::algorithm::HashingAlgorithm::Sha256,
                )
            });
        last = tpm_error("HMAC", r.unwrap_err()).to_string();
        if last.contains("lockout") {
            break;
        }
    }
    let _ = g.ctx.flush_context(key.into());
    assert!(last.contains("dictionary-attack lockout"), "{last}");
    drop(g);
    // Our keys are noDA objects: they keep working while the TPM is locked out.
    f.store
        .create_key_pair(&id("still"), KeyPairAlgorithm::EcP256)
        .unwrap();
}
