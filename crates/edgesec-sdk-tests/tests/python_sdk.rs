//! The real Python `azure-iot-device` SDK as a module of the real edgesecd:
//! `IoTHubModuleClient.create_from_edge_environment()` fetches the trust bundle and a SAS
//! signature from the workload API and connects with MQTT over TLS to a listener on
//! 127.0.0.1:8883 that presents a server certificate edgesecd issued. The listener checks the
//! CONNECT (client id, username, SAS token signed with the module's key). Two negative
//! controls show the SDK verifies the server: a self-signed certificate for the right name,
//! and an edgesecd-issued certificate for another name, must both be refused.
//!
//! The listener's certificate is obtained honestly: a second module (the same fixture in
//! `server-cert` mode) asks the workload API for `certificate/server` as itself.

mod common;

use common::device::{Device, process_module};
use common::mqtt::{Event, Listener, PortLock, tls_config};
use common::{DEVICE, GATEWAY, HUB, PythonSdk};
use serde_json::Value;

const RESULT_SECS: u64 = 90;

fn py_module(sdk: &PythonSdk, device: &Device, args: &[&str]) -> Value {
    let script = common::fixture("py_module.py");
    let mut argv = vec![script.to_str().expect("UTF-8 path")];
    argv.extend_from_slice(args);
    let out = device.out.to_str().expect("UTF-8 path");
    process_module(
        &sdk.python,
        &argv,
        &[("SDKTEST_OUT", out), ("PYTHONUNBUFFERED", "1")],
    )
}

/// Waits for `module` (the fixture in server-cert mode) to get its server certificate; returns
/// (chain PEM, key PEM).
async fn server_cert(device: &Device, module: &str) -> (String, String) {
    let result = device.wait_result(module, RESULT_SECS).await;
    assert_eq!(
        result["ok"],
        true,
        "{module} could not get a server certificate: {result}\n{}",
        device.diagnostics(module).await
    );
    assert_eq!(result["status"], 201);
    let read = |ext: &str| {
        std::fs::read_to_string(device.out.join(format!("{module}.{ext}.pem")))
            .expect("PEM written by the module")
    };
    let chain = read("cert");
    assert!(
        chain.matches("BEGIN CERTIFICATE").count() >= 2,
        "certificate/server must return the leaf and its issuing chain:\n{chain}"
    );
    (chain, read("key"))
}

