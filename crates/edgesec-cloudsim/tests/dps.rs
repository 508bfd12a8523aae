//! DPS symmetric-key flows against the sim: every credential check, the
//! steering knobs, and the records.

mod common;

use common::*;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};
use http::Method;
use serde_json::json;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn symmetric(registration_id: &str) -> Enrollment {
    Enrollment::new(
        registration_id,
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key_b64(KEY),
        },
    )
}

/// Registers with `token` and returns the operation id of the 202.
async fn register_ok(client: &Client, registration_id: &str, token: &str) -> String {
    let reply = client
        .register(
            registration_id,
            Some(token),
            &register_body(registration_id),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "assigning");
    reply.body["operationId"]
        .as_str()
        .expect("operationId")
        .to_owned()
}

async fn poll(client: &Client, registration_id: &str, operation_id: &str, token: &str) -> Reply {
    client
        .send(
            Method::GET,
            &operation_path(registration_id, operation_id),
            Some(token),
            None,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn symmetric_key_registration_is_assigned_and_the_device_can_use_the_hub() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    let client = Client::new(&sim);

    let token = dps_token("dev-1", KEY);
    let operation_id = register_ok(&client, "dev-1", &token).await;
    let reply = poll(&client, "dev-1", &operation_id, &token).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "assigned");
    let state = &reply.body["registrationState"];
    assert_eq!(state["assignedHub"], sim.hub_hostname());
    assert_eq!(state["deviceId"], "dev-1");
    assert_eq!(state["registrationId"], "dev-1");
    assert_eq!(state["status"], "assigned");
    assert!(state.get("payload").is_none());

    let records = sim.registrations("dev-1");
    assert_eq!(records.len(), 1);
    assert!(records[0].accepted);
    assert_eq!(records[0].method, "sas");
    assert_eq!(records[0].error, None);

    // The device exists in the hub with the same key.
    assert!(sim.hub_has_device("dev-1"));
    let hub_token = hub_token(&sim, "dev-1", KEY);
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/dev-1/modules?{HUB_API}"),
            Some(&hub_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!([]));
}

#[tokio::test]
async fn enrollment_overrides_device_id_and_hub() {
    let sim = CloudSim::start();
    let mut enrollment = symmetric("reg-2");
    enrollment.device_id = Some("device-two".into());
    enrollment.assigned_hub = Some("other-hub.example.net".into());
    sim.enroll(enrollment);
    let client = Client::new(&sim);

    let token = dps_token("reg-2", KEY);
    let operation_id = register_ok(&client, "reg-2", &token).await;
    let reply = poll(&client, "reg-2", &operation_id, &token).await;
    assert_eq!(reply.body["registrationState"]["deviceId"], "device-two");
    assert_eq!(
        reply.body["registrationState"]["assignedHub"],
        "other-hub.example.net"
    );
    assert!(sim.hub_has_device("device-two"));
    assert!(!sim.hub_has_device("reg-2"));
}

#[tokio::test]
async fn group_enrollment_accepts_the_derived_device_key_only() {
    let sim = CloudSim::start();
    let group_key = b"group-key-group-key-group-key-32";
    sim.enroll(Enrollment::new(
        "grp-dev",
        EnrollmentAttestation::GroupSymmetricKey {
            group_key_b64: key_b64(group_key),
        },
    ));
    let client = Client::new(&sim);

    // Signed with the group key itself: refused.
    let body = register_body("grp-dev");
    let wrong = dps_token("grp-dev", group_key);
    let reply = client.register("grp-dev", Some(&wrong), &body).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    let device_key = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, group_key),
        b"grp-dev",
    );
    let token = dps_token("grp-dev", device_key.as_ref());
    let operation_id = register_ok(&client, "grp-dev", &token).await;
    let reply = poll(&client, "grp-dev", &operation_id, &token).await;
    assert_eq!(reply.body["status"], "assigned", "{}", reply.body);

    let records = sim.registrations("grp-dev");
    assert_eq!(
        records.iter().map(|r| r.accepted).collect::<Vec<_>>(),
        [false, true]
    );
}

