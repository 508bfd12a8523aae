//! Many clients at once, restarts, and a kill -9 in the middle of key creation.

mod common;

use common::{ALL_KEYS, Keyd, rt};
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput, SymmetricUsage};

#[test]
fn thirty_two_concurrent_clients() {
    // This checks concurrency, not the per-uid limit (32 by default, exactly the client count,
    // so a connection the server has not yet seen closed could push one client over it).
    let keyd = Keyd::start(&format!(
        "[limits]\nmax_connections_per_uid = 128\n{ALL_KEYS}"
    ));
    rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..32 {
            // each task its own client, so each has its own connections
            let c = KeydClient::new(keyd.socket());
            tasks.push(tokio::spawn(async move {
                let shared = c.create_key_pair("shared", None).await.unwrap();
                let own = c
                    .create_key(&format!("own/{i}"), SymmetricUsage::HmacSha256)
                    .await
                    .unwrap();
                for j in 0..20 {
                    let m = format!("{i}/{j}");
                    let sig = c
                        .sign(
                            &shared.key_handle,
                            SignAlgorithm::EcdsaSha256,
                            SignInput::Message(m.as_bytes()),
                        )
                        .await
                        .unwrap();
                    assert!(
                        c.verify(
                            &shared.key_handle,
                            SignAlgorithm::EcdsaSha256,
                            SignInput::Message(m.as_bytes()),
                            &sig
                        )
                        .await
                        .unwrap()
                    );
                    c.sign(
                        &own.key_handle,
                        SignAlgorithm::HmacSha256,
                        SignInput::Message(m.as_bytes()),
                    )
                    .await
                    .unwrap();
                }
                c.public_key(&shared.key_handle).await.unwrap().spki
            }));
        }
        let mut spkis = Vec::new();
        for t in tasks {
            spkis.push(t.await.unwrap());
        }
        assert!(
            spkis.windows(2).all(|w| w[0] == w[1]),
            "all 32 creators got one key"
        );
        assert_eq!(keyd.client.list().await.unwrap().len(), 33);
    });
}

#[test]
fn a_restart_keeps_every_key_and_every_handle() {
    let mut keyd = Keyd::start(ALL_KEYS);
    let (pair, mac, child, ct, sig) = rt().block_on(async {
        let c = &keyd.client;
        let pair = c.create_key_pair("p", None).await.unwrap().key_handle;
        let mac = c
            .create_key("m", SymmetricUsage::HmacSha256)
            .await
            .unwrap()
            .key_handle;
        let child = c.derive(&mac, b"l").await.unwrap().key_handle;
        let ct = c.encrypt(&child, b"kept", b"").await.unwrap();
        let sig = c
            .sign(&mac, SignAlgorithm::HmacSha256, SignInput::Message(b"x"))
            .await
            .unwrap();
        (pair, mac, child, ct, sig)
    });
    let spki = rt().block_on(keyd.client.public_key(&pair)).unwrap().spki;
    keyd.restart();
    rt().block_on(async {
        let c = KeydClient::new(keyd.socket());
        assert_eq!(c.public_key(&pair).await.unwrap().spki, spki);
        assert_eq!(
            c.sign(&mac, SignAlgorithm::HmacSha256, SignInput::Message(b"x"))
                .await
                .unwrap(),
            sig
        );
        assert_eq!(&*c.decrypt(&child, &ct, b"").await.unwrap(), b"kept");
        assert_eq!(c.list().await.unwrap().len(), 2);
    });
}

#[test]
fn kill_9_during_key_creation_leaves_a_store_that_loads() {
    // On a token, how a torn write looks is the token's business (SoftHSM's object files).
    if common::soft_store_only() {
        return;
    }
    let mut keyd = Keyd::start(ALL_KEYS);
    // Start many creations from another runtime thread, then kill keyd while they run.
    let socket = keyd.socket();
    let creator = std::thread::spawn(move || {
        rt().block_on(async {
            let c = KeydClient::new(socket);
            let mut tasks = Vec::new();
            for i in 0..400 {
                let c = c.clone();
                let alg = if i % 10 == 0 {
                    Some(edgesec_keys::KeyPairAlgorithm::Rsa2048)
                } else {
                    None
                };
                tasks.push(tokio::spawn(async move {
                    c.create_key_pair(&format!("k/{i}"), alg).await.is_ok()
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap_or(false));
            }
            ok
        })
    });
    // Kill once some keys exist on disk, whatever the machine's speed.
    let keys_dir = keyd.state().join("keys");
    while std::fs::read_dir(&keys_dir).map(|d| d.count()).unwrap_or(0) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    keyd.kill9();
    let created = creator.join().unwrap();
    keyd.spawn().expect("keyd starts on the store it left");
    rt().block_on(async {
        let c = KeydClient::new(keyd.socket());
        let listed = c.list().await.unwrap();
        assert!(
            listed.len() >= created,
            "every acknowledged creation survived ({} < {created})",
            listed.len()
        );
        // every stored key loads and signs: no torn file
        for k in &listed {
            let h = c
                .load_key_pair(&k.key_id)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", k.key_id));
            let alg = if k.algorithm == "rsa-2048" {
                SignAlgorithm::RsaPkcs1Sha256
            } else {
                SignAlgorithm::EcdsaSha256
            };
            c.sign(&h.key_handle, alg, SignInput::Message(b"x"))
                .await
                .unwrap();
        }
    });
    // no temporary files are left beside the keys
    let leftovers: Vec<_> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