/// Deploys the fixture in connect mode as module `name` and returns its result.
async fn run_sdk(sdk: &PythonSdk, device: &mut Device, name: &str) -> Value {
    let module = py_module(sdk, device, &["connect"]);
    device.deploy(name, module);
    device.wait_result(name, RESULT_SECS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_connects_with_a_workload_sas_and_verifies_the_server_against_the_trust_bundle()
{
    let Some(sdk) = common::python_sdk() else {
        return;
    };
    let _port = PortLock::acquire().await;
    let mut device = Device::start().await;

    // 1. Server certificates from edgesecd, fetched by modules: one for the gateway name the
    //    SDK connects to, one for another name (negative control 2).
    let good = py_module(&sdk, &device, &["server-cert", GATEWAY]);
    device.deploy("certfetcher", good);
    let other = py_module(&sdk, &device, &["server-cert", "not-the-gateway.example"]);
    device.deploy("certother", other);
    let (chain, key) = server_cert(&device, "certfetcher").await;
    let (other_chain, other_key) = server_cert(&device, "certother").await;

    // 2. The SDK connects to a listener that presents the edgesecd certificate.
    let mut listener = Listener::start(tls_config(&chain, &key)).await;
    let result = run_sdk(&sdk, &mut device, "pysdk").await;
    let events = collect(&mut listener, 1).await;
    listener.stop().await;
    assert_eq!(
        result["ok"],
        true,
        "the SDK did not connect: {result}\nlistener saw: {events:?}\n{}",
        device.diagnostics("pysdk").await
    );
    assert_eq!(result["connected"], true);
    let connects: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Connected { tls, connect } => Some((tls, connect)),
            _ => None,
        })
        .collect();
    assert_eq!(
        connects.len(),
        1,
        "expected one MQTT CONNECT, saw {events:?}"
    );
    let (tls, connect) = connects[0];
    eprintln!(
        "pysdk connected over {tls}: client id {:?}, username {:?}",
        connect.client_id, connect.username
    );
    assert_eq!(
        (connect.protocol.as_str(), connect.level),
        ("MQTT", 4),
        "MQTT 3.1.1"
    );
    assert_eq!(connect.client_id, format!("{DEVICE}/pysdk"));
    let username = connect.username.as_deref().expect("a username");
    assert!(
        username.starts_with(&format!("{HUB}/{DEVICE}/pysdk/?api-version=")),
        "username {username:?}"
    );
    let password = connect
        .password
        .as_deref()
        .expect("a password (the SAS token)");

    // The SAS token in CONNECT verifies with the module's key for its current generation.
    let generation = device.generation_id("pysdk").await;
    let module_key = device.module_key("pysdk", &generation).await;
    common::sas::verify(
        password,
        &format!("{HUB}/devices/{DEVICE}/modules/pysdk"),
        &module_key,
    )
    .unwrap_or_else(|e| panic!("SAS token in CONNECT: {e}"));

    // Both workload calls were made by the attested module, on its own socket.
    let audit = device.audit_of("pysdk", 2).await;
    let sign_route = format!("/modules/pysdk/genid/{generation}/sign");
    for route in ["/trust-bundle", sign_route.as_str()] {
        let hit = audit.iter().find(|r| r["route"] == route);
        let r = hit.unwrap_or_else(|| panic!("no audit record of {route} by pysdk: {audit:?}"));
        assert_eq!(
            (r["decision"].as_str(), r["status"].as_u64()),
            (Some("allow"), Some(200)),
            "{r}"
        );
        assert_eq!(r["socket"], "workload:pysdk", "{r}");
    }
    assert!(
        audit.iter().all(|r| r["decision"] == "allow"),
        "a call of pysdk was denied: {audit:?}"
    );

    // 3. Negative control 1: a self-signed certificate for the right name is refused.
    let selfsigned =
        rcgen::generate_simple_self_signed(vec![GATEWAY.to_owned()]).expect("self-signed cert");
    let config = tls_config(
        &selfsigned.cert.pem(),
        &selfsigned.signing_key.serialize_pem(),
    );
    refused(
        &sdk,
        &mut device,
        config,
        "pysdk-untrusted",
        "certificate verify failed",
    )
    .await;

    // 4. Negative control 2: a certificate from edgesecd's own chain, but for another name.
    let config = tls_config(&other_chain, &other_key);
    refused(
        &sdk,
        &mut device,
        config,
        "pysdk-wrongname",
        "hostname mismatch",
    )
    .await;
}

/// Runs SDK module `name` against a listener with `config`: the SDK must refuse the server
/// (its error names `why`), and the listener must see a failed handshake and no CONNECT.
async fn refused(
    sdk: &PythonSdk,
    device: &mut Device,
    config: rustls::ServerConfig,
    name: &str,
    why: &str,
) {
    let mut listener = Listener::start(config).await;
    let result = run_sdk(sdk, device, name).await;
    let events = collect(&mut listener, 1).await;
    listener.stop().await;
    assert_eq!(
        result["ok"], false,
        "{name}: the SDK connected to a server it must not trust: {result}"
    );
    let error = result["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains(why),
        "{name}: expected the SDK's error to say {why:?}: {error}\n{}",
        device.diagnostics(name).await
    );
    assert!(
        !events.is_empty(),
        "{name}: the SDK never reached the listener: {result}"
    );
    for e in &events {
        assert!(
            matches!(e, Event::HandshakeFailed(_)),
            "{name}: expected only failed handshakes, saw {e:?}"
        );
    }
    eprintln!("{name}: refused as expected; listener saw {events:?}");
}

/// Waits for at least `min` connection outcomes, then takes whatever else is there.
async fn collect(listener: &mut Listener, min: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < min {
        match listener.next_event(20).await {
            Some(e) => events.push(e),
            None => break,
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    events.extend(listener.drain());
    events
}
