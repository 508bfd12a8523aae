//! keyd on a PKCS#11 token (SoftHSM2), through the real binary: start-up errors, signatures an
//! outside tool verifies, keys made beforehand with pkcs11-tool, and stores mixed per key id.
//! The rest of the suite runs on the token too with `EDGESEC_TEST_BACKEND=pkcs11`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{ALL_KEYS, Keyd, SOFTHSM_LIBRARY, V, have, have_softhsm, pkcs11_store, rt};
use edgesec_keys::{KeyPairAlgorithm, SignAlgorithm, SignInput, SymmetricUsage};

#[test]
fn a_missing_library_token_or_pin_stops_keyd_at_start_naming_it() {
    if !have_softhsm() {
        return;
    }
    let mut keyd = Keyd::prepare(ALL_KEYS, Some("keyd-test"));
    let dir = keyd.dir.path().to_owned();
    let write = |store: &str| {
        std::fs::write(
            dir.join("keyd.toml"),
            common::config(&format!("{ALL_KEYS}{store}")),
        )
        .unwrap()
    };
    let pin = dir.join("pkcs11.pin");
    let expect_failure = |keyd: &mut Keyd, code: i32, needles: &[&str]| {
        let (status, log) = keyd.spawn().expect_err("keyd must refuse to start");
        assert_eq!(status, Some(code), "{log}");
        for n in needles {
            assert!(log.contains(n), "{n:?} not in: {log}");
        }
    };

    write(&pkcs11_store("keyd-test").replace(SOFTHSM_LIBRARY, "/nonexistent/libsofthsm2.so"));
    expect_failure(
        &mut keyd,
        1,
        &["/nonexistent/libsofthsm2.so", "does not exist"],
    );

    write(&pkcs11_store("no-such-token"));
    expect_failure(
        &mut keyd,
        1,
        &["no token labelled \"no-such-token\"", "\"keyd-test\""],
    );

    write(&pkcs11_store("keyd-test"));
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect_failure(&mut keyd, 1, &[&pin.display().to_string(), "0644"]);
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::write(&pin, "9999\n").unwrap();
    expect_failure(
        &mut keyd,
        1,
        &["CKR_PIN_INCORRECT", &pin.display().to_string()],
    );

    // a store that names pkcs11 without saying where it is: a config error (78)
    write("[store]\nbackend = \"pkcs11\"\n");
    expect_failure(&mut keyd, 78, &["store.pkcs11"]);

    // and with all of it right, keyd serves
    std::fs::write(&pin, "1234\n").unwrap();
    write(&pkcs11_store("keyd-test"));
    keyd.spawn().expect("keyd starts");
    assert_eq!(
        rt().block_on(keyd.client.capabilities()).unwrap().backend,
        "pkcs11"
    );
}

fn openssl_verify(dir: &std::path::Path, pem: &str, sig: &[u8], msg: &[u8], pss: bool) -> bool {
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
    std::fs::write(dir.join("sig.bin"), sig).unwrap();
    std::fs::write(dir.join("msg.bin"), msg).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args([
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig.bin",
    ]);
    if pss {
        cmd.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    let out = cmd.arg("msg.bin").output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn token_signatures_verify_with_openssl_and_private_keys_stay_on_the_token() {
    if !have_softhsm() || !have("openssl") || !have("pkcs11-tool") {
        return;
    }
    let keyd = Keyd::start_with_token(&format!("{ALL_KEYS}{}", pkcs11_store("keyd-test")));
    let hsm = keyd.softhsm.as_ref().unwrap();
    let msg = b"signed on the token";
    rt().block_on(async {
        let c = &keyd.client;
        for (alg, sa, pss) in [
            (KeyPairAlgorithm::EcP256, SignAlgorithm::EcdsaSha256, false),
            (
                KeyPairAlgorithm::Rsa2048,
                SignAlgorithm::RsaPkcs1Sha256,
                false,
            ),
            (KeyPairAlgorithm::Rsa2048, SignAlgorithm::RsaPssSha256, true),
        ] {
            let h = c
                .create_key_pair(&format!("tok/{alg}"), Some(alg))
                .await
                .unwrap();
            let pem = c.public_key(&h.key_handle).await.unwrap().pem;
            let sig = c
                .sign(&h.key_handle, sa, SignInput::Message(msg))
                .await
                .unwrap();
            assert!(
                openssl_verify(keyd.dir.path(), &pem, &sig, msg, pss),
                "{alg} {sa}"
            );
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(
                !openssl_verify(keyd.dir.path(), &pem, &bad, msg, pss),
                "{alg} {sa}"
            );
        }
        c.create_key("tok/mac", SymmetricUsage::HmacSha256)
            .await
            .unwrap();
    });
    // OpenSC sees them as token objects that never left the token
    let (ok, objects) = hsm.tool(&["--list-objects"]);
    assert!(ok, "{objects}");
    for label in ["tok/ec-p256", "tok/rsa-2048", "tok/mac", "keyd/handle-key"] {
        assert!(
            objects.contains(&format!("label:      {label}")),
            "{label}: {objects}"
        );
    }
    let private_keys = objects.matches("Private Key Object").count()
        + objects.matches("Secret Key Object").count();
    assert_eq!(private_keys, 4, "{objects}");
    assert_eq!(
        objects.matches("never extractable").count(),
        private_keys,
        "{objects}"
    );
    // reading a key's value is refused by the token (pkcs11-tool cannot even try for private
    // keys; token_objects.rs asks for those through cryptoki)
    let (ok, text) = hsm.tool(&["--read-object", "--type", "secrkey", "--label", "tok/mac"]);
    assert!(!ok && text.contains("CKR_ATTRIBUTE_SENSITIVE"), "{text}");
}

#[test]
fn a_preloaded_key_made_with_pkcs11_tool_is_used_by_its_uri() {
    if !have_softhsm() || !have("pkcs11-tool") {
        return;
    }
    let mut keyd = Keyd::prepare(ALL_KEYS, Some("keyd-test"));
    let hsm = keyd.softhsm.as_ref().unwrap();
    let (ok, text) = hsm.tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "factory-key",
        "--id",
        "0f",
    ]);
    assert!(ok, "{text}");
    let pub_der = keyd.dir.path().join("factory.der");
    let (ok, text) = hsm.tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--label",
        "factory-key",
        "-o",
        pub_der.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let store = format!(
        "[store]\nbackend = \"soft\"\n{}[store.preloaded]\n\"device-key-from-factory\" = \"pkcs11:token=keyd-test;object=factory-key;type=private\"\n",
        pkcs11_store("keyd-test").replace("[store]\nbackend = \"pkcs11\"\n", "")
    );
    std::fs::write(
        keyd.dir.path().join("keyd.toml"),
        common::config(&format!("{ALL_KEYS}{store}")),
    )
    .unwrap();
    keyd.spawn().expect("keyd starts");
    rt().block_on(async {
        let c = &keyd.client;
        let h = c.load_key_pair("device-key-from-factory").await.unwrap();
        assert_eq!(h.algorithm, "ec-p256");
        let pk = c.public_key(&h.key_handle).await.unwrap();
        assert_eq!(
            pk.spki,
            std::fs::read(&pub_der).unwrap(),
            "the same key as pkcs11-tool's"
        );
        let sig = c
            .sign(
                &h.key_handle,
                SignAlgorithm::EcdsaSha256,
                SignInput::Message(b"m"),
            )
            .await
            .unwrap();
        assert!(
            c.verify(
                &h.key_handle,
                SignAlgorithm::EcdsaSha256,
                SignInput::Message(b"m"),
                &sig
            )
            .await
            .unwrap()
        );
        let ids: Vec<_> = c
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(ids, ["device-key-from-factory"]);
        let e = c.delete(&h.key_handle).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
        assert!(e.to_string().contains("preloaded"), "{e}");
    });
}

