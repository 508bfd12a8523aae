//! The DPS TPM flow as far as it can go without a TPM: the challenge, the
//! endorsement-key binding, and (with the issued key read from the sim) the
//! SAS rounds, assignment and hub access.

mod common;

use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use common::*;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};
use http::Method;
use serde_json::{Value, json};

/// A marshalled TPM2B_PUBLIC of an RSA-2048 restricted decryption key with
/// SHA-256 names and AES-128-CFB: the shape of the EK and SRK templates.
fn rsa_storage_key_public() -> Vec<u8> {
    let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA key");
    let modulus = PublicKeyComponents::<Vec<u8>>::from(key.public_key()).n;
    assert_eq!(modulus.len(), 256);
    let mut area = Vec::new();
    area.extend(0x0001u16.to_be_bytes()); // TPM_ALG_RSA
    area.extend(0x000Bu16.to_be_bytes()); // nameAlg SHA-256
    area.extend(((1u32 << 16) | (1u32 << 17)).to_be_bytes()); // restricted | decrypt
    area.extend(0u16.to_be_bytes()); // empty authPolicy
    area.extend(0x0006u16.to_be_bytes()); // AES
    area.extend(128u16.to_be_bytes());
    area.extend(0x0043u16.to_be_bytes()); // CFB
    area.extend(0x0010u16.to_be_bytes()); // no scheme
    area.extend(2048u16.to_be_bytes());
    area.extend(0u32.to_be_bytes()); // default exponent
    area.extend((modulus.len() as u16).to_be_bytes());
    area.extend(&modulus);
    let mut public = (area.len() as u16).to_be_bytes().to_vec();
    public.extend(area);
    public
}

fn tpm_body(registration_id: &str, ek: &[u8], srk: &[u8]) -> Value {
    json!({
        "registrationId": registration_id,
        "tpm": { "endorsementKey": key_b64(ek), "storageRootKey": key_b64(srk) },
    })
}

#[tokio::test]
async fn challenge_then_sas_with_the_issued_key_assigns_and_opens_the_hub() {
    let sim = CloudSim::start();
    sim.enroll(Enrollment::new(
        "tpm-1",
        EnrollmentAttestation::Tpm {
            endorsement_key_b64: None,
        },
    ));
    let client = Client::new(&sim);
    let (ek, srk) = (rsa_storage_key_public(), rsa_storage_key_public());
    let body = tpm_body("tpm-1", &ek, &srk);

    let reply = client.register("tpm-1", None, &body).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let blob = reply.body["authenticationKey"]
        .as_str()
        .expect("authenticationKey")
        .to_owned();
    assert!(!b64_decode(&blob).is_empty());
    let key = sim.tpm_issued_key("tpm-1").expect("issued key");

    let wrong = dps_token("tpm-1", b"not-the-issued-key-not-the-issue");
    let reply = client.register("tpm-1", Some(&wrong), &body).await;
    assert_eq!(reply.status, 401);

    let token = dps_token("tpm-1", &key);
    let reply = client.register("tpm-1", Some(&token), &body).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let operation_id = reply.body["operationId"].as_str().unwrap().to_owned();
    let reply = client
        .send(
            Method::GET,
            &operation_path("tpm-1", &operation_id),
            Some(&token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.body["status"], "assigned", "{}", reply.body);
    assert_eq!(
        reply.body["registrationState"]["tpm"]["authenticationKey"],
        blob.as_str()
    );

    let methods: Vec<(String, bool)> = sim
        .registrations("tpm-1")
        .into_iter()
        .map(|r| (r.method, r.accepted))
        .collect();
    assert_eq!(
        methods,
        [
            ("tpm-challenge".to_owned(), false),
            ("tpm".to_owned(), false),
            ("tpm".to_owned(), true)
        ]
    );

    // The hub knows the device by the same key.
    let hub = hub_token(&sim, "tpm-1", &key);
    let reply = client
        .send(
            Method::GET,
            &format!("/devices/tpm-1/modules?{HUB_API}"),
            Some(&hub),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The first endorsement key is now the only one accepted.
    let other = tpm_body("tpm-1", &rsa_storage_key_public(), &srk);
    let reply = client.register("tpm-1", None, &other).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("endorsementKey")
    );
}

#[tokio::test]
async fn sas_before_any_challenge_and_unusable_keys_are_refused() {
    let sim = CloudSim::start();
    sim.enroll(Enrollment::new(
        "tpm-2",
        EnrollmentAttestation::Tpm {
            endorsement_key_b64: None,
        },
    ));
    let client = Client::new(&sim);
    let (ek, srk) = (rsa_storage_key_public(), rsa_storage_key_public());

    let token = dps_token("tpm-2", b"guessed-key-guessed-key-guessed!");
    let body = tpm_body("tpm-2", &ek, &srk);
    let reply = client.register("tpm-2", Some(&token), &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("no authentication key"),
        "{}",
        reply.body
    );

    // Keys that are not TPM storage keys get a clear 400 and bind nothing.
    let garbage = tpm_body("tpm-2", b"not a TPM2B_PUBLIC", b"nor this");
    let reply = client.register("tpm-2", None, &garbage).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("TPM challenge could not be made")
    );
    assert_eq!(sim.tpm_issued_key("tpm-2"), None);

    let reply = client.register("tpm-2", None, &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["authenticationKey"].is_string(),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn enrolled_endorsement_key_must_match() {
    let sim = CloudSim::start();
    let (ek, srk) = (rsa_storage_key_public(), rsa_storage_key_public());
    sim.enroll(Enrollment::new(
        "tpm-3",
        EnrollmentAttestation::Tpm {
            endorsement_key_b64: Some(key_b64(&ek)),
        },
    ));
    let client = Client::new(&sim);

    let other = tpm_body("tpm-3", &rsa_storage_key_public(), &srk);
    let reply = client.register("tpm-3", None, &other).await;
    assert_eq!(reply.status, 401);
    assert_eq!(sim.tpm_issued_key("tpm-3"), None);

    let reply = client
        .register("tpm-3", None, &tpm_body("tpm-3", &ek, &srk))
        .await;
    assert_eq!(reply.status, 401);
    assert!(reply.body["authenticationKey"].is_string());
    assert!(sim.tpm_issued_key("tpm-3").is_some());
}

#[tokio::test]
async fn missing_tpm_keys_and_a_foreign_endorsement_key_are_refused() {
    let sim = CloudSim::start();
    let ek = key_b64(b"enrolled endorsement key");
    sim.enroll(Enrollment::new(
        "tpm-1",
        EnrollmentAttestation::Tpm {
            endorsement_key_b64: Some(ek),
        },
    ));
    let client = Client::new(&sim);

    let reply = client
        .register("tpm-1", None, &json!({ "registrationId": "tpm-1" }))
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("tpm.endorsementKey")
    );

    let body = json!({
        "registrationId": "tpm-1",
        "tpm": { "endorsementKey": key_b64(b"some other TPM"), "storageRootKey": key_b64(b"srk") },
    });
    let reply = client.register("tpm-1", None, &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("endorsementKey")
    );

    let records = sim.registrations("tpm-1");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| !r.accepted && r.method == "tpm"));
}
