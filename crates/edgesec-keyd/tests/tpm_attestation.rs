//! DPS TPM attestation through the real binary on its own swtpm (skipped when swtpm is missing,
//! except in CI): the public keys, the import of a challenge made by the test service's software
//! implementation, signing with the imported key in the TPM, and refusals.

mod common;

use aws_lc_rs::hmac;
use common::{ALL_KEYS, Keyd, rt};
use edgesec_keyd::api::KeyType;
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput, SymmetricUsage};

const TPM_STORE: &str = "[store]\nbackend = \"tpm\"\n";
const AUTH_KEY: &str = "edgesec/tpm-auth";

fn tpm_keyd() -> Option<Keyd> {
    let mut k = Keyd::with_swtpm(ALL_KEYS, TPM_STORE)?;
    k.spawn().expect("keyd starts");
    Some(k)
}

/// A challenge for the TPM behind `client`, and the HMAC key it carries.
async fn challenge_for(client: &KeydClient) -> (Vec<u8>, Vec<u8>) {
    let keys = client.tpm_public_keys().await.unwrap();
    edgesec_cloudsim::tpm_challenge_for_tests(&keys.endorsement_key, &keys.storage_root_key)
        .unwrap()
}

fn software_hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

async fn tpm_hmac(client: &KeydClient, handle: &str, msg: &[u8]) -> Vec<u8> {
    client
        .sign(handle, SignAlgorithm::HmacSha256, SignInput::Message(msg))
        .await
        .unwrap()
}

/// Byte ranges of the five size-prefixed parts of a challenge (the bodies, without sizes).
fn parts(blob: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < blob.len() {
        let len = usize::from(u16::from_be_bytes([blob[at], blob[at + 1]]));
        out.push(at + 2..at + 2 + len);
        at += 2 + len;
    }
    assert_eq!(at, blob.len());
    out
}

#[test]
fn a_dps_challenge_imports_and_its_key_signs_in_the_tpm() {
    let Some(mut k) = tpm_keyd() else {
        return;
    };
    let msg = b"myscope%2fregistrations%2fdevice-1\n1767225600";
    let (keys, hmac_key) = rt().block_on(async {
        let keys = k.client.tpm_public_keys().await.unwrap();
        let (blob, hmac_key) = challenge_for(&k.client).await;
        let h = k.client.import_tpm_auth_key(AUTH_KEY, &blob).await.unwrap();
        assert_eq!(h.key_id, AUTH_KEY);
        assert_eq!(h.key_type, KeyType::Symmetric);
        assert_eq!(h.algorithm, "hmac-sha256");
        assert_eq!(
            tpm_hmac(&k.client, &h.key_handle, msg).await,
            software_hmac(&hmac_key, msg)
        );
        let tag = software_hmac(&hmac_key, b"other");
        assert!(
            k.client
                .verify(
                    &h.key_handle,
                    SignAlgorithm::HmacSha256,
                    SignInput::Message(b"other"),
                    &tag
                )
                .await
                .unwrap()
        );
        // The key only signs: no child keys, so nothing derived from it can be exported.
        let e = k.client.derive(&h.key_handle, b"label").await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
        assert!(e.to_string().contains("TPM authentication key"), "{e}");
        // An id that holds another kind of key is never replaced.
        k.client
            .create_key("other", SymmetricUsage::HmacSha256)
            .await
            .unwrap();
        let e = k
            .client
            .import_tpm_auth_key("other", &challenge_for(&k.client).await.0)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e}");
        (keys, hmac_key)
    });
    // The key file holds only the TPM-wrapped key, never the key itself.
    for (path, bytes) in common::snapshot(&k.state()) {
        assert!(
            !bytes.windows(hmac_key.len()).any(|w| w == hmac_key),
            "{} holds the HMAC key in clear",
            path.display()
        );
    }
    // After a restart the persistent keys are the same and the imported key still signs.
    k.restart();
    rt().block_on(async {
        assert_eq!(k.client.tpm_public_keys().await.unwrap(), keys);
        let h = k.client.load_key(AUTH_KEY).await.unwrap();
        assert_eq!(
            tpm_hmac(&k.client, &h.key_handle, msg).await,
            software_hmac(&hmac_key, msg)
        );
        // A new challenge for the same id (the service sends one at each registration)
        // replaces the old key.
        let (blob, new_key) = challenge_for(&k.client).await;
        let h = k.client.import_tpm_auth_key(AUTH_KEY, &blob).await.unwrap();
        assert_eq!(
            tpm_hmac(&k.client, &h.key_handle, msg).await,
            software_hmac(&new_key, msg)
        );
        assert_ne!(new_key, hmac_key);
    });
}

