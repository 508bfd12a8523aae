//! `edgesec config import` over realistic IoT Edge configs (tests/fixtures/aziot/, one per
//! provisioning and edge CA variant): each converted config loads in edgesecd, keeps no
//! secret in clear, and names what it could not carry over with key and line. Malformed
//! inputs are answered with the key and line. With a real keyd the key goes into keyd, and
//! edgesecd boots on the converted config; a DPS config whose attestation keyd cannot do fails
//! the boot with what went wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::fixtures::*;
use common::*;
use edgesec_pki::CaMode;
use edgesec_pki::config::KeySource;
use edgesecd::config::{DeviceAuth, DpsAttestation, ProvisioningSource, ReprovisionMode};

#[test]
fn every_variant_converts_to_a_config_that_loads() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    files(dir);
    let no_keyd = dir.join("run/no-keyd.sock");

    // manual, connection string: the key leaves the config for a 0600 file (keyd is down)
    let i = import(dir, "manual-connection-string.toml", &no_keyd, &[]);
    let c = i.load();
    assert_eq!(c.hostname, "line3-gateway");
    assert_eq!(c.provisioning.source, ProvisioningSource::Manual);
    assert_eq!(c.provisioning.device_id, "line3-gateway");
    assert_eq!(
        c.provisioning.iothub_hostname,
        "plant1-hub.azure-devices.net"
    );
    let key_path = dir.join("manual-connection-string/device-key");
    assert_eq!(
        c.provisioning.auth,
        DeviceAuth::SasKey(KeySource::File(key_path.clone()))
    );
    assert_eq!(key_file(&key_path), b64(CS_KEY));
    assert!(
        !i.text.contains(CS_KEY) && !i.text.contains("SharedAccessKey"),
        "{}",
        i.text
    );
    assert!(
        i.stderr()
            .contains("warning: provisioning.connection_string: keyd does not answer"),
        "{}",
        i.stderr()
    );
    assert_eq!(c.management.socket, dir.join("run/mgmt.sock"));
    assert_eq!(c.workload.socket, dir.join("run/workload.sock"));
    assert_eq!(
        (
            c.management.max_connections_per_uid,
            c.workload.max_connections_per_uid
        ),
        (40, 12)
    );
    assert_eq!(
        c.agent.env.get("UpstreamProtocol").map(String::as_str),
        Some("AmqpWs")
    );
    assert_eq!(
        c.agent
            .env
            .get("SendRuntimeQualityTelemetry")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(c.pki.edge_ca.mode, CaMode::Quickstart);
    assert_eq!(c.pki.edge_ca.expiry_days, 180);
    assert_eq!(
        c.pki.edge_ca.auto_renew.threshold,
        edgesec_pki::Threshold::Percent(80)
    );
    assert_eq!(
        c.pki.trust_bundle_cert.as_ref().unwrap().0,
        dir.join("certs/plant-root-ca.pem")
    );
    assert_eq!(c.state_dir, dir.join("state"));
    i.dropped(
        "moby_runtime",
        "[moby_runtime]",
        "container runtime not available yet",
    );
    i.dropped("agent.type", "type = \"docker\"", "runs edgesec-agent");
    i.dropped("agent.config", "[agent.config]", "no container runtime");
    i.dropped(
        "allow_elevated_docker_permissions",
        "allow_elevated",
        "no container runtime",
    );
    i.dropped(
        "image_garbage_collection",
        "[image_garbage_collection]",
        "no images to collect",
    );
    assert!(i.stderr().contains(&format!(
        "  edge_ca.auto_renew.threshold (line {}) -> edge_ca.auto_renew.threshold",
        i.line("threshold")
    )));

    // manual SAS key inline; a preloaded edge CA, which is never renewed
    let i = import(dir, "manual-sas-value.toml", &no_keyd, &[]);
    let c = i.load();
    assert_eq!(c.provisioning.device_id, "press7");
    assert_eq!(
        key_file(&dir.join("manual-sas-value/device-key")),
        b64(SAS_KEY)
    );
    assert!(!i.text.contains(SAS_KEY));
    assert_eq!(c.pki.edge_ca.mode, CaMode::Provided);
    assert_eq!(
        c.pki.edge_ca.cert.as_ref().unwrap().0,
        dir.join("certs/edge-ca.pem")
    );
    assert_eq!(
        c.pki.edge_ca.pk,
        Some(KeySource::File(dir.join("private/edge-ca.key.pem")))
    );
    i.dropped(
        "edge_ca.auto_renew",
        "[edge_ca.auto_renew]",
        "never renews a provided",
    );

    // manual SAS key in a file of raw bytes; fd:// sockets; an EST-issued edge CA
    let i = import(dir, "manual-sas-file.toml", &no_keyd, &[]);
    let c = i.load();
    assert_eq!(key_file(&dir.join("manual-sas-file/device-key")), RAW_KEY);
    assert_eq!(c.management.socket, Path::new("/var/run/iotedge/mgmt.sock"));
    assert_eq!(c.pki.edge_ca.mode, CaMode::Quickstart);
    i.dropped(
        "listen.management_uri",
        "management_uri = \"fd:",
        "socket activation",
    );
    i.dropped(
        "listen.min_tls_version",
        "min_tls_version",
        "TLS settings do not apply",
    );
    i.dropped(
        "edge_ca",
        "[edge_ca]",
        "EST issuance of the edge CA is not supported yet",
    );
    i.dropped(
        "cert_issuance.est",
        "[cert_issuance.est]",
        "EST issuance is not supported yet",
    );
    assert_eq!(c.provisioning.reprovisioning, ReprovisionMode::OnError);
    assert!(
        i.stderr().contains(&format!(
            "  auto_reprovisioning_mode (line {}) -> auto_reprovisioning_mode",
            i.line("auto_reprovisioning_mode")
        )),
        "{}",
        i.stderr()
    );
    assert!(!i.text.contains("est-password-not-real"));

    // manual X.509 with a local-CA-issued edge CA
    let i = import(dir, "manual-x509.toml", &no_keyd, &[]);
    let c = i.load();
    assert_eq!(
        c.provisioning.auth,
        DeviceAuth::X509 {
            identity_cert: dir.join("certs/robot12.pem"),
            identity_pk: KeySource::File(dir.join("private/robot12.key.pem")),
        }
    );
    assert_eq!(c.pki.edge_ca.mode, CaMode::Issued);
    assert_eq!(
        c.pki.edge_ca.issuer_cert.as_ref().unwrap().0,
        dir.join("certs/plant-ca.pem")
    );
    assert_eq!(c.pki.edge_ca.expiry_days, 60);
    assert_eq!(
        c.pki.edge_ca.common_name.as_deref(),
        Some("robot12 edge CA")
    );
    i.dropped("watchdog.max_retries", "max_retries", "never gives up");
    let check = Command::new(edgesec_bin())
        .args(["config", "check"])
        .arg(&i.config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // DPS, symmetric key, individual and group enrollment
    let i = import(dir, "dps-symmetric-key.toml", &no_keyd, &[]);
    let c = i.load();
    let dps_key = dir.join("dps-symmetric-key/dps-key");
    let DeviceAuth::Dps {
        global_endpoint,
        id_scope,
        registration_id,
        attestation,
    } = &c.provisioning.auth
    else {
        panic!("{:?}", c.provisioning.auth)
    };
    assert_eq!(
        global_endpoint,
        "https://global.azure-devices-provisioning.net"
    );
    assert_eq!(id_scope, "0ne00AB12CD");
    assert_eq!(registration_id.as_deref(), Some("line3-gateway"));
    assert_eq!(
        *attestation,
        DpsAttestation::SymmetricKey(KeySource::File(dps_key.clone()))
    );
    assert_eq!(key_file(&dps_key), b64(DPS_KEY));
    assert!(!i.text.contains(DPS_KEY));
    assert_eq!(c.provisioning.reprovisioning, ReprovisionMode::Dynamic);

    let i = import(dir, "dps-symmetric-key-group.toml", &no_keyd, &[]);
    let c = i.load();
    assert_eq!(
        key_file(&dir.join("dps-symmetric-key-group/dps-key")),
        b64(DPS_KEY),
        "a base64 key file is decoded"
    );
    assert_eq!(c.pki.edge_ca.mode, CaMode::Quickstart);
    assert_eq!(c.pki.edge_ca.expiry_days, 30);
    assert_eq!(
        c.pki.edge_ca.common_name.as_deref(),
        Some("sensor-hub-0042 edge CA")
    );
    assert_eq!(
        c.provisioning.dps_payload.as_deref(),
        Some(dir.join("dps-payload.json").as_path())
    );

    // DPS X.509: the registration id is the certificate's CN
    let i = import(dir, "dps-x509.toml", &no_keyd, &[]);
    let c = i.load();
    let DeviceAuth::Dps {
        registration_id,
        attestation,
        ..
    } = &c.provisioning.auth
    else {
        panic!()
    };
    assert_eq!(registration_id.as_deref(), Some("kiosk-19"));
    assert!(
        matches!(attestation, DpsAttestation::X509 { identity_cert, .. } if *identity_cert == dir.join("certs/kiosk-19.pem"))
    );

    // DPS TPM under a parent gateway
    let i = import(dir, "dps-tpm.toml", &no_keyd, &[]);
    let c = i.load();
    let DeviceAuth::Dps { attestation, .. } = &c.provisioning.auth else {
        panic!()
    };
    assert_eq!(*attestation, DpsAttestation::Tpm);
    i.dropped("parent_hostname", "parent_hostname", "nested edge");
    i.dropped("tpm", "[tpm]", "keyd's config");
    i.dropped("aziot_keys", "[aziot_keys]", "keyd's config");
    assert_eq!(c.provisioning.reprovisioning, ReprovisionMode::OnError);

    // an existing output is not overwritten without -f
    let again = import(dir, "dps-tpm.toml", &no_keyd, &[]);
    assert_eq!(again.out.status.code(), Some(1));
    assert!(again.stderr().contains("pass -f"), "{}", again.stderr());
    assert!(
        import(dir, "dps-tpm.toml", &no_keyd, &["-f"])
            .out
            .status
            .success()
    );
}

struct Keyd(std::process::Child);

impl Drop for Keyd {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start_keyd(dir: &Path) -> (Keyd, PathBuf) {
    let conf = dir.join("keyd.toml");
    std::fs::write(
        &conf,
        "socket = \"run/keyd.sock\"\nstate_dir = \"state/keyd\"\n[store]\nbackend = \"soft\"\n\
         [[principal]]\nuid = \"self\"\nkeys = [\"*\"]\nexport = [\"*\"]\n",
    )
    .unwrap();
    let child = Command::new(sibling("edgesec-keyd"))
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = dir.join("run/keyd.sock");
    wait_until(
        "keyd",
        || std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        String::new,
    );
    (Keyd(child), sock)
}

#[test]
fn keys_go_into_keyd_and_edgesecd_boots_on_the_result() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    files(dir);
    let (_keyd, sock) = start_keyd(dir);

    let i = import(dir, "manual-connection-string.toml", &sock, &[]);
    i.load();
    assert!(
        i.text
            .contains("device_id_pk = \"keyd:edgesec/device-key\""),
        "{}",
        i.text
    );
    assert!(i.stderr().contains("imported into keyd"), "{}", i.stderr());
    assert!(
        !dir.join("manual-connection-string/device-key").exists(),
        "no key file when keyd answers"
    );

    // keyd holds exactly the connection string's key
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = edgesec_keyd::client::KeydClient::new(&sock);
    let sig = rt.block_on(async {
        let h = client.load_key("edgesec/device-key").await.unwrap();
        client
            .sign(
                &h.key_handle,
                edgesec_keys::SignAlgorithm::HmacSha256,
                edgesec_keys::SignInput::Message(b"probe"),
            )
            .await
            .unwrap()
    });
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &b64(CS_KEY));
    assert_eq!(sig, aws_lc_rs::hmac::sign(&k, b"probe").as_ref());

    // the same key again is fine; a different one under the same id needs -f
    let again = import(dir, "manual-connection-string.toml", &sock, &["-f"]);
    assert!(
        again.stderr().contains("already holds it"),
        "{}",
        again.stderr()
    );
    let other = import(dir, "manual-sas-value.toml", &sock, &[]);
    assert_eq!(other.out.status.code(), Some(1));
    assert!(
        other
            .stderr()
            .contains("keyd already holds a different key edgesec/device-key; pass -f"),
        "{}",
        other.stderr()
    );

    // edgesecd boots on the converted config and uses the imported key's identity
    let log = std::fs::File::create(dir.join("edgesecd.log")).unwrap();
    let mut daemon = Command::new(sibling("edgesecd"))
        .arg("--config")
        .arg(&i.config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mgmt = dir.join("run/mgmt.sock");
    wait_until(
        "edgesecd on the converted config",
        || {
            assert!(
                daemon.try_wait().unwrap().is_none(),
                "{}",
                std::fs::read_to_string(dir.join("edgesecd.log")).unwrap()
            );
            std::os::unix::net::UnixStream::connect(&mgmt).is_ok()
        },
        || std::fs::read_to_string(dir.join("edgesecd.log")).unwrap_or_default(),
    );
    let out = Command::new(edgesec_bin())
        .arg("--config")
        .arg(&i.config)
        .args(["system", "status", "--json"])
        .output()
        .unwrap();
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s["device"],
        serde_json::json!({
            "id": "line3-gateway",
            "hub": "plant1-hub.azure-devices.net",
            "source": "manual",
            "credential": "sas",
            "from_cache": false,
            "reprovisioning": "on-error",
        })
    );
    assert_eq!(s["ca"]["mode"], "quickstart");

    // a converted DPS TPM config loads; with keyd's software store (no TPM) the boot fails
    // and says why
    let i = import(dir, "dps-tpm.toml", &sock, &[]);
    i.load();
    let out = Command::new(sibling("edgesecd"))
        .arg("--config")
        .arg(&i.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("provisioning with DPS failed") && err.contains("TPM"),
        "{err}"
    );
}
