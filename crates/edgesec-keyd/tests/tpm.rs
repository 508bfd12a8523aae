//! Measurements, the sealed store and quotes, through the real binary on its own swtpm (skipped
//! when swtpm is missing, except in CI).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{ALL_KEYS, Keyd, rt};
use edgesec_integrity::verify::{Policy, verify};
use edgesec_keys::{SignAlgorithm, SignInput};

const SEALED: &str = "[store]\nseal_master_key = \"tpm\"\n";

/// keyd run from a copy of its binary inside the test directory, so the test can "update" it.
fn sealed_keyd() -> Option<(Keyd, PathBuf)> {
    let k = Keyd::with_swtpm(ALL_KEYS, SEALED)?;
    let bin = k.dir.path().join("edgesec-keyd");
    std::fs::copy(env!("CARGO_BIN_EXE_edgesec-keyd"), &bin).unwrap();
    Some((k, bin))
}

fn spawn_from(k: &mut Keyd, bin: &std::path::Path) -> Result<(), (Option<i32>, String)> {
    k.spawn_bin(bin)
}

fn reseal(k: &Keyd, bin: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin)
        .arg("--config")
        .arg(k.dir.path().join("keyd.toml"))
        .args(["reseal", "--confirm"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn sign(k: &Keyd) -> Vec<u8> {
    rt().block_on(async {
        let h = k.client.load_key_pair("ca").await.unwrap();
        k.client
            .sign(
                &h.key_handle,
                SignAlgorithm::EcdsaSha256,
                SignInput::Message(b"m"),
            )
            .await
            .unwrap()
    })
}

#[test]
fn a_changed_binary_or_config_keeps_the_sealed_store_shut_until_resealed() {
    let Some((mut k, bin)) = sealed_keyd() else {
        return;
    };
    spawn_from(&mut k, &bin).unwrap();
    rt().block_on(k.client.create_key_pair("ca", None)).unwrap();
    sign(&k);
    k.stop();
    assert!(k.state().join("master.sealed").exists());
    assert!(
        !k.state().join("master.key").exists(),
        "the plain master key is gone"
    );
    // The same binary and config open it again.
    spawn_from(&mut k, &bin).unwrap();
    sign(&k);
    k.stop();

    // "Update" the binary: same program, different bytes.
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes.extend_from_slice(b"\0update");
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(&bin, &bytes).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, log) = spawn_from(&mut k, &bin).unwrap_err();
    assert_ne!(code, Some(0));
    assert!(
        log.contains("refuses to open")
            && log.contains("the keyd executable changed")
            && log.contains("reseal --confirm"),
        "{log}"
    );
    assert!(!log.contains("config file changed"), "{log}");
    // A re-seal without --confirm does nothing.
    let out = Command::new(&bin)
        .arg("--config")
        .arg(k.dir.path().join("keyd.toml"))
        .arg("reseal")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (ok, text) = reseal(&k, &bin);
    assert!(ok && text.contains("re-sealed"), "{text}");
    spawn_from(&mut k, &bin).unwrap();
    sign(&k);
    k.stop();

    // Edit the config.
    let cfg = k.dir.path().join("keyd.toml");
    let text = std::fs::read_to_string(&cfg).unwrap() + "[limits]\nmax_body_bytes = 32768\n";
    std::fs::write(&cfg, text).unwrap();
    let (_, log) = spawn_from(&mut k, &bin).unwrap_err();
    assert!(log.contains("keyd's config file changed"), "{log}");
    let (ok, text) = reseal(&k, &bin);
    assert!(ok, "{text}");
    spawn_from(&mut k, &bin).unwrap();
    sign(&k);
}

#[test]
fn a_quote_verifies_and_tampering_is_named() {
    let Some(mut k) = Keyd::with_swtpm(ALL_KEYS, "") else {
        return;
    };
    k.spawn().unwrap();
    let (evidence, log) = rt().block_on(async {
        let c = &k.client;
        assert!(
            c.report_measurement("module", "m1", &format!("sha256:{}", "ab".repeat(32)))
                .await
                .unwrap()
        );
        // the same event again extends nothing
        assert!(
            !c.report_measurement("module", "m1", &format!("sha256:{}", "ab".repeat(32)))
                .await
                .unwrap()
        );
        let bad = c
            .report_measurement(
                "keyd-executable",
                "x",
                &format!("sha256:{}", "ab".repeat(32)),
            )
            .await;
        assert_eq!(bad.unwrap_err().status().map(|s| s.as_u16()), Some(400));
        (
            c.quote(b"fresh-nonce").await.unwrap(),
            c.measurements().await.unwrap(),
        )
    });
    assert_eq!(log.log, "tpm");
    let kinds: Vec<&str> = evidence.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "keyd-executable",
            "keyd-config",
            "client-executable",
            "module"
        ]
    );
    assert_eq!(
        evidence.events[2].source,
        edgesec_integrity::EventSource::Keyd
    );
    assert_eq!(
        evidence.events[3].source,
        edgesec_integrity::EventSource::Client
    );
    assert_eq!(evidence.pcrs[&23], log.value);
    let policy = Policy::from_evidence(&evidence);
    let r = verify(&evidence, b"fresh-nonce", &policy, None);
    assert!(r.trusted, "{}", r.render());

    let r = verify(&evidence, b"other-nonce", &policy, None);
    assert!(
        !r.trusted && r.render().contains("FAIL nonce"),
        "{}",
        r.render()
    );
    let mut altered = evidence.clone();
    altered.events[3].name = "m2".into();
    let r = verify(&altered, b"fresh-nonce", &policy, None);
    assert!(
        r.render().contains("event 3 (module m2): altered"),
        "{}",
        r.render()
    );
    let mut foreign = evidence.clone();
    foreign.pcrs.insert(23, "00".repeat(32));
    let r = verify(&foreign, b"fresh-nonce", &policy, None);
    assert!(r.render().contains("FAIL pcr digest"), "{}", r.render());
    let mut strict = policy.clone();
    strict.allow.retain(|a| a.kind.as_deref() != Some("module"));
    let r = verify(&evidence, b"fresh-nonce", &strict, None);
    assert!(r.render().contains("not in the policy"), "{}", r.render());
}

#[test]
fn without_a_tpm_the_log_is_software_and_quotes_are_refused() {
    let k = Keyd::start(ALL_KEYS);
    if common::backend() == "tpm" {
        return;
    }
    rt().block_on(async {
        let log = k.client.measurements().await.unwrap();
        assert_eq!(log.log, "software");
        assert_eq!(log.events[0].kind, "keyd-executable");
        let replayed = edgesec_integrity::replay(&log.events).unwrap();
        assert_eq!(edgesec_integrity::hex(&replayed[&23]), log.value);
        let e = k.client.quote(b"n").await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(501));
        assert!(
            e.to_string().contains("no TPM: software measurements only"),
            "{e}"
        );
    });
}
