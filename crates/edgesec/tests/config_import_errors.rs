//! `edgesec config import` on malformed IoT Edge configs: wrong types, unknown provisioning
//! sources, mixed variants, missing files. Each is answered with the file, line and key, exit
//! code 78, and nothing written.

mod common;

use std::process::Command;

use common::fixtures::*;
use common::*;

#[test]
fn malformed_inputs_are_answered_with_key_and_line() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    files(dir);
    let d = dir.display();
    let cs = "[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName=h;DeviceId=d;SharedAccessKey=a2V5LWJ5dGVz\"\n";
    let dps =
        "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"https://g\"\nid_scope = \"0ne1\"\n";
    let cases: Vec<(String, &str)> = vec![
        // wrong types
        (
            format!("hostname = 5\n{cs}"),
            ":1: key `hostname`: invalid type: integer `5`, expected a string",
        ),
        (
            format!("{cs}\n[edge_ca]\nauto_generated_edge_ca_expiry_days = \"90\"\n"),
            ":6: key `edge_ca.auto_generated_edge_ca_expiry_days`: invalid type",
        ),
        (
            format!("{cs}[agent]\nenv = [\"A=1\"]\n"),
            ":5: key `agent.env`: invalid type",
        ),
        // unknown provisioning source and methods
        (
            "[provisioning]\nsource = \"cloud\"\n".into(),
            ":2: key `provisioning.source`: unknown variant `cloud`, expected `manual` or `dps`",
        ),
        (
            format!("{dps}[provisioning.attestation]\nmethod = \"sas\"\n"),
            ":6: key `provisioning.attestation.method`: \"sas\" is not a DPS attestation method",
        ),
        // mixed variants
        (
            format!(
                "{cs}[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = {{ value = \"a2V5\" }}\n"
            ),
            ":4: key `provisioning.authentication`: give either connection_string or",
        ),
        (
            format!(
                "{dps}[provisioning.attestation]\nmethod = \"symmetric_key\"\nregistration_id = \"r\"\nsymmetric_key = {{ value = \"a2V5\" }}\nidentity_cert = \"file://{d}/certs/kiosk-19.pem\"\n"
            ),
            ":9: key `provisioning.attestation.identity_cert`: not used with method = \"symmetric_key\"",
        ),
        (
            format!("{dps}connection_string = \"HostName=h;DeviceId=d;SharedAccessKey=a2V5\"\n"),
            ":5: key `provisioning.connection_string`: not used with source = \"dps\"",
        ),
        (
            format!("{cs}[provisioning.attestation]\nmethod = \"tpm\"\n"),
            ":4: key `provisioning.attestation`: not used with source = \"manual\"",
        ),
        (
            format!(
                "{cs}[edge_ca]\ncert = \"file://{d}/certs/edge-ca.pem\"\npk = \"file://{d}/private/edge-ca.key.pem\"\nauto_generated_edge_ca_expiry_days = 90\n"
            ),
            ":7: key `edge_ca.auto_generated_edge_ca_expiry_days`: mixes [edge_ca] variants",
        ),
        (
            format!("{cs}[edge_ca]\ncert = \"file://{d}/certs/edge-ca.pem\"\n"),
            ":5: key `edge_ca.cert`: a preloaded edge CA needs both cert and pk",
        ),
        (
            format!(
                "{dps}[provisioning.attestation]\nmethod = \"symmetric_key\"\nsymmetric_key = {{ value = \"a2V5\" }}\n"
            ),
            ":5: key `provisioning.attestation.registration_id`: missing",
        ),
        // missing files
        (
            format!("trust_bundle_cert = \"file://{d}/nope.pem\"\n{cs}"),
            ":1: key `trust_bundle_cert`: the file",
        ),
        (
            format!(
                "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = {{ uri = \"file://{d}/private/missing\" }}\n"
            ),
            ":7: key `provisioning.authentication.device_id_pk.uri`: the file",
        ),
        (
            format!(
                "{cs}[edge_ca]\ncert = \"file://{d}/certs/edge-ca.pem\"\npk = \"file://{d}/private/gone.key.pem\"\n"
            ),
            ":6: key `edge_ca.pk`: the file",
        ),
        // values that parse but cannot be used
        (
            "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = { value = \"not base64!\" }\n"
                .to_string(),
            ":7: key `provisioning.authentication.device_id_pk.value`: not base64",
        ),
        (
            format!(
                "[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"x509\"\nidentity_cert = \"file://{d}/certs/robot12.pem\"\nidentity_pk = \"pkcs11:token=edge;object=device-id\"\n"
            ),
            ":8: key `provisioning.authentication.identity_pk`: a PKCS#11 URI cannot be carried over",
        ),
        (
            format!("{cs}[edge_ca.auto_renew]\nthreshold = \"soon\"\n"),
            ":5: key `edge_ca.auto_renew.threshold`: invalid value \"soon\"",
        ),
        (
            "[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName=h;DeviceId=d\"\n"
                .into(),
            ":3: key `provisioning.connection_string`: needs HostName, DeviceId and SharedAccessKey",
        ),
        ("hostname = \"h\"\n".into(), ": key `provisioning`: missing"),
        // not TOML
        (
            "hostname = \"h\"\n[provisioning\nsource = \"manual\"\n".into(),
            ":2: ",
        ),
    ];
    for (n, (text, needle)) in cases.iter().enumerate() {
        let src = dir.join(format!("bad-{n}.toml"));
        std::fs::write(&src, text).unwrap();
        let out = Command::new(edgesec_bin())
            .args(["config", "import"])
            .arg(&src)
            .arg("-o")
            .arg(dir.join(format!("out-{n}.toml")))
            .args(["--keyd-socket", "/nonexistent/keyd.sock"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "case {n}: {text}\n{err}");
        let want = format!("error: {}{needle}", src.display());
        assert!(err.starts_with(&want), "case {n}: want {want:?}\ngot {err}");
        assert!(err.contains("\nhint: fix that key"), "case {n}: {err}");
        assert!(
            !dir.join(format!("out-{n}.toml")).exists(),
            "nothing written on an error"
        );
    }

    let out = Command::new(edgesec_bin())
        .args(["config", "import"])
        .arg(dir.join("missing.toml"))
        .args(["-o", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("missing.toml: No such file or directory")
            && err.contains("hint: give the IoT Edge config"),
        "{err}"
    );
}