#[test]
fn altered_malformed_and_foreign_challenges_are_refused() {
    let Some(mut k) = tpm_keyd() else {
        return;
    };
    let Some(other) = tpm_keyd() else {
        return;
    };
    rt().block_on(async {
        let (blob, _) = challenge_for(&k.client).await;
        let refused = |e: edgesec_http::ClientError, what: &str| {
            let status = e.status().map(|s| s.as_u16());
            assert_eq!(status, Some(400), "{what}: {e}\nkeyd's log:\n{}", k.log());
            assert!(e.to_string().contains("authentication key"), "{what}: {e}");
        };
        // One byte flipped in the body of each part.
        let names = [
            "credential",
            "credential secret",
            "duplicate",
            "import seed",
            "public",
        ];
        for (range, name) in parts(&blob).into_iter().zip(names) {
            for at in [range.start, range.start + range.len() / 2, range.end - 1] {
                let mut bad = blob.clone();
                bad[at] ^= 0x01;
                let e = k
                    .client
                    .import_tpm_auth_key(AUTH_KEY, &bad)
                    .await
                    .unwrap_err();
                refused(e, &format!("{name} byte {at}"));
            }
        }
        // Sizes that do not add up, and bytes cut off or added.
        let mut bad_size = blob.clone();
        bad_size[0] ^= 0x80;
        for (bad, what) in [
            (bad_size, "size"),
            (blob[..blob.len() - 1].to_vec(), "truncated"),
            ([blob.as_slice(), &[0]].concat(), "trailing byte"),
            (vec![0u8; 1], "one byte"),
        ] {
            let e = k
                .client
                .import_tpm_auth_key(AUTH_KEY, &bad)
                .await
                .unwrap_err();
            refused(e, what);
        }
        let e = k
            .client
            .import_tpm_auth_key(AUTH_KEY, &vec![0u8; 5000])
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");

        // Made for another TPM: its EK, its storage key, or both.
        let mine = k.client.tpm_public_keys().await.unwrap();
        let theirs = other.client.tpm_public_keys().await.unwrap();
        assert_ne!(mine.endorsement_key, theirs.endorsement_key);
        for (ek, srk, what) in [
            (&theirs.endorsement_key, &mine.storage_root_key, "other EK"),
            (&mine.endorsement_key, &theirs.storage_root_key, "other SRK"),
            (
                &theirs.endorsement_key,
                &theirs.storage_root_key,
                "other TPM",
            ),
        ] {
            let (foreign, _) = edgesec_cloudsim::tpm_challenge_for_tests(ek, srk).unwrap();
            let e = k
                .client
                .import_tpm_auth_key(AUTH_KEY, &foreign)
                .await
                .unwrap_err();
            refused(e, what);
        }

        // Nothing was stored, and keyd (and the TPM's object slots) still work.
        let e = k.client.load_key(AUTH_KEY).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e}");
        let h = k.client.import_tpm_auth_key(AUTH_KEY, &blob).await.unwrap();
        tpm_hmac(&k.client, &h.key_handle, b"m").await;
    });
    // Every transient object and session was flushed, whatever failed (the TPM has no
    // resource manager in front of it, so it would still hold them after keyd is gone).
    k.stop();
    if common::have("tpm2_getcap") {
        let tcti = k.swtpm.as_ref().unwrap().tcti();
        for what in ["handles-transient", "handles-loaded-session"] {
            let out = std::process::Command::new("tpm2_getcap")
                .args(["-T", &tcti, what])
                .output()
                .unwrap();
            assert!(out.status.success(), "{what}: {out:?}");
            let held = String::from_utf8_lossy(&out.stdout);
            assert!(held.trim().is_empty(), "{what} left behind: {held}");
        }
    }
}

#[test]
fn backends_without_a_tpm_answer_not_supported() {
    let mut k = Keyd::prepare(ALL_KEYS, None);
    k.spawn().expect("keyd starts");
    rt().block_on(async {
        let e = k.client.tpm_public_keys().await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(501), "{e}");
        assert!(e.to_string().contains("TPM attestation"), "{e}");
        let e = k
            .client
            .import_tpm_auth_key(AUTH_KEY, &[0, 0])
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(501), "{e}");
    });
}

#[test]
fn only_callers_granted_the_id_may_import() {
    let Some(mut k) = Keyd::with_swtpm(
        "[[principal]]\nuid = \"self\"\nkeys = [\"mine/*\"]\n",
        TPM_STORE,
    ) else {
        return;
    };
    k.spawn().expect("keyd starts");
    rt().block_on(async {
        let (blob, _) = challenge_for(&k.client).await;
        let e = k
            .client
            .import_tpm_auth_key("theirs/auth", &blob)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
        let e = k
            .client
            .import_tpm_auth_key("keyd/auth", &blob)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
        k.client
            .import_tpm_auth_key("mine/auth", &blob)
            .await
            .unwrap();
    });
}

#[test]
fn a_soft_store_with_a_route_to_the_tpm_imports_there() {
    let routed = "[store]\nbackend = \"soft\"\n[[store.route]]\nkeys = [\"edgesec/tpm-*\"]\nbackend = \"tpm\"\n";
    let Some(mut k) = Keyd::with_swtpm(ALL_KEYS, routed) else {
        return;
    };
    k.spawn().expect("keyd starts");
    rt().block_on(async {
        let (blob, hmac_key) = challenge_for(&k.client).await;
        let h = k.client.import_tpm_auth_key(AUTH_KEY, &blob).await.unwrap();
        assert_eq!(
            tpm_hmac(&k.client, &h.key_handle, b"m").await,
            software_hmac(&hmac_key, b"m")
        );
        // An id the rules keep in the software store cannot take it.
        let e = k
            .client
            .import_tpm_auth_key("elsewhere", &blob)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(501), "{e}");
    });
    // Only the authentication key went to the TPM store (keyd's handle key stayed soft).
    assert_eq!(k.state().join("tpm/keys").read_dir().unwrap().count(), 1);
}
