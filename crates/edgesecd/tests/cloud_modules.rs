//! Module identities of a hub-connected device, end to end against `edgesec-cloudsim`: made
//! through the management API, they live in the hub with keys derived in keyd from the device
//! key, so what a module signs through the workload API verifies with the key the hub holds;
//! with the hub away they are kept locally and made in the hub later.

#[path = "common/cloud.rs"]
mod cloud_support;
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloud_support::*;
use common::*;
use edgesec_cloudsim::{CloudSim, HubDeviceAuth};

fn module_spec(name: &str, probe: &Probe) -> String {
    serde_json::json!({ "name": name, "type": "process", "config": {
        "settings": { "command": python(), "args": [probe_script(), &probe.dir] } } })
    .to_string()
}

#[test]
fn module_identities_live_in_the_hub_and_module_tokens_verify_there() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let device_key = key_b64(9);
    sim.add_hub_device(
        "press-7",
        HubDeviceAuth::Sas {
            key_b64: device_key.clone(),
        },
    );
    let provisioning = format!(
        "[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName={};DeviceId=press-7;SharedAccessKey={device_key}\"\n",
        sim.hub_hostname()
    );
    let agent_box = tempfile::tempdir().unwrap().keep();
    let edge = Edge::with_config(&deployment(&[]), |c| {
        files.config(
            c.replace(
                "command = \"edgesec-agent\"",
                &Edge::probe_agent(&agent_box),
            ),
            "",
            &provisioning,
        )
    });
    let agent = Probe::new(&agent_box);
    agent.wait_ready();
    let mgmt = edge.path("run/mgmt.sock");

    // the agent creates identities; the hub holds them with keys derived from the device key
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/identities?{V}"),
        Some(r#"{"moduleId":"reader","managedBy":"iotedge"}"#),
    );
    assert_eq!(code, 200, "{body}\n{}", edge.log());
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let gen_id = created["generationId"].as_str().unwrap().to_owned();
    let in_hub = sim.hub_modules("press-7");
    let m = in_hub.iter().find(|m| m.module_id == "reader").unwrap();
    assert_eq!(m.generation_id, gen_id);
    let dk = STANDARD.decode(&device_key).unwrap();
    assert_eq!(
        m.primary_key.as_deref(),
        Some(hmac_b64(&dk, format!("reader:{gen_id}:primary").as_bytes()).as_str())
    );
    assert_eq!(
        m.secondary_key.as_deref(),
        Some(hmac_b64(&dk, format!("reader:{gen_id}:secondary").as_bytes()).as_str())
    );

    // the module runs with that identity; what it signs verifies with the hub's key
    let reader = Probe::new_box();
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/modules?{V}"),
        Some(&module_spec("reader", &reader)),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        agent
            .call(&mgmt, "POST", &format!("/modules/reader/start?{V}"), None)
            .0,
        204
    );
    reader.wait_ready();
    let sr = format!(
        "{}%2Fdevices%2Fpress-7%2Fmodules%2Freader",
        sim.hub_hostname()
    );
    let to_sign = format!("{sr}\n1900000000");
    let (code, body) = reader.call(
        &edge.path("run/workload.sock"),
        "POST",
        &format!("/modules/reader/genid/{gen_id}/sign?{V}"),
        Some(
            &serde_json::json!({ "keyId": "primary", "algo": "HMACSHA256", "data": STANDARD.encode(&to_sign) })
                .to_string(),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let digest = serde_json::from_str::<serde_json::Value>(&body).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let hub_key = STANDARD.decode(m.primary_key.as_ref().unwrap()).unwrap();
    assert_eq!(digest, hmac_b64(&hub_key, to_sign.as_bytes()));

    // list and delete go to the hub too
    let (code, body) = edge.mgmt("GET", &format!("/identities?{V}"), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"reader\""), "{body}");
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/identities?{V}"),
        Some(r#"{"moduleId":"gone"}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        sim.hub_modules("press-7")
            .iter()
            .any(|m| m.module_id == "gone")
    );
    let (code, body) = agent.call(&mgmt, "DELETE", &format!("/identities/gone?{V}"), None);
    assert_eq!(code, 204, "{body}");
    assert!(
        !sim.hub_modules("press-7")
            .iter()
            .any(|m| m.module_id == "gone")
    );
    let (code, _) = agent.call(&mgmt, "DELETE", &format!("/identities/gone?{V}"), None);
    assert_eq!(code, 404);

    // with the hub away an identity is kept locally; an update with the hub back makes it there
    sim.pause();
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/identities?{V}"),
        Some(r#"{"moduleId":"late"}"#),
    );
    assert_eq!(code, 200, "{body}");
    sim.resume();
    assert!(
        !sim.hub_modules("press-7")
            .iter()
            .any(|m| m.module_id == "late")
    );
    let (code, body) = agent.call(
        &mgmt,
        "PUT",
        &format!("/identities/late?{V}"),
        Some(r#"{"moduleId":"late"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let late_gen = serde_json::from_str::<serde_json::Value>(&body).unwrap()["generationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = sim
        .hub_modules("press-7")
        .into_iter()
        .find(|m| m.module_id == "late")
        .unwrap();
    assert_eq!(late.generation_id, late_gen);
    assert_eq!(
        late.primary_key.as_deref(),
        Some(hmac_b64(&dk, format!("late:{late_gen}:primary").as_bytes()).as_str())
    );

    // a manual device status names its hub
    let d = device_status(&edge);
    assert_eq!(
        (d["id"].as_str(), d["source"].as_str()),
        (Some("press-7"), Some("manual"))
    );
}
