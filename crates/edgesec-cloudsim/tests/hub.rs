//! Hub module identities against the sim, authenticated as the device.

mod common;

use common::*;
use edgesec_cloudsim::{CloudSim, HubDeviceAuth};
use http::Method;
use serde_json::{Value, json};

const DEVICE_KEY: &[u8] = b"device-key-device-key-device-key";

fn sim_with_device() -> CloudSim {
    let sim = CloudSim::start();
    sim.add_hub_device(
        "edge-1",
        HubDeviceAuth::Sas {
            key_b64: key_b64(DEVICE_KEY),
        },
    );
    sim
}

fn module_keys(primary: &[u8], secondary: &[u8]) -> Value {
    json!({
        "type": "sas",
        "symmetricKey": { "primaryKey": key_b64(primary), "secondaryKey": key_b64(secondary) },
    })
}

#[tokio::test]
async fn module_create_get_list_update_delete_and_recreate() {
    let sim = sim_with_device();
    let client = Client::new(&sim);
    let token = hub_token(&sim, "edge-1", DEVICE_KEY);
    let auth = Some(token.as_str());
    let path = module_path("edge-1", "sensor");

    // Create without keys: the hub makes a generation id (and keys).
    let create = json!({ "moduleId": "sensor", "deviceId": "edge-1", "managedBy": "edgesec" });
    let created = client
        .send(Method::PUT, &path, auth, Some(&create))
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["moduleId"], "sensor");
    assert_eq!(created.body["deviceId"], "edge-1");
    assert_eq!(created.body["managedBy"], "edgesec");
    assert_eq!(created.body["authentication"]["type"], "sas");
    let generation_id = created.body["generationId"].as_str().unwrap().to_owned();
    assert!(!generation_id.is_empty());
    let etag = created.body["etag"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers.get("etag").unwrap().to_str().unwrap(),
        format!("\"{etag}\"")
    );

    let got = client.send(Method::GET, &path, auth, None).await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);

    // Creating again without If-Match is a conflict.
    let again = client
        .send(Method::PUT, &path, auth, Some(&create))
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:ModuleAlreadyExistsOnDevice;")
    );

    // Update the keys with If-Match: *; the generation id stays.
    let update = json!({
        "moduleId": "sensor",
        "deviceId": "edge-1",
        "authentication": module_keys(b"primary-key-primary-key-primary!", b"secondary-key-secondary-key-sec!"),
    });
    let headers = vec![
        ("authorization", token.clone()),
        ("if-match", "*".to_owned()),
    ];
    let updated = client
        .send_with(Method::PUT, &path, &headers, Some(&update))
        .await
        .unwrap();
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["generationId"], generation_id.as_str());
    assert_ne!(updated.body["etag"], etag.as_str());
    assert_eq!(
        updated.body["authentication"]["symmetricKey"]["primaryKey"],
        key_b64(b"primary-key-primary-key-primary!")
    );
    assert_eq!(
        updated.body["managedBy"], "edgesec",
        "kept when the update does not name it"
    );

    // A stale etag is refused; the current one works.
    let stale = vec![
        ("authorization", token.clone()),
        ("if-match", format!("\"{etag}\"")),
    ];
    let reply = client
        .send_with(Method::PUT, &path, &stale, Some(&update))
        .await
        .unwrap();
    assert_eq!(reply.status, 412);
    let current = updated.body["etag"].as_str().unwrap().to_owned();
    let fresh = vec![
        ("authorization", token.clone()),
        ("if-match", format!("\"{current}\"")),
    ];
    let reply = client
        .send_with(Method::PUT, &path, &fresh, Some(&update))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    let modules = sim.hub_modules("edge-1");
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].module_id, "sensor");
    assert_eq!(modules[0].generation_id, generation_id);
    assert_eq!(
        modules[0].primary_key.as_deref(),
        Some(key_b64(b"primary-key-primary-key-primary!").as_str())
    );
    assert_eq!(
        modules[0].secondary_key.as_deref(),
        Some(key_b64(b"secondary-key-secondary-key-sec!").as_str())
    );

    // A module's own token verifies with either of its keys in the hub.
    let module_audience = format!("{}/devices/edge-1/modules/sensor", sim.hub_hostname());
    for key in [
        b"primary-key-primary-key-primary!",
        b"secondary-key-secondary-key-sec!",
    ] {
        let module_token = sas_token(&module_audience, key, now() + 60, None);
        assert_eq!(
            sim.verify_module_token("edge-1", "sensor", &module_token),
            Ok(())
        );
    }
    let wrong = sas_token(&module_audience, DEVICE_KEY, now() + 60, None);
    assert!(
        sim.verify_module_token("edge-1", "sensor", &wrong)
            .unwrap_err()
            .contains("signature")
    );
    let device_audience = hub_token(&sim, "edge-1", b"primary-key-primary-key-primary!");
    assert!(
        sim.verify_module_token("edge-1", "sensor", &device_audience)
            .unwrap_err()
            .contains("audience")
    );
    assert!(sim.verify_module_token("edge-1", "nope", &wrong).is_err());

    let list = client
        .send(
            Method::GET,
            &format!("/devices/edge-1/modules?{HUB_API}"),
            auth,
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.status, 200);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["moduleId"], "sensor");

    // Delete needs If-Match.
    let reply = client
        .send(Method::DELETE, &path, auth, None)
        .await
        .unwrap();
    assert_eq!(reply.status, 412);
    let delete_headers = vec![
        ("authorization", token.clone()),
        ("if-match", "*".to_owned()),
    ];
    let reply = client
        .send_with(Method::DELETE, &path, &delete_headers, None)
        .await
        .unwrap();
    assert_eq!(reply.status, 204);
    let reply = client.send(Method::GET, &path, auth, None).await.unwrap();
    assert_eq!(reply.status, 404);
    assert!(
        reply.body["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:ModuleNotFound;")
    );
    let reply = client
        .send_with(Method::DELETE, &path, &delete_headers, None)
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    assert!(sim.hub_modules("edge-1").is_empty());

    // Recreated: a new generation id.
    let recreated = client
        .send(Method::PUT, &path, auth, Some(&create))
        .await
        .unwrap();
    assert_eq!(recreated.status, 200);
    assert_ne!(recreated.body["generationId"], generation_id.as_str());
}

