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

/// Sets the swtpm's owner hierarchy password from `old` to `new` (empty: none), as an operator
/// would with tpm2-tools. False when tpm2-tools is missing (outside CI: the test skips).
fn change_owner_auth(k: &Keyd, old: &str, new: &str) -> bool {
    if !common::have("tpm2_changeauth") {
        return false;
    }
    let mut cmd = Command::new("tpm2_changeauth");
    cmd.arg("-T")
        .arg(k.swtpm.as_ref().unwrap().tcti())
        .args(["-c", "owner"]);
    if !old.is_empty() {
        cmd.args(["-p", old]);
    }
    if !new.is_empty() {
        cmd.arg(new);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "tpm2_changeauth: {out:?}");
    true
}

/// Writes keyd's owner authorization file (`owner.auth` beside keyd.toml) with `mode`.
fn write_owner_auth(k: &Keyd, bytes: &[u8], mode: u32) -> PathBuf {
    let p = k.dir.path().join("owner.auth");
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    p
}

/// Appends `lines` to keyd.toml, whose last section is `[tpm]`.
fn add_to_tpm_section(k: &Keyd, lines: &str) {
    let cfg = k.dir.path().join("keyd.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[tpm]") && !text.contains("[limits]"),
        "{text}"
    );
    std::fs::write(&cfg, text + lines).unwrap();
}

/// `sealed` in keyd's `/capabilities` (absent when the master key is not sealed).
fn sealed_state(k: &Keyd) -> Option<serde_json::Value> {
    let (status, body) = k.curl("GET", &format!("/capabilities?{}", common::V), None, None);
    assert_eq!(status, 200, "{body}");
    let caps: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(caps["backend"].is_string(), "{body}");
    let sealed = caps.get("sealed").cloned();
    // The client reads the same.
    let state = rt().block_on(k.client.sealed_state()).unwrap();
    assert_eq!(
        state.map(|s| serde_json::json!({ "ownerAuthSet": s.owner_auth_set })),
        sealed
    );
    sealed
}

const EMPTY_OWNER_WARNING: &str = "the sealed key store can be opened by anyone with TPM access";

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
    // A device set up as the docs say: an owner password, and keyd given it in a 0600 file.
    if !change_owner_auth(&k, "", "secret") {
        return;
    }
    let auth_file = write_owner_auth(&k, b"secret\n", 0o600);
    add_to_tpm_section(&k, "owner_auth_file = \"owner.auth\"\n");
    spawn_from(&mut k, &bin).unwrap();
    assert!(!k.log().contains(EMPTY_OWNER_WARNING), "{}", k.log());
    assert_eq!(
        sealed_state(&k),
        Some(serde_json::json!({"ownerAuthSet": true}))
    );
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
    // A wrong owner password: the TPM refuses the owner branch, and the error names the file.
    write_owner_auth(&k, b"guess-7731\n", 0o600);
    let (ok, text) = reseal(&k, &bin);
    assert!(
        !ok && text.contains("TPM_RC_BAD_AUTH")
            && text.contains(&format!("owner_auth_file {}", auth_file.display()))
            && text.contains("tpm2_changeauth -c owner")
            && text.contains("dictionary-attack lockout")
            && !text.contains("guess-7731"),
        "{text}"
    );
    // The right one in a file others can read is refused before it is used.
    write_owner_auth(&k, b"secret\n", 0o640);
    let (ok, text) = reseal(&k, &bin);
    assert!(
        !ok && text.contains(&format!("chmod 600 {}", auth_file.display())),
        "{text}"
    );
    // No owner_auth_file at all, while the TPM has a password.
    write_owner_auth(&k, b"secret\n", 0o600);
    let cfg = k.dir.path().join("keyd.toml");
    let with_file = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        with_file.replace("owner_auth_file = \"owner.auth\"\n", ""),
    )
    .unwrap();
    let (ok, text) = reseal(&k, &bin);
    assert!(!ok && text.contains("keyd was given none"), "{text}");
    std::fs::write(&cfg, &with_file).unwrap();
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
    k.stop();

    // Someone clears the owner password later: keyd still opens through the PCR branch, but
    // warns at every start, and will not seal again under the empty value.
    assert!(change_owner_auth(&k, "secret", ""));
    for _ in 0..2 {
        spawn_from(&mut k, &bin).unwrap();
        assert!(k.log().contains(EMPTY_OWNER_WARNING), "{}", k.log());
        assert_eq!(
            sealed_state(&k),
            Some(serde_json::json!({"ownerAuthSet": false}))
        );
        sign(&k);
        k.stop();
    }
    let (ok, text) = reseal(&k, &bin);
    assert!(
        !ok && text.contains("no authorization value") && text.contains("tpm2_changeauth"),
        "{text}"
    );
}

#[test]
fn sealing_refuses_an_empty_owner_auth_unless_allowed_for_development() {
    let Some((mut k, bin)) = sealed_keyd() else {
        return;
    };
    // A fresh swtpm, like most devices: the owner hierarchy has no password.
    let (code, log) = spawn_from(&mut k, &bin).unwrap_err();
    assert_ne!(code, Some(0));
    assert!(
        log.contains("refusing to seal the store's master key")
            && log.contains("no PCR match")
            && log.contains("tpm2_changeauth -c owner NEWPASS")
            && log.contains("owner_auth_file")
            && log.contains("allow_empty_owner_auth = true"),
        "{log}"
    );
    assert!(!k.state().join("master.sealed").exists());
    // The development escape hatch seals, and says at every start what that costs.
    add_to_tpm_section(&k, "allow_empty_owner_auth = true\n");
    spawn_from(&mut k, &bin).unwrap();
    assert!(k.log().contains(EMPTY_OWNER_WARNING), "{}", k.log());
    rt().block_on(k.client.create_key_pair("ca", None)).unwrap();
    sign(&k);
    k.stop();
    assert!(k.state().join("master.sealed").exists());
    spawn_from(&mut k, &bin).unwrap();
    assert!(k.log().contains(EMPTY_OWNER_WARNING), "{}", k.log());
    assert_eq!(
        sealed_state(&k),
        Some(serde_json::json!({"ownerAuthSet": false}))
    );
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
    // Last: curl is a client of its own, measured into the log checked above.
    assert_eq!(sealed_state(&k), None, "no sealed master key here");
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