#[tokio::test]
async fn wrong_key_is_refused_with_a_dps_error() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    let client = Client::new(&sim);

    let token = dps_token("dev-1", b"not-the-enrolled-key-at-all-0000");
    let reply = client
        .register("dev-1", Some(&token), &register_body("dev-1"))
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["errorCode"], 401002);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        reply.body
    );
    assert!(reply.body["trackingId"].is_string());
    assert!(reply.body["timestampUtc"].is_string());

    let records = sim.registrations("dev-1");
    assert_eq!(records.len(), 1);
    assert!(!records[0].accepted);
    assert!(records[0].error.as_deref().unwrap().contains("signature"));
    assert!(!sim.hub_has_device("dev-1"));
}

#[tokio::test]
async fn expired_token_missing_token_and_foreign_audience_are_refused() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    sim.enroll(symmetric("dev-2"));
    let client = Client::new(&sim);
    let body = register_body("dev-1");

    let audience = format!("{SCOPE}/registrations/dev-1");
    let expired = sas_token(&audience, KEY, now() - 3600, Some("registration"));
    let reply = client.register("dev-1", Some(&expired), &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"].as_str().unwrap().contains("expired"),
        "{}",
        reply.body
    );

    // Same key, valid token, but for another registration.
    let other = dps_token("dev-2", KEY);
    let reply = client.register("dev-1", Some(&other), &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"].as_str().unwrap().contains("audience"),
        "{}",
        reply.body
    );

    // Another scope in the audience.
    let other_scope = sas_token(
        "0ne00000000/registrations/dev-1",
        KEY,
        now() + 60,
        Some("registration"),
    );
    let reply = client.register("dev-1", Some(&other_scope), &body).await;
    assert_eq!(reply.status, 401);

    // No skn.
    let no_skn = sas_token(&audience, KEY, now() + 60, None);
    let reply = client.register("dev-1", Some(&no_skn), &body).await;
    assert_eq!(reply.status, 401);

    let reply = client.register("dev-1", None, &body).await;
    assert_eq!(reply.status, 401);

    assert!(sim.registrations("dev-1").iter().all(|r| !r.accepted));
}

#[tokio::test]
async fn unknown_registration_is_refused() {
    let sim = CloudSim::start();
    let client = Client::new(&sim);
    let token = dps_token("nobody", KEY);
    let reply = client
        .register("nobody", Some(&token), &register_body("nobody"))
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("no enrollment")
    );
}

#[tokio::test]
async fn fail_next_answers_the_status_with_retry_after_then_recovers() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);
    let body = register_body("dev-1");

    sim.fail_next(2, 503, Some(7));
    for _ in 0..2 {
        let reply = client.register("dev-1", Some(&token), &body).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers.get("retry-after").unwrap(), "7");
        assert!(reply.body["message"].is_string());
    }
    let operation_id = register_ok(&client, "dev-1", &token).await;

    // Polls count as DPS requests too; no Retry-After when none was given.
    sim.fail_next(1, 429, None);
    let reply = poll(&client, "dev-1", &operation_id, &token).await;
    assert_eq!(reply.status, 429);
    assert!(reply.headers.get("retry-after").is_none());
    let reply = poll(&client, "dev-1", &operation_id, &token).await;
    assert_eq!(reply.body["status"], "assigned");

    let records = sim.registrations("dev-1");
    assert_eq!(
        records.iter().map(|r| r.accepted).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert!(records[0].error.as_deref().unwrap().contains("503"));
}

#[tokio::test]
async fn assigning_polls_come_before_assigned() {
    let sim = CloudSim::start();
    let mut enrollment = symmetric("dev-1");
    enrollment.assigning_polls = 2;
    sim.enroll(enrollment);
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);

    let operation_id = register_ok(&client, "dev-1", &token).await;
    for _ in 0..2 {
        let reply = poll(&client, "dev-1", &operation_id, &token).await;
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body["status"], "assigning");
        assert_eq!(reply.body["operationId"], operation_id.as_str());
        assert!(
            !sim.hub_has_device("dev-1"),
            "not in the hub before it is assigned"
        );
    }
    let reply = poll(&client, "dev-1", &operation_id, &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "assigned");
    assert!(sim.hub_has_device("dev-1"));
}

