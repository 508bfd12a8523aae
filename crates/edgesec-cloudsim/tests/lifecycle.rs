//! The service as a whole: pause/resume on the same port, the request log,
//! and the TLS server identity.

mod common;

use common::*;
use edgesec_cloudsim::{CloudSim, HubDeviceAuth};
use http::Method;

const DEVICE_KEY: &[u8] = b"device-key-device-key-device-key";

#[tokio::test]
async fn pause_refuses_connections_and_closes_open_ones_resume_uses_the_same_port() {
    let sim = CloudSim::start();
    sim.add_hub_device(
        "edge-1",
        HubDeviceAuth::Sas {
            key_b64: key_b64(DEVICE_KEY),
        },
    );
    let client = Client::new(&sim);
    let endpoint = sim.endpoint();
    let list = format!("/devices/edge-1/modules?{HUB_API}");
    let auth = vec![("authorization", hub_token(&sim, "edge-1", DEVICE_KEY))];

    let mut kept = client.connect().await.unwrap();
    assert_eq!(
        kept.send(Method::GET, &list, &auth, None)
            .await
            .unwrap()
            .status,
        200
    );

    sim.pause();
    assert!(
        client.connect().await.is_err(),
        "no new connections while paused"
    );
    assert!(
        kept.send(Method::GET, &list, &auth, None).await.is_err(),
        "open connections are closed"
    );

    sim.resume();
    assert_eq!(sim.endpoint(), endpoint);
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&auth[0].1), None)
            .await
            .unwrap()
            .status,
        200
    );

    // Pausing twice and resuming twice is harmless.
    sim.pause();
    sim.pause();
    sim.resume();
    sim.resume();
    assert_eq!(
        client
            .send(Method::GET, &list, Some(&auth[0].1), None)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn requests_are_logged_with_their_status() {
    let sim = CloudSim::start();
    let client = Client::new(&sim);
    let token = dps_token("nobody", b"k");
    let body = serde_json::json!({ "registrationId": "nobody" });
    client
        .send(
            Method::PUT,
            &register_path("nobody"),
            Some(&token),
            Some(&body),
        )
        .await
        .unwrap();
    // Escaped ids are logged decoded.
    client
        .send(
            Method::GET,
            &format!("/devices/d%2D1/modules?{HUB_API}"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        sim.requests(),
        [
            format!("PUT /{SCOPE}/registrations/nobody/register -> 401"),
            "GET /devices/d-1/modules -> 401".to_owned(),
        ]
    );
}

#[tokio::test]
async fn server_certificate_is_for_localhost_and_127_0_0_1_only() {
    let sim = CloudSim::start();
    assert!(sim.endpoint().starts_with("https://localhost:"));
    assert_eq!(sim.hub_hostname(), format!("localhost:{}", sim.port()));
    assert!(
        sim.server_ca_pem()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let client = Client::new(&sim);
    assert!(client.connect_as("localhost").await.is_ok());
    assert!(client.connect_as("127.0.0.1").await.is_ok());
    let wrong = client
        .connect_as("example.com")
        .await
        .err()
        .expect("wrong name refused");
    assert!(wrong.contains("TLS"), "{wrong}");
}

#[test]
fn works_from_a_plain_test_and_drops_cleanly() {
    let sim = CloudSim::start();
    let port = sim.port();
    drop(sim);
    // After drop the port is closed (the runtime is gone); connecting fails
    // or is reset. Give the background shutdown a moment, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(_) => break,
            Ok(_) if std::time::Instant::now() > deadline => {
                panic!("port {port} still open after drop")
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

#[tokio::test]
async fn garbage_and_silent_connections_do_not_stop_the_service() {
    use tokio::io::AsyncWriteExt;

    let sim = CloudSim::start();
    sim.add_hub_device(
        "edge-1",
        HubDeviceAuth::Sas {
            key_b64: key_b64(DEVICE_KEY),
        },
    );
    let token = hub_token(&sim, "edge-1", DEVICE_KEY);
    let list = format!("/devices/edge-1/modules?{HUB_API}");

    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", sim.port()))
        .await
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\n not TLS at all")
        .await
        .unwrap();
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", sim.port()))
        .await
        .unwrap();

    let client = Client::new(&sim);
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
async fn concurrent_registrations_each_get_their_own_operation() {
    use edgesec_cloudsim::{Enrollment, EnrollmentAttestation};

    let sim = CloudSim::start();
    let ids: Vec<String> = (0..24).map(|i| format!("many-{i}")).collect();
    for id in &ids {
        let key = key_b64(id.as_bytes());
        sim.enroll(Enrollment::new(
            id,
            EnrollmentAttestation::SymmetricKey {
                primary_key_b64: key,
            },
        ));
    }
    let client = std::sync::Arc::new(Client::new(&sim));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let client = std::sync::Arc::clone(&client);
        tasks.spawn(async move {
            let token = dps_token(&id, id.as_bytes());
            let body = serde_json::json!({ "registrationId": id });
            let reply = client
                .send(Method::PUT, &register_path(&id), Some(&token), Some(&body))
                .await?;
            let operation_id = reply.body["operationId"]
                .as_str()
                .ok_or(format!("{id}: {}", reply.body))?
                .to_owned();
            let reply = client
                .send(
                    Method::GET,
                    &operation_path(&id, &operation_id),
                    Some(&token),
                    None,
                )
                .await?;
            Ok::<_, String>((
                id,
                operation_id,
                reply.body["registrationState"]["deviceId"].clone(),
            ))
        });
    }
    let mut operations = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (id, operation_id, device_id) = result.unwrap().unwrap();
        assert_eq!(device_id, id.as_str());
        assert!(operations.insert(operation_id));
    }
    assert_eq!(operations.len(), ids.len());
    assert!(ids.iter().all(|id| sim.hub_has_device(id)));
}