#[tokio::test]
async fn update_of_a_missing_module_and_bad_bodies_are_refused() {
    let sim = sim_with_device();
    let client = Client::new(&sim);
    let token = hub_token(&sim, "edge-1", DEVICE_KEY);
    let path = module_path("edge-1", "m1");

    let headers = vec![
        ("authorization", token.clone()),
        ("if-match", "*".to_owned()),
    ];
    let body = json!({ "moduleId": "m1", "deviceId": "edge-1" });
    let reply = client
        .send_with(Method::PUT, &path, &headers, Some(&body))
        .await
        .unwrap();
    assert_eq!(reply.status, 412);

    // A generationId that is not the module's is refused on update.
    let m3 = json!({ "moduleId": "m3" });
    let created = client
        .send(
            Method::PUT,
            &module_path("edge-1", "m3"),
            Some(&token),
            Some(&m3),
        )
        .await;
    assert_eq!(created.unwrap().status, 200);
    let stale = json!({ "moduleId": "m3", "generationId": "630000000000000000" });
    let reply = client
        .send_with(
            Method::PUT,
            &module_path("edge-1", "m3"),
            &headers,
            Some(&stale),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body["Message"]
            .as_str()
            .unwrap()
            .contains("generationId")
    );

    let cases = [
        json!({ "moduleId": "m2" }),
        json!({ "moduleId": "m1", "deviceId": "edge-2" }),
        json!({ "moduleId": "m1", "authentication": { "type": "selfSigned" } }),
        json!({ "moduleId": "m1", "authentication": module_keys(b"short", b"secondary-key-secondary-key-sec!") }),
        json!({ "moduleId": "m1", "authentication": { "type": "sas", "symmetricKey": { "primaryKey": "!!" } } }),
        json!({ "deviceId": "edge-1" }),
    ];
    for body in cases {
        let reply = client
            .send(Method::PUT, &path, Some(&token), Some(&body))
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{body} -> {}", reply.body);
        assert!(
            reply.body["Message"]
                .as_str()
                .unwrap()
                .starts_with("ErrorCode:ArgumentInvalid;")
        );
    }
    let reply = client
        .send_raw(
            Method::PUT,
            &path,
            &[("authorization", token.clone())],
            b"[".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    let reply = client
        .send(Method::GET, "/devices/edge-1/modules", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "api-version is required");
    let ids: Vec<String> = sim
        .hub_modules("edge-1")
        .into_iter()
        .map(|m| m.module_id)
        .collect();
    assert_eq!(ids, ["m3"]);
}

#[tokio::test]
async fn hub_calls_need_the_device_credential() {
    let sim = sim_with_device();
    sim.add_hub_device(
        "edge-2",
        HubDeviceAuth::Sas {
            key_b64: key_b64(b"other-device-key-other-device-k!"),
        },
    );
    let client = Client::new(&sim);
    let list = format!("/devices/edge-1/modules?{HUB_API}");

    let good = hub_token(&sim, "edge-1", DEVICE_KEY);
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&good), None)
            .await
            .unwrap()
            .status,
        200
    );

    let wrong_key = hub_token(&sim, "edge-1", b"wrong-key-wrong-key-wrong-key-00");
    let reply = client
        .send(Method::GET, &list, Some(&wrong_key), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:IotHubUnauthorizedAccess;")
    );

    // edge-2's own valid token does not open edge-1.
    let other_device = hub_token(&sim, "edge-2", b"other-device-key-other-device-k!");
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&other_device), None)
            .await
            .unwrap()
            .status,
        401
    );

    let audience = format!("{}/devices/edge-1", sim.hub_hostname());
    let with_skn = sas_token(&audience, DEVICE_KEY, now() + 60, Some("registration"));
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&with_skn), None)
            .await
            .unwrap()
            .status,
        401
    );
    let expired = sas_token(&audience, DEVICE_KEY, now() - 3600, None);
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&expired), None)
            .await
            .unwrap()
            .status,
        401
    );
    let wrong_host = sas_token(
        "elsewhere.azure-devices.net/devices/edge-1",
        DEVICE_KEY,
        now() + 60,
        None,
    );
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&wrong_host), None)
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        client
            .send(Method::GET, &list, None, None)
            .await
            .unwrap()
            .status,
        401
    );

    let unknown = hub_token(&sim, "ghost", DEVICE_KEY);
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/ghost/modules?{HUB_API}"),
            Some(&unknown),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn rejected_device_gets_401_until_accepted_again() {
    let sim = sim_with_device();
    let client = Client::new(&sim);
    let token = hub_token(&sim, "edge-1", DEVICE_KEY);
    let list = format!("/devices/edge-1/modules?{HUB_API}");

    sim.reject_device("edge-1", true);
    let reply = client
        .send(Method::GET, &list, Some(&token), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let body = json!({ "moduleId": "m1" });
    let reply = client
        .send(
            Method::PUT,
            &module_path("edge-1", "m1"),
            Some(&token),
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert!(sim.hub_modules("edge-1").is_empty());

    sim.reject_device("edge-1", false);
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&token), None)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn tpm_auth_key_device_signs_with_the_raw_key() {
    let sim = CloudSim::start();
    let raw_key = b"tpm-imported-hmac-key-32-bytes!!".to_vec();
    sim.add_hub_device(
        "tpm-edge",
        HubDeviceAuth::TpmAuthKey {
            key: raw_key.clone(),
        },
    );
    let client = Client::new(&sim);
    let token = hub_token(&sim, "tpm-edge", &raw_key);
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/tpm-edge/modules?{HUB_API}"),
            Some(&token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}