#[tokio::test]
async fn fail_with_ends_the_operation_failed_with_code_and_message() {
    let sim = CloudSim::start();
    let mut enrollment = symmetric("dev-1");
    enrollment.fail_with = Some((400_209, "Custom allocation failed".into()));
    sim.enroll(enrollment);
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);

    let operation_id = register_ok(&client, "dev-1", &token).await;
    let reply = poll(&client, "dev-1", &operation_id, &token).await;
    assert_eq!(reply.body["status"], "failed", "{}", reply.body);
    assert_eq!(reply.body["registrationState"]["status"], "failed");
    assert_eq!(reply.body["registrationState"]["errorCode"], 400_209);
    assert_eq!(
        reply.body["registrationState"]["errorMessage"],
        "Custom allocation failed"
    );
    assert!(!sim.hub_has_device("dev-1"));
}

#[tokio::test]
async fn payload_is_recorded_and_the_enrollment_payload_returned() {
    let sim = CloudSim::start();
    let mut enrollment = symmetric("dev-1");
    enrollment.return_payload = Some(json!({ "site": "plant-7" }));
    sim.enroll(enrollment);
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);

    let body = json!({ "registrationId": "dev-1", "payload": { "modelId": "dtmi:x;1" } });
    let reply = client.register("dev-1", Some(&token), &body).await;
    assert_eq!(reply.status, 202);
    let operation_id = reply.body["operationId"].as_str().unwrap().to_owned();
    let reply = poll(&client, "dev-1", &operation_id, &token).await;
    assert_eq!(
        reply.body["registrationState"]["payload"],
        json!({ "site": "plant-7" })
    );

    let records = sim.registrations("dev-1");
    assert_eq!(records[0].payload, Some(json!({ "modelId": "dtmi:x;1" })));
}

#[tokio::test]
async fn polls_need_the_same_credential_and_a_known_operation() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    sim.enroll(symmetric("dev-2"));
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);
    let operation_id = register_ok(&client, "dev-1", &token).await;

    let wrong = dps_token("dev-1", b"another-key-another-key-another!");
    assert_eq!(
        poll(&client, "dev-1", &operation_id, &wrong).await.status,
        401
    );
    assert_eq!(poll(&client, "dev-1", &operation_id, "").await.status, 401);
    // The operation belongs to dev-1, not dev-2.
    let dev2 = dps_token("dev-2", KEY);
    assert_eq!(
        poll(&client, "dev-2", &operation_id, &dev2).await.status,
        404
    );
    assert_eq!(
        poll(&client, "dev-1", "4.0000.nope", &token).await.status,
        404
    );
    assert!(!sim.hub_has_device("dev-1"));
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let sim = CloudSim::start();
    sim.enroll(symmetric("dev-1"));
    let client = Client::new(&sim);
    let token = dps_token("dev-1", KEY);
    let auth = vec![("authorization", token.clone())];

    let reply = client
        .send_raw(
            Method::PUT,
            &register_path("dev-1"),
            &auth,
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("not a valid registration")
    );

    let body = json!({ "registrationId": "dev-9" });
    let reply = client.register("dev-1", Some(&token), &body).await;
    assert_eq!(reply.status, 400);

    let path = format!("/{SCOPE}/registrations/dev-1/register");
    let reply = client
        .send(
            Method::PUT,
            &path,
            Some(&token),
            Some(&register_body("dev-1")),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("api-version")
    );
    let reply = client
        .send(
            Method::PUT,
            &format!("{path}?api-version=2019-03-31"),
            Some(&token),
            Some(&register_body("dev-1")),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);

    let big = vec![b' '; 65 * 1024];
    let reply = client
        .send_raw(Method::PUT, &register_path("dev-1"), &auth, big)
        .await
        .unwrap();
    assert_eq!(reply.status, 413);

    let reply = client
        .send(Method::GET, "/nothing/here", None, None)
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    let reply = client
        .send(Method::POST, &register_path("dev-1"), Some(&token), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 405);
    assert!(!sim.registrations("dev-1").iter().any(|r| r.accepted));
}
