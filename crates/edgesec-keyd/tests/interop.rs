//! Signatures made by keyd verify with an independent implementation: the openssl command line.

mod common;

use std::process::Command;

use common::{ALL_KEYS, Keyd, rt};
use edgesec_keys::{KeyPairAlgorithm, SignAlgorithm, SignInput};

fn openssl_verifies(
    dir: &std::path::Path,
    pem: &str,
    sig: &[u8],
    msg: &[u8],
    args: &[&str],
) -> bool {
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
    std::fs::write(dir.join("sig.bin"), sig).unwrap();
    std::fs::write(dir.join("msg.bin"), msg).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    out.status.success()
        && (text.contains("Verified OK") || text.contains("Signature Verified Successfully"))
}

#[test]
fn ecdsa_rsa_and_ed25519_signatures_verify_with_openssl() {
    if !common::have("openssl") {
        return;
    }
    let keyd = Keyd::start(ALL_KEYS);
    let dir = keyd.dir.path();
    let msg = b"signed by edgesec-keyd";
    let dgst = |md: &str, opts: &[&str]| {
        let mut v = vec![
            "dgst".to_string(),
            format!("-{md}"),
            "-verify".into(),
            "pub.pem".into(),
            "-signature".into(),
            "sig.bin".into(),
        ];
        v.extend(opts.iter().map(|o| o.to_string()));
        v.push("msg.bin".into()); // the file operand comes last
        v
    };
    let cases: Vec<(KeyPairAlgorithm, SignAlgorithm, Vec<String>)> = vec![
        (
            KeyPairAlgorithm::EcP256,
            SignAlgorithm::EcdsaSha256,
            dgst("sha256", &[]),
        ),
        (
            KeyPairAlgorithm::EcP384,
            SignAlgorithm::EcdsaSha384,
            dgst("sha384", &[]),
        ),
        (
            KeyPairAlgorithm::Rsa2048,
            SignAlgorithm::RsaPkcs1Sha256,
            dgst("sha256", &[]),
        ),
        (
            KeyPairAlgorithm::Rsa2048,
            SignAlgorithm::RsaPssSha256,
            dgst(
                "sha256",
                &[
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:digest",
                ],
            ),
        ),
        (
            KeyPairAlgorithm::Ed25519,
            SignAlgorithm::Ed25519,
            [
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg.bin",
                "-sigfile", "sig.bin",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    rt().block_on(async {
        let caps = keyd.client.capabilities().await.unwrap();
        for (alg, sa, args) in cases {
            if !caps.sign_algorithms.contains(&sa) || !caps.key_pair_algorithms.contains(&alg) {
                eprintln!("skipping {alg} {sa}: the {} backend lacks it", caps.backend);
                continue;
            }
            let h = keyd
                .client
                .create_key_pair(&format!("interop/{alg}"), Some(alg))
                .await
                .unwrap()
                .key_handle;
            let pem = keyd.client.public_key(&h).await.unwrap().pem;
            let sig = keyd
                .client
                .sign(&h, sa, SignInput::Message(msg))
                .await
                .unwrap();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert!(
                openssl_verifies(dir, &pem, &sig, msg, &args),
                "openssl rejected {alg} {sa}"
            );
            let mut bad = sig.clone();
            let n = bad.len() / 2;
            bad[n] ^= 1;
            assert!(
                !openssl_verifies(dir, &pem, &bad, msg, &args),
                "openssl accepted a damaged {alg} {sa} signature"
            );
            // a signature over a digest the caller computed verifies the same way
            if let Some(n) = sa.digest_len() {
                let d = if n == 32 {
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg)
                } else {
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, msg)
                };
                let sig = keyd
                    .client
                    .sign(&h, sa, SignInput::Digest(d.as_ref()))
                    .await
                    .unwrap();
                assert!(
                    openssl_verifies(dir, &pem, &sig, msg, &args),
                    "openssl rejected a digest-signed {alg} {sa}"
                );
            }
        }
    });
}
