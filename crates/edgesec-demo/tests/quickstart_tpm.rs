//! The quickstart on a TPM: `examples/tpm/` run as shipped on a private swtpm (only the TCTI's
//! port changes), so the CA keys and the device key are made in the TPM. The demo modules do
//! their mutual-TLS exchange with certificates the TPM-held edge CA signed, OpenSSL verifies
//! those chains independently, and `edgesec attest` fetches a quote of the device and verifies
//! it through the real binary, refusing an altered event log, a wrong nonce and a foreign PCR
//! value with the reason named.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{
    Edgesecd, bin_dir, copy_example, free_port, have_tool, openssl_verify, test_deployment,
};
use edgesec_keys::tpm::testing::Swtpm;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);
const NONCE: &str = "5eed0f5eed0f5eed0f5eed0f5eed0f5e";

fn edgesec(bins: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bins.join("edgesec"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("edgesec runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `edgesec attest verify` of `quote` (a JSON value) against the policy in `dir`.
fn verify(bins: &Path, dir: &Path, quote: &Value, nonce: &str) -> Output {
    let path = dir.join("checked.json");
    std::fs::write(&path, serde_json::to_vec_pretty(quote).unwrap()).unwrap();
    edgesec(
        bins,
        dir,
        &[
            "attest",
            "verify",
            "--quote",
            "checked.json",
            "--policy",
            "allowed.json",
            "--nonce",
            nonce,
        ],
    )
}

/// Key files by backend: (in the TPM's wrapped-blob directory, in the software store).
fn key_files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let list = |sub: &str| -> Vec<String> {
        std::fs::read_dir(dir.join("state/keyd").join(sub))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (list("tpm/keys"), list("keys"))
}

#[test]
fn the_quickstart_runs_on_a_tpm_and_its_quote_verifies() {
    let bins = bin_dir();
    assert!(
        bins.join("edgesec").is_file(),
        "the edgesec CLI is not built: `cargo build --workspace` first"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(swtpm) = Swtpm::start(&dir.join("tpmstate")) else {
        return;
    };
    copy_example("tpm", dir);
    let keyd_toml = std::fs::read_to_string(dir.join("keyd.toml")).unwrap();
    let shipped = "tcti = \"swtpm:host=127.0.0.1,port=2321\"";
    assert!(keyd_toml.contains(shipped), "{keyd_toml}");
    let keyd_toml = keyd_toml.replace(shipped, &format!("tcti = \"{}\"", swtpm.tcti()));
    std::fs::write(dir.join("keyd.toml"), keyd_toml).unwrap();
    let port = free_port();
    test_deployment(dir, port);
    let mut daemon = Edgesecd::start(&bins, dir);

    // Mutual TLS between the demo modules, with certificates from the TPM-held edge CA.
    let ok =
        format!("demo-client: mutual TLS with 127.0.0.1:{port} OK: server name localhost verified");
    let client_line = daemon.wait_for("a mutual-TLS exchange on the TPM", WAIT, |d| {
        d.logs("demo-client").into_iter().find(|l| l.contains(&ok))
    });
    assert!(
        client_line.contains(
            "server saw client identity azureiot://localhost/devices/tpm-device/modules/demo-client"
        ),
        "{client_line}"
    );

    // The CA and device keys are TPM-wrapped blobs; only keyd's handle key is in software.
    let (tpm_keys, soft_keys) = key_files(dir);
    for prefix in ["edgesec_ca_root-", "edgesec_ca_edge-", "edgesec_device-key"] {
        assert!(
            tpm_keys.iter().any(|f| f.starts_with(prefix)),
            "{prefix} not among the TPM keys {tpm_keys:?}"
        );
    }
    assert!(
        soft_keys
            .iter()
            .all(|f| !f.starts_with("edgesec_ca") && !f.starts_with("edgesec_device-key")),
        "{soft_keys:?}"
    );
    assert!(
        soft_keys.iter().any(|f| f.starts_with("keyd_handle-key")),
        "{soft_keys:?}"
    );

    // The operator sees where the keys are.
    let out = edgesec(&bins, dir, &["system", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&out);
    for part in [
        "routed (some keys hardware-backed)",
        "tpm (hardware-backed): *",
        "soft (software): keyd/*",
    ] {
        assert!(status.contains(part), "{part:?} not in {status}");
    }

    // A quote of the device, a policy from it (this device is the golden one), and a verdict:
    // all through the real CLI.
    let out = edgesec(
        &bins,
        dir,
        &["attest", "quote", "--nonce", NONCE, "-o", "q.json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = edgesec(&bins, dir, &["attest", "policy", "--quote", "q.json"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.join("allowed.json"), &out.stdout).unwrap();
    let quote: Value = serde_json::from_slice(&std::fs::read(dir.join("q.json")).unwrap()).unwrap();
    assert_eq!(quote["log"], "tpm", "{quote}");
    let out = verify(&bins, dir, &quote, NONCE);
    assert!(
        out.status.success(),
        "a fresh quote is trusted: {}",
        text(&out)
    );

    let events = quote["events"].as_array().unwrap();
    assert!(events.len() >= 3, "{quote}");
    let last = events.len() - 1;
    let mut altered = quote.clone();
    altered["events"][last]["name"] = "not-what-was-measured".into();
    let out = verify(&bins, dir, &altered, NONCE);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("event {last} (")) && text(&out).contains("altered"),
        "{}",
        text(&out)
    );

    let out = verify(&bins, dir, &quote, "0123456789abcdef");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("FAIL nonce"), "{}", text(&out));

    let mut foreign = quote.clone();
    let pcr = foreign["pcrs"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    foreign["pcrs"][&pcr] = "ab".repeat(32).into();
    let out = verify(&bins, dir, &foreign, NONCE);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("FAIL pcr digest"), "{}", text(&out));

    let status = daemon.terminate(Duration::from_secs(60));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "edgesecd did not exit with 0 after SIGTERM\n{}",
        std::fs::read_to_string(dir.join("edgesecd.log")).unwrap_or_default()
    );

    // Independently: OpenSSL accepts the chains the TPM-held CA keys signed.
    if !have_tool("openssl") {
        return;
    }
    let (ok, out) = openssl_verify(
        &dir.join("dump/server"),
        "server",
        &["-purpose", "sslserver", "-verify_hostname", "localhost"],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl_verify(
        &dir.join("dump/client"),
        "identity",
        &["-purpose", "sslclient"],
    );
    assert!(ok, "{out}");
    drop(swtpm);
}
