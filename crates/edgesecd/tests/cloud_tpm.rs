//! DPS TPM attestation end to end: the real edgesecd, with the real keyd on the TPM backend
//! (its own swtpm), provisions against `edgesec-cloudsim` with the TPM's endorsement key
//! enrolled. The service's challenge is imported into the TPM, the registration is signed with
//! that key, the device is assigned, and the hub accepts the device's SAS tokens signed in the
//! TPM: module identities are created there, before and after a restart. Skipped when swtpm is
//! missing, except in CI.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};
use edgesec_keys::KeyStore as _;
use edgesec_keys::tpm::testing::Swtpm;
use edgesec_keys::tpm::{DEFAULT_SRK_HANDLE, Tpm, TpmConfig, TpmKeyStore};

const QUICKSTART_PROVISIONING: &str =
    "[provisioning]\nsource = \"local\"\ndevice_id = \"quickstart-device\"\n";
/// Where edgesecd keeps the key DPS hands over (edgesecd's own choice of id).
const TPM_AUTH_KEY_ID: &str = "edgesec/tpm-auth-key";

/// The endorsement key the TPM behind `swtpm` reports, read the way keyd reads it (and so
/// created and persisted there before keyd starts).
fn endorsement_key(swtpm: &Swtpm) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::connect(&TpmConfig {
        tcti: swtpm.tcti(),
        srk_handle: DEFAULT_SRK_HANDLE,
    })
    .unwrap();
    let store = TpmKeyStore::open(dir.path(), tpm).unwrap();
    store.tpm_public_keys().unwrap().endorsement_key
}

/// The quickstart turned into a TPM device: keyd on the TPM backend (this swtpm), edgesecd
/// provisioning with DPS TPM attestation, the probe as the agent.
fn tpm_device_config(base: String, sim: &CloudSim, ca: &Path, agent_box: &Path) -> String {
    assert!(base.contains(QUICKSTART_PROVISIONING));
    let provisioning = format!(
        "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"{}\"\nid_scope = \"0ne00TPM01\"\n\n\
         [provisioning.attestation]\nmethod = \"tpm\"\nregistration_id = \"tpm-dev\"\n",
        sim.endpoint()
    );
    format!(
        "cloud_timeout_sec = 20\n{}\n[cloud]\ntrusted_ca_certs = [\"{}\"]\ndps_poll_interval_secs = 1\nretry_base_delay_ms = 100\n",
        base.replace(QUICKSTART_PROVISIONING, &provisioning)
            .replace("command = \"edgesec-agent\"", &Edge::probe_agent(agent_box)),
        ca.display()
    )
}

fn keyd_on_tpm(dir: &Path, swtpm: &Swtpm) {
    let path = dir.join("keyd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("backend = \"soft\""), "{text}");
    let text = text.replace("backend = \"soft\"", "backend = \"tpm\"")
        + &format!("\n[tpm]\ntcti = \"{}\"\n", swtpm.tcti());
    std::fs::write(path, text).unwrap();
}

fn create_identity(agent: &Probe, mgmt: &Path, module_id: &str) -> (u16, String) {
    agent.call(
        mgmt,
        "POST",
        &format!("/identities?{V}"),
        Some(&format!(
            "{{\"moduleId\":\"{module_id}\",\"managedBy\":\"iotedge\"}}"
        )),
    )
}

#[test]
fn a_tpm_device_provisions_through_dps_and_the_hub_takes_its_tpm_signed_tokens() {
    let tpm_state = tempfile::tempdir().unwrap();
    let Some(swtpm) = Swtpm::start(tpm_state.path()) else {
        return;
    };
    let sim = CloudSim::start();
    let files = tempfile::tempdir().unwrap();
    let ca: PathBuf = files.path().join("sim-ca.pem");
    std::fs::write(&ca, sim.server_ca_pem()).unwrap();

    let ek = endorsement_key(&swtpm);
    let mut e = Enrollment::new(
        "tpm-dev",
        EnrollmentAttestation::Tpm {
            endorsement_key_b64: Some(STANDARD.encode(&ek)),
        },
    );
    e.device_id = Some("tpm-device-1".into());
    e.assigning_polls = 1;
    sim.enroll(e);

    let agent_box = tempfile::tempdir().unwrap().keep();
    let mut edge = Edge::example(
        "quickstart",
        &deployment(&[]),
        |c| tpm_device_config(c, &sim, &ca, &agent_box),
        |dir| {
            keyd_on_tpm(dir, &swtpm);
            Vec::new()
        },
    );
    let agent = Probe::new(&agent_box);
    agent.wait_ready();

    let (code, body) = edge.mgmt("GET", &format!("/status?{V}"), None);
    assert_eq!(code, 200, "{body}");
    let d = serde_json::from_str::<serde_json::Value>(&body).unwrap()["device"].clone();
    assert_eq!(d["id"], "tpm-device-1", "{d}\n{}", edge.log());
    assert_eq!(d["hub"], sim.hub_hostname());
    assert_eq!(d["source"], "dps");
    assert_eq!(d["credential"], "tpm");

    // DPS saw the challenge round (no token: 401 with the authentication key), then a
    // registration signed with the imported key.
    let regs = sim.registrations("tpm-dev");
    assert_eq!(regs.len(), 2, "{regs:?}");
    assert_eq!(
        (regs[0].method.as_str(), regs[0].accepted),
        ("tpm-challenge", false)
    );
    assert_eq!((regs[1].method.as_str(), regs[1].accepted), ("tpm", true));
    let register = "PUT /0ne00TPM01/registrations/tpm-dev/register";
    assert_eq!(
        sim.requests()[..2],
        [format!("{register} -> 401"), format!("{register} -> 202")]
    );
    assert!(sim.hub_has_device("tpm-device-1"));

    // The key DPS sent lives in the TPM behind keyd: it signs but gives nothing out.
    let keyd = edgesec_keyd::client::KeydClient::new(edge.path("run/keyd.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let caps = keyd.capabilities().await.unwrap();
        assert_eq!(caps.backend, "tpm");
        let h = keyd.load_key(TPM_AUTH_KEY_ID).await.unwrap();
        assert_eq!(h.algorithm, "hmac-sha256");
        let e = keyd.derive(&h.key_handle, b"x").await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    });

    // A hub call signed with the TPM key: the hub checks the token against the key it issued.
    let mgmt = edge.path("run/mgmt.sock");
    let (code, body) = create_identity(&agent, &mgmt, "reader");
    assert_eq!(code, 200, "{body}\n{}", edge.log());
    assert!(
        sim.hub_modules("tpm-device-1")
            .iter()
            .any(|m| m.module_id == "reader")
    );

    // After a restart (keyd too) the device comes back from its cache and still reaches the hub
    // with the same TPM key.
    edge.stop();
    std::fs::remove_file(agent_box.join("pid")).unwrap();
    edge.start().expect("edgesecd restarts");
    agent.wait_ready();
    let (code, body) = create_identity(&agent, &mgmt, "writer");
    assert_eq!(code, 200, "{body}\n{}", edge.log());
    assert!(
        sim.hub_modules("tpm-device-1")
            .iter()
            .any(|m| m.module_id == "writer")
    );
    let requests = sim.requests();
    let unauthorized_hub_calls: Vec<_> = requests
        .iter()
        .filter(|r| r.contains("/devices/tpm-device-1/") && r.ends_with("-> 401"))
        .collect();
    assert!(unauthorized_hub_calls.is_empty(), "{requests:?}");
}
