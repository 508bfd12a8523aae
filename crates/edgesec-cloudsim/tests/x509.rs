//! X.509 attestation at DPS and the hub: the TLS client chain must verify to
//! the enrolled CA and the leaf CN must be the registration (device) id.

mod common;

use common::*;
use edgesec_cloudsim::testpki::TestCa;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation, HubDeviceAuth};
use http::Method;

#[tokio::test]
async fn chain_from_the_enrolled_ca_is_assigned_and_opens_the_hub() {
    let sim = CloudSim::start();
    let root = TestCa::new_root("enrolled root");
    let intermediate = root.new_intermediate("enrolled intermediate");
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: root.cert_pem(),
        },
    ));
    let leaf = intermediate.issue_client("x509-dev");
    let client = Client::with_cert(&sim, &leaf.chain_pem, &leaf.key_pem);

    let reply = client
        .register("x509-dev", None, &register_body("x509-dev"))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let operation_id = reply.body["operationId"].as_str().unwrap().to_owned();
    let reply = client
        .send(
            Method::GET,
            &operation_path("x509-dev", &operation_id),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.body["status"], "assigned", "{}", reply.body);
    assert_eq!(sim.registrations("x509-dev")[0].method, "x509");

    // The hub knows the device with the same CA: the cert is enough.
    let list = format!("/devices/x509-dev/modules?{HUB_API}");
    let reply = client.send(Method::GET, &list, None, None).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Polls and hub calls without the certificate are refused.
    let anonymous = Client::new(&sim);
    let reply = anonymous
        .send(
            Method::GET,
            &operation_path("x509-dev", &operation_id),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        anonymous
            .send(Method::GET, &list, None, None)
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test]
async fn cert_from_another_ca_is_refused() {
    let sim = CloudSim::start();
    let enrolled = TestCa::new_root("enrolled root");
    let other = TestCa::new_root("enrolled root"); // same name, different key
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: enrolled.cert_pem(),
        },
    ));
    let leaf = other.issue_client("x509-dev");
    let client = Client::with_cert(&sim, &leaf.chain_pem, &leaf.key_pem);

    let reply = client
        .register("x509-dev", None, &register_body("x509-dev"))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{}",
        reply.body
    );
    let record = &sim.registrations("x509-dev")[0];
    assert!(!record.accepted);
    assert_eq!(record.method, "x509");
}

#[tokio::test]
async fn common_name_must_be_the_registration_id() {
    let sim = CloudSim::start();
    let root = TestCa::new_root("enrolled root");
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: root.cert_pem(),
        },
    ));
    let leaf = root.issue_client("someone-else");
    let client = Client::with_cert(&sim, &leaf.chain_pem, &leaf.key_pem);

    let reply = client
        .register("x509-dev", None, &register_body("x509-dev"))
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"].as_str().unwrap().contains("CN"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn missing_client_cert_is_refused() {
    let sim = CloudSim::start();
    let root = TestCa::new_root("enrolled root");
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: root.cert_pem(),
        },
    ));
    let client = Client::new(&sim);
    let reply = client
        .register("x509-dev", None, &register_body("x509-dev"))
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("no TLS client certificate")
    );
}

#[tokio::test]
async fn leaf_without_its_intermediate_is_refused() {
    let sim = CloudSim::start();
    let root = TestCa::new_root("enrolled root");
    let intermediate = root.new_intermediate("intermediate");
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: root.cert_pem(),
        },
    ));
    let leaf = intermediate.issue_client("x509-dev");
    let client = Client::with_cert(&sim, &leaf.cert_pem, &leaf.key_pem);
    let reply = client
        .register("x509-dev", None, &register_body("x509-dev"))
        .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn manual_x509_hub_device_and_csr_issued_cert() {
    let sim = CloudSim::start();
    let root = TestCa::new_root("hub device CA");
    sim.add_hub_device(
        "edge-x",
        HubDeviceAuth::X509 {
            ca_pem: root.cert_pem(),
        },
    );

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "edge-x");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let chain = root.sign_client_csr(&csr).unwrap();
    assert!(root.sign_client_csr("not a csr").is_err());

    let client = Client::with_cert(&sim, &chain, &key.serialize_pem());
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/edge-x/modules?{HUB_API}"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The same cert does not open another device.
    sim.add_hub_device(
        "edge-y",
        HubDeviceAuth::X509 {
            ca_pem: root.cert_pem(),
        },
    );
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/edge-y/modules?{HUB_API}"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
}
