//! The DPS and hub clients against `edgesec-cloudsim` (which checks every token), through an
//! HTTP CONNECT proxy, with the service's CA trusted from a file. Keys here are in memory:
//! the daemon's own tests run the same clients with keys in keyd.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};
use edgesec_identity::CloudError;
use edgesec_identity::dps::{Attestation, DpsClient, PollPolicy};
use edgesec_identity::https::{CloudOptions, Endpoint, HttpsClient};
use edgesec_identity::hub::{HubAuth, HubClient, ModuleKeys};
use edgesec_identity::proxy::ProxySetting;
use edgesec_identity::retry::RetryPolicy;
use edgesec_identity::sas::{HmacFuture, HmacKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// A key in memory, for tests only.
struct TestKey(Vec<u8>);

impl HmacKey for TestKey {
    fn hmac<'a>(&'a self, data: &'a [u8]) -> HmacFuture<'a> {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        let tag = aws_lc_rs::hmac::sign(&k, data).as_ref().to_vec();
        Box::pin(async move { Ok(tag) })
    }
}

/// A CONNECT proxy on 127.0.0.1 that records the targets it tunnels to.
async fn start_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = client.read_u8().await else {
                        return;
                    };
                    head.push(b);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push(target.clone());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

fn options(ca_file: &std::path::Path, proxy: ProxySetting) -> CloudOptions {
    CloudOptions {
        trusted_ca_files: vec![ca_file.to_owned()],
        proxy,
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
        ..CloudOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dps_and_hub_work_through_a_proxy_and_refuse_what_they_should() {
    let sim = CloudSim::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, sim.server_ca_pem()).unwrap();
    let key: Vec<u8> = (0..32u8).collect();
    let mut e = Enrollment::new(
        "lib-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: STANDARD.encode(&key),
        },
    );
    e.assigning_polls = 1;
    e.return_payload = Some(serde_json::json!({ "site": "plant-1" }));
    sim.enroll(e);

    let (proxy_port, seen) = start_proxy().await;
    let http = HttpsClient::new(
        options(
            &ca,
            ProxySetting::Url(format!("http://127.0.0.1:{proxy_port}")),
        ),
        None,
    )
    .unwrap();
    let dps = DpsClient {
        http: http.clone(),
        endpoint: Endpoint::parse(&sim.endpoint()).unwrap(),
        scope: "0ne00LIB01".into(),
        registration_id: "lib-dev".into(),
        poll: PollPolicy {
            default_interval: Duration::from_millis(200),
            min_interval: Duration::from_millis(100),
            ..PollPolicy::default()
        },
    };
    let device_key: Arc<dyn HmacKey> = Arc::new(TestKey(key.clone()));
    let payload = serde_json::json!({ "modelId": "dtmi:test;1" });
    let a = dps
        .register(
            &Attestation::SymmetricKey(device_key.clone()),
            Some(&payload),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.hub.as_str(), a.device_id.as_str()),
        (sim.hub_hostname().as_str(), "lib-dev")
    );
    assert_eq!(a.payload, Some(serde_json::json!({ "site": "plant-1" })));
    assert_eq!(sim.registrations("lib-dev")[0].payload, Some(payload));
    let tunnels = seen.lock().unwrap().clone();
    assert!(
        !tunnels.is_empty()
            && tunnels
                .iter()
                .all(|t| *t == format!("localhost:{}", sim.port())),
        "{tunnels:?}"
    );

    // the hub, as the device: create, set keys, get, list, delete
    let hub = HubClient::new(http.clone(), &a.hub, &a.device_id, HubAuth::Sas(device_key)).unwrap();
    let m = hub.create_module("m1", Some("iotedge")).await.unwrap();
    assert!(!m.generation_id.is_empty());
    let keys = ModuleKeys {
        primary: Zeroizing::new(STANDARD.encode([7u8; 32])),
        secondary: Zeroizing::new(STANDARD.encode([8u8; 32])),
    };
    let updated = hub.set_module_keys(&m, &keys).await.unwrap();
    assert_eq!(updated.generation_id, m.generation_id);
    let in_sim = sim.hub_modules("lib-dev");
    assert_eq!(
        in_sim[0].primary_key.as_deref(),
        Some(keys.primary.as_str())
    );
    assert_eq!(hub.get_module("m1").await.unwrap().unwrap().module_id, "m1");
    assert_eq!(hub.get_module("nope").await.unwrap(), None);
    assert_eq!(hub.list_modules().await.unwrap().len(), 1);
    assert!(hub.delete_module("m1").await.unwrap());
    assert!(!hub.delete_module("m1").await.unwrap());

    // a refused device is a 401 the caller can tell apart
    sim.reject_device("lib-dev", true);
    let e = hub.list_modules().await.unwrap_err();
    assert!(e.is_unauthorized(), "{e}");

    // a wrong key is refused by DPS, with its message
    let wrong: Arc<dyn HmacKey> = Arc::new(TestKey(vec![9; 32]));
    let e = dps
        .register(&Attestation::SymmetricKey(wrong), None)
        .await
        .unwrap_err();
    assert!(
        e.is_unauthorized() && e.to_string().contains("DPS answered 401"),
        "{e}"
    );

    // an answer over the limit is refused, not read
    let small = HttpsClient::new(
        CloudOptions {
            max_response_bytes: 16,
            ..options(
                &ca,
                ProxySetting::Url(format!("http://127.0.0.1:{proxy_port}")),
            )
        },
        None,
    )
    .unwrap();
    let e = small
        .send(
            http::Method::GET,
            &Endpoint::parse(&sim.endpoint()).unwrap(),
            "/devices/lib-dev/modules?api-version=2017-11-08-preview",
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CloudError::Protocol(m) if m.contains("over 16 bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_outside_the_trusted_roots_is_refused_and_a_dead_one_reported() {
    let sim = CloudSim::start();
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::CertificateParams::new(vec!["other.test".into()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, other.pem()).unwrap();
    let http = HttpsClient::new(
        options(&ca, ProxySetting::Url("http://127.0.0.1:9".into())),
        None,
    )
    .unwrap();
    let direct = HttpsClient::new(options(&ca, ProxySetting::FromEnv), None).unwrap();
    let endpoint = Endpoint::parse(&sim.endpoint()).unwrap();
    let e = direct
        .send(http::Method::GET, &endpoint, "/", &[], None)
        .await
        .unwrap_err();
    assert!(
        e.is_network() && e.to_string().contains("TLS") && e.to_string().contains("certificate"),
        "{e}"
    );
    let e = http
        .send(http::Method::GET, &endpoint, "/", &[], None)
        .await
        .unwrap_err();
    assert!(e.is_network() && e.to_string().contains("proxy"), "{e}");
}
