//! The real Node `azure-iot-device` SDK as a module of the real edgesecd:
//! `ModuleClient.fromEnvironment` (with the SDK's MQTT transport) fetches the trust bundle and
//! its IoT Edge authentication provider has the workload API sign a SAS token, both with the
//! api-version the SDK hard-codes, 2018-06-28. The test checks the trust bundle the SDK handed
//! its transport is the daemon's, and the SAS signature verifies with the module's key.

mod common;

use common::device::{Device, process_module};
use common::{DEVICE, HUB};

#[tokio::test(flavor = "multi_thread")]
async fn node_sdk_gets_the_trust_bundle_and_a_sas_signature_with_api_version_2018_06_28() {
    let Some(sdk) = common::node_sdk() else {
        return;
    };
    let mut device = Device::start().await;

    let script = common::fixture("node_module.js");
    let node_path = sdk.node_modules.to_str().expect("UTF-8 path");
    let out = device.out.to_str().expect("UTF-8 path").to_owned();
    let module = process_module(
        &sdk.node,
        &[script.to_str().expect("UTF-8 path")],
        &[("SDKTEST_OUT", &out), ("NODE_PATH", node_path)],
    );
    device.deploy("nodesdk", module);
    let result = device.wait_result("nodesdk", 90).await;
    assert_eq!(
        result["ok"],
        true,
        "the Node SDK failed: {result}\n{}",
        device.diagnostics("nodesdk").await
    );
    assert_eq!(result["sdkVersion"], common::NODE_SDK_VERSION);
    assert_eq!(
        result["workloadApiVersion"], "2018-06-28",
        "the SDK's hard-coded workload api-version"
    );
    assert_eq!(
        result["authenticationProvider"], "IotEdgeAuthenticationProvider",
        "{result}"
    );

    // The CA the SDK gave its transport is the daemon's trust bundle, as PEM text.
    let bundle = result["trustBundle"]
        .as_str()
        .unwrap_or_else(|| panic!("the SDK handed its transport no CA: {result}"));
    assert!(
        bundle.contains("-----BEGIN CERTIFICATE-----"),
        "trust bundle is not PEM: {bundle:?}"
    );
    assert_eq!(
        bundle,
        device.trust_bundle().await,
        "the SDK's trust bundle differs from GET /trust-bundle"
    );

    // The SAS token's signature (made by the workload API) verifies with the module's key.
    let generation = device.generation_id("nodesdk").await;
    let key = device.module_key("nodesdk", &generation).await;
    let sas = result["sas"]
        .as_str()
        .unwrap_or_else(|| panic!("no SAS token: {result}"));
    common::sas::verify(
        sas,
        &format!("{HUB}/devices/{DEVICE}/modules/nodesdk"),
        &key,
    )
    .unwrap_or_else(|e| panic!("SAS token from the Node SDK: {e}"));

    // Both calls were made by the attested module on its own socket, and allowed.
    let audit = device.audit_of("nodesdk", 2).await;
    let sign_route = format!("/modules/nodesdk/genid/{generation}/sign");
    for route in ["/trust-bundle", sign_route.as_str()] {
        let r = audit
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("no audit record of {route} by nodesdk: {audit:?}"));
        assert_eq!(
            (r["decision"].as_str(), r["status"].as_u64()),
            (Some("allow"), Some(200)),
            "{r}"
        );
        assert_eq!(r["socket"], "workload:nodesdk", "{r}");
    }
    assert!(
        audit.iter().all(|r| r["decision"] == "allow"),
        "a call of nodesdk was denied: {audit:?}"
    );
}