#[test]
fn a_mixed_store_keeps_each_key_where_its_route_says() {
    if !have_softhsm() || !have("pkcs11-tool") {
        return;
    }
    let store = format!(
        "[store]\nbackend = \"soft\"\n{}[[store.route]]\nkeys = [\"edgesec/ca/*\", \"edgesec/device-key\"]\nbackend = \"pkcs11\"\n",
        pkcs11_store("keyd-test").replace("[store]\nbackend = \"pkcs11\"\n", "")
    );
    let keyd = Keyd::start_with_token(&format!("{ALL_KEYS}{store}"));
    let hsm = keyd.softhsm.as_ref().unwrap();
    rt().block_on(async {
        let c = &keyd.client;
        c.create_key_pair("edgesec/ca/root-1", None).await.unwrap();
        c.create_key("edgesec/device-key", SymmetricUsage::HmacSha256)
            .await
            .unwrap();
        c.create_key("edgesec/workload-encryption", SymmetricUsage::Aes256Gcm)
            .await
            .unwrap();
        let ids: Vec<_> = c
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(
            ids,
            [
                "edgesec/ca/root-1",
                "edgesec/device-key",
                "edgesec/workload-encryption"
            ]
        );
        let caps = c.capabilities().await.unwrap();
        assert_eq!(caps.backend, "routed");
        assert!(!caps.hardware_backed);
        let parts: Vec<_> = caps
            .backends
            .iter()
            .map(|b| (b.backend.as_str(), b.keys.clone(), b.hardware_backed))
            .collect();
        assert_eq!(
            parts,
            [
                ("soft", vec!["*".to_owned()], false),
                (
                    "pkcs11",
                    vec!["edgesec/ca/*".to_owned(), "edgesec/device-key".to_owned()],
                    true
                ),
            ]
        );
        // the JSON a client sees names them too
        let (code, body) = keyd.curl("GET", &format!("/capabilities?{V}"), None, None);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"backends\""), "{body}");
    });
    let (ok, objects) = hsm.tool(&["--list-objects"]);
    assert!(ok, "{objects}");
    assert!(
        objects.contains("label:      edgesec/ca/root-1"),
        "{objects}"
    );
    assert!(
        objects.contains("label:      edgesec/device-key"),
        "{objects}"
    );
    assert!(!objects.contains("workload-encryption"), "{objects}");
    assert!(!objects.contains("keyd/handle-key"), "{objects}");
    let soft: Vec<String> = std::fs::read_dir(keyd.state().join("keys"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(soft.len(), 2, "handle key and workload key: {soft:?}");
    assert!(
        soft.iter()
            .any(|f| f.starts_with("edgesec_workload-encryption-"))
    );
    assert!(soft.iter().any(|f| f.starts_with("keyd_handle-key-")));
}
