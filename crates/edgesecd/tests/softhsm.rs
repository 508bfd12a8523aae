//! The quickstart with its CA and device keys on a PKCS#11 token: `examples/softhsm/` run as
//! shipped (keyd routes `edgesec/ca/*` and `edgesec/device-key` to a SoftHSM2 token), with a
//! probe module that gets a signature and a server certificate through the workload API.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;

const LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// SoftHSM2 and OpenSC are there; a test may skip without them, except in CI.
fn have_softhsm() -> bool {
    let found = Path::new(LIBRARY).exists()
        && ["softhsm2-util", "pkcs11-tool", "openssl"].iter().all(|t| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SoftHSM2, pkcs11-tool and openssl are required in CI"
        );
        eprintln!("skipping: SoftHSM2 or OpenSC is not installed");
    }
    found
}

/// What examples/softhsm/README.md says to do: a token labelled `edgesec` in a private token
/// directory, and the user PIN in `pkcs11.pin` (0600).
fn init_token(dir: &Path) -> Vec<(String, String)> {
    let hsm = dir.join("softhsm");
    std::fs::create_dir_all(hsm.join("tokens")).unwrap();
    let conf = hsm.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            hsm.join("tokens").display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "edgesec"])
        .args(["--so-pin", "5678", "--pin", "1234"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pin = dir.join("pkcs11.pin");
    std::fs::write(&pin, "1234\n").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    vec![("SOFTHSM2_CONF".into(), conf.display().to_string())]
}

fn token_objects(edge: &Edge) -> String {
    let out = Command::new("pkcs11-tool")
        .args(["--module", LIBRARY, "--token-label", "edgesec"])
        .args(["--login", "--pin", "1234", "--list-objects"])
        .env("SOFTHSM2_CONF", edge.path("softhsm/softhsm2.conf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_quickstart_runs_with_its_ca_and_device_keys_on_the_token() {
    if !have_softhsm() {
        return;
    }
    let agent_box = tempfile::tempdir().unwrap().keep();
    let edge = Edge::example(
        "softhsm",
        &deployment(&[]),
        |c| {
            c.replace(
                "command = \"edgesec-agent\"",
                &Edge::probe_agent(&agent_box),
            )
        },
        init_token,
    );
    let agent = Probe::new(&agent_box);
    agent.wait_ready();

    // a module, added and started through the management API as the agent does
    let module = Probe::new_box();
    let spec = serde_json::json!({ "name": "mod-a", "type": "process", "config": {
        "settings": { "command": python(), "args": [probe_script(), &module.dir] } } });
    let mgmt = edge.path("run/mgmt.sock");
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/modules?{V}"),
        Some(&spec.to_string()),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = agent.call(&mgmt, "POST", &format!("/modules/mod-a/start?{V}"), None);
    assert_eq!(code, 204, "{body}");
    module.wait_ready();
    let (_, body) = edge.mgmt("GET", &format!("/identities?{V}"), None);
    let ids: serde_json::Value = serde_json::from_str(&body).unwrap();
    let genid = ids["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["moduleId"] == "mod-a")
        .unwrap()["generationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let workload = edge.path("run/mnt/mod-a.sock");

    // a signature: HMAC-SHA256 under the module key, which the token derives from the device key
    let data = b"hub.example%2Fdevices%2Fd%2Fmodules%2Fmod-a\n1796304423";
    let body = serde_json::json!({ "keyId": "primary", "algo": "HMACSHA256",
        "data": STANDARD.encode(data) });
    let (code, reply) = module.call(
        &workload,
        "POST",
        &format!("/modules/mod-a/genid/{genid}/sign?{V}"),
        Some(&body.to_string()),
    );
    assert_eq!(code, 200, "{reply}");
    let keyd = edgesec_keyd::client::KeydClient::new(edge.path("run/keyd.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (module_key, caps) = rt.block_on(async {
        let device = keyd.load_key("edgesec/device-key").await.unwrap();
        let label = format!("mod-a:{genid}:primary");
        let child = keyd
            .derive(&device.key_handle, label.as_bytes())
            .await
            .unwrap();
        let key = keyd
            .export_derived(&child.key_handle)
            .await
            .unwrap()
            .to_vec();
        (key, keyd.capabilities().await.unwrap())
    });
    let expected = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &module_key),
        data,
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply).unwrap()["digest"],
        STANDARD.encode(expected)
    );
    assert_eq!(caps.backend, "routed");

    // a server certificate, signed by the edge CA whose key is on the token
    let (code, reply) = module.call(
        &workload,
        "POST",
        &format!("/modules/mod-a/genid/{genid}/certificate/server?{V}"),
        Some(r#"{"commonName":"mod-a.local"}"#),
    );
    assert_eq!(code, 201, "{reply}");
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let chain = v["certificate"].as_str().unwrap();
    let split = chain.find("-----END CERTIFICATE-----").unwrap() + 26;
    std::fs::write(edge.path("leaf.pem"), &chain[..split]).unwrap();
    std::fs::write(edge.path("edge-ca.pem"), &chain[split..]).unwrap();
    let out = Command::new("openssl")
        .current_dir(edge.dir.path())
        .args([
            "verify",
            "-partial_chain",
            "-CAfile",
            "edge-ca.pem",
            "leaf.pem",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl rejected the token-signed certificate: {out:?}"
    );

    // the CA keys and the device key are token objects that never left the token; the rest
    // (keyd's handle key, the workload encryption key) is in the software store
    let objects = token_objects(&edge);
    assert!(
        objects.contains("label:      edgesec/device-key"),
        "{objects}"
    );
    let ca_keys = objects.matches("label:      edgesec/ca/").count();
    assert!(
        ca_keys >= 4,
        "a root and an edge CA key pair on the token: {objects}"
    );
    let secret = objects.matches("Private Key Object").count()
        + objects.matches("Secret Key Object").count();
    assert_eq!(
        objects.matches("never extractable").count(),
        secret,
        "{objects}"
    );
    assert!(!objects.contains("keyd/handle-key"), "{objects}");
    let soft: Vec<String> = std::fs::read_dir(edge.path("state/keyd/keys"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        soft.iter()
            .all(|f| !f.starts_with("edgesec_ca") && !f.starts_with("edgesec_device-key")),
        "{soft:?}"
    );
    assert!(
        soft.iter().any(|f| f.starts_with("keyd_handle-key")),
        "{soft:?}"
    );
}
