//! The device in the cloud, end to end: the real edgesecd (with the real keyd) provisions
//! against `edgesec-cloudsim`, a DPS and IoT Hub that checks every credential. Each
//! attestation method assigns; the service's retry-after, failures and refusals are honoured
//! and reported; the cache carries a boot when the cloud is away; `dynamic` reprovisions a
//! refused device, and `edgesec system reprovision` registers again. Module identities in the
//! hub are in `cloud_modules.rs`.

#[path = "common/cloud.rs"]
mod cloud_support;
mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloud_support::*;
use common::*;
use edgesec_cloudsim::testpki::TestCa;
use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};

#[test]
fn an_individual_symmetric_key_enrollment_assigns_and_the_payload_reaches_dps() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let key = key_b64(1);
    let mut e = Enrollment::new(
        "sym-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key.clone(),
        },
    );
    e.assigning_polls = 2;
    e.device_id = Some("sym-device-7".into());
    sim.enroll(e);
    let key_file = files.write("dps-key", &key);
    let payload = serde_json::json!({ "modelId": "dtmi:plant:press;1", "line": 3 });
    let payload_file = files.write("payload.json", &payload.to_string());
    let extra = format!(
        "payload = {{ uri = \"file://{}\" }}",
        payload_file.display()
    );
    let edge = Edge::with_config(&deployment(&[]), |c| {
        files.config(c, "", &dps_symmetric(&sim, "sym-dev", &key_file, &extra))
    });

    let d = device_status(&edge);
    assert_eq!(d["id"], "sym-device-7");
    assert_eq!(d["hub"], sim.hub_hostname());
    assert_eq!(d["source"], "dps");
    assert_eq!(d["credential"], "sas");
    assert_eq!(d["registration_id"], "sym-dev");
    assert_eq!(d["from_cache"], false);

    let regs = sim.registrations("sym-dev");
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert!(regs[0].accepted, "{regs:?}");
    assert_eq!(regs[0].payload.as_ref(), Some(&payload));
    let polls = sim
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /0ne00TEST1/registrations/sym-dev/operations/"))
        .count();
    assert!(
        polls >= 3,
        "assigning twice, then assigned: {:?}",
        sim.requests()
    );

    // the cache names the assignment and holds no key
    let cache = std::fs::read_to_string(edge.path("state/edgesecd/provisioning.json")).unwrap();
    assert!(
        cache.contains("sym-device-7") && !cache.contains(&key),
        "{cache}"
    );
    assert!(sim.hub_has_device("sym-device-7"));

    // modules (the agent first) are told the hub and device DPS assigned
    wait_until(
        "the agent to run",
        || !edge.pids("edgesec-agent").is_empty(),
        || edge.log(),
    );
    let pids = edge.pids("edgesec-agent");
    let env =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/environ", pids[0])).unwrap())
            .to_string();
    assert!(
        env.contains("IOTEDGE_DEVICEID=sym-device-7")
            && env.contains(&format!("IOTEDGE_IOTHUBHOSTNAME={}", sim.hub_hostname())),
        "{env}"
    );
}

#[test]
fn a_group_enrollment_derives_the_device_key_in_keyd() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let group_key = key_b64(2);
    sim.enroll(Enrollment::new(
        "group-dev-1",
        EnrollmentAttestation::GroupSymmetricKey {
            group_key_b64: group_key.clone(),
        },
    ));
    let key_file = files.write("group-key", &group_key);
    let provisioning = dps_symmetric(&sim, "group-dev-1", &key_file, "")
        .replace("symmetric_key = ", "enrollment_group_key = ");
    let edge = Edge::with_config(&deployment(&[]), |c| files.config(c, "", &provisioning));
    assert_eq!(device_status(&edge)["id"], "group-dev-1");
    let regs = sim.registrations("group-dev-1");
    assert!(regs.last().unwrap().accepted, "{regs:?}");

    // the key keyd derived is HMAC-SHA256(group key, registration id), as computed here
    let keyd = edgesec_keyd::client::KeydClient::new(edge.path("run/keyd.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let derived = rt.block_on(async {
        let g = keyd.load_key("edgesec/dps-group-key").await.unwrap();
        let d = keyd.derive(&g.key_handle, b"group-dev-1").await.unwrap();
        keyd.export_derived(&d.key_handle).await.unwrap().to_vec()
    });
    assert_eq!(
        STANDARD.encode(derived),
        hmac_b64(&STANDARD.decode(&group_key).unwrap(), b"group-dev-1")
    );
}

#[test]
fn x509_attestation_assigns_with_the_key_in_keyd_and_reaches_the_hub() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let ca = TestCa::new_root("plant devices root");
    let issued = ca.issue_client("x509-dev");
    let cert = files.write("id.pem", &issued.chain_pem);
    let key = files.write("id.key.pem", &issued.key_pem);
    sim.enroll(Enrollment::new(
        "x509-dev",
        EnrollmentAttestation::X509 {
            ca_pem: ca.cert_pem(),
        },
    ));
    let provisioning = format!(
        "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"{}\"\nid_scope = \"0ne00TEST1\"\n\
         [provisioning.attestation]\nmethod = \"x509\"\nidentity_cert = \"{}\"\nidentity_pk = \"{}\"\n",
        sim.endpoint(),
        cert.display(),
        key.display()
    );
    let edge = Edge::with_config(&deployment(&[]), |c| files.config(c, "", &provisioning));
    let d = device_status(&edge);
    assert_eq!(
        (d["id"].as_str(), d["credential"].as_str()),
        (Some("x509-dev"), Some("x509"))
    );
    assert_eq!(
        d["registration_id"], "x509-dev",
        "taken from the certificate's CN"
    );
    assert!(sim.registrations("x509-dev").last().unwrap().accepted);
    // the hub takes the same client certificate
    let (code, body) = edge.mgmt("GET", &format!("/identities?{V}"), None);
    assert_eq!(code, 200, "{body}\n{}", edge.log());

    // a key that is not the certificate's is refused at boot, before any handshake
    let stranger = files.write("stranger.key.pem", &ca.issue_client("x509-dev").key_pem);
    let (code, log) = failed_boot(&files.config(
        quickstart_config(),
        "",
        &provisioning.replace(&key.display().to_string(), &stranger.display().to_string()),
    ));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("the identity key is not the key of the certificate"),
        "{log}"
    );
}

#[test]
fn retry_after_of_a_busy_service_is_honoured() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let key = key_b64(3);
    sim.enroll(Enrollment::new(
        "busy-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key.clone(),
        },
    ));
    sim.fail_next(2, 503, Some(1));
    let key_file = files.write("dps-key", &key);
    let edge = Edge::with_config(&deployment(&[]), |c| {
        files.config(
            c,
            "cloud_retries = 3",
            &dps_symmetric(&sim, "busy-dev", &key_file, ""),
        )
    });
    assert_eq!(device_status(&edge)["id"], "busy-dev");
    let requests = sim.requests();
    let register: Vec<_> = requests
        .iter()
        .filter(|r| r.starts_with("PUT /0ne00TEST1/registrations/busy-dev/register"))
        .collect();
    assert!(
        register.len() == 3 && register[0].ends_with("503") && register[2].ends_with("202"),
        "{requests:?}"
    );
    assert!(
        edge.log().contains("retry_in_ms=1000"),
        "the service's Retry-After: 1 is the wait\n{}",
        edge.log()
    );
}

#[test]
fn a_failed_registration_and_a_wrong_key_fail_the_boot_with_the_reason() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let mut e = Enrollment::new(
        "doomed-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key_b64(4),
        },
    );
    e.fail_with = Some((400_209, "custom allocation failed: line 3 is closed".into()));
    sim.enroll(e);
    let key_file = files.write("dps-key", &key_b64(4));
    let (code, log) = failed_boot(&files.config(
        quickstart_config(),
        "",
        &dps_symmetric(&sim, "doomed-dev", &key_file, ""),
    ));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(
            "DPS registration failed (error 400209): custom allocation failed: line 3 is closed"
        ),
        "{log}"
    );

    sim.enroll(Enrollment::new(
        "keyed-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key_b64(5),
        },
    ));
    let wrong = files.write("wrong-key", &key_b64(6));
    let (code, log) = failed_boot(&files.config(
        quickstart_config(),
        "",
        &dps_symmetric(&sim, "keyed-dev", &wrong, ""),
    ));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(
            "provisioning with DPS failed: DPS answered 401 (the credentials were refused)"
        ),
        "{log}"
    );
    let regs = sim.registrations("keyed-dev");
    assert!(regs.iter().all(|r| !r.accepted), "{regs:?}");
}

#[test]
fn with_the_cloud_away_the_device_starts_from_its_cache_and_says_so() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let key = key_b64(7);
    sim.enroll(Enrollment::new(
        "roaming-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key.clone(),
        },
    ));
    let key_file = files.write("dps-key", &key);
    let provisioning = dps_symmetric(&sim, "roaming-dev", &key_file, "");

    // no cache and no cloud: the boot fails and says both
    sim.pause();
    let (code, log) = failed_boot(&files.config(quickstart_config(), "", &provisioning));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot reach the cloud") && log.contains("no cached provisioning"),
        "{log}"
    );
    sim.resume();

    for mode in ["on-error", "AlwaysOnStartup"] {
        let top = format!("auto_reprovisioning_mode = \"{mode}\"");
        let mut edge =
            Edge::with_config(&deployment(&[]), |c| files.config(c, &top, &provisioning));
        assert_eq!(device_status(&edge)["from_cache"], false, "{mode}");
        edge.stop();
        sim.pause();
        let before = std::fs::read_to_string(&edge.stderr).unwrap().len();
        edge.start().unwrap_or_else(|e| panic!("{mode}: {e:?}"));
        let d = device_status(&edge);
        assert_eq!(
            (d["id"].as_str(), d["from_cache"].as_bool()),
            (Some("roaming-dev"), Some(true)),
            "{mode}"
        );
        let log = edge.log()[before..].to_owned();
        assert!(
            log.contains("the cloud is unreachable; starting from the cached provisioning"),
            "{mode}: {log}"
        );
        edge.stop();
        sim.resume();
    }
}

#[test]
fn dynamic_mode_reprovisions_a_device_the_hub_refuses_and_the_cli_reprovisions() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let key = key_b64(8);
    let enroll = |device: &str| {
        let mut e = Enrollment::new(
            "mover",
            EnrollmentAttestation::SymmetricKey {
                primary_key_b64: key.clone(),
            },
        );
        e.device_id = Some(device.into());
        sim.enroll(e);
    };
    enroll("mover-a");
    let key_file = files.write("dps-key", &key);
    let edge = Edge::with_config(&deployment(&[]), |c| {
        files.config(
            c,
            "auto_reprovisioning_mode = \"dynamic\"",
            &dps_symmetric(&sim, "mover", &key_file, ""),
        )
    });
    assert_eq!(device_status(&edge)["id"], "mover-a");

    // the device moved: the hub refuses mover-a, DPS now assigns mover-b
    // (enrolled first, so a refusal seen by any caller already leads to mover-b)
    enroll("mover-b");
    sim.reject_device("mover-a", true);
    let (code, body) = edge.mgmt("GET", &format!("/identities?{V}"), None);
    assert_eq!(code, 200, "{body}\n{}", edge.log());
    assert_eq!(device_status(&edge)["id"], "mover-b");
    assert_eq!(sim.registrations("mover").len(), 2);
    assert!(
        edge.log()
            .contains("provisioning again (auto_reprovisioning_mode = dynamic)")
    );

    // `edgesec system reprovision` registers once more
    enroll("mover-c");
    let out = Command::new(sibling("edgesec"))
        .arg("--config")
        .arg(edge.path("config.toml"))
        .args(["system", "reprovision"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("device mover-c on") && stdout.contains("(provisioning: dps)"),
        "{stdout}"
    );
    assert_eq!(sim.registrations("mover").len(), 3);
    let out = Command::new(sibling("edgesec"))
        .arg("--config")
        .arg(edge.path("config.toml"))
        .args(["system", "status"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mover-c on") && stdout.contains("assigned by DPS at"),
        "{stdout}"
    );
}

/// A CONNECT proxy on 127.0.0.1 (threads, no runtime) that records the targets it tunnels to.
fn start_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut b).is_err() {
                        return;
                    }
                    head.push(b[0]);
                }
                let target = String::from_utf8_lossy(&head)
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push(target.clone());
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut c1, mut u1) = (client, upstream);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut c1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, seen)
}

#[test]
fn the_https_proxy_of_the_environment_is_used_unless_no_proxy_names_the_host() {
    let sim = CloudSim::start();
    let files = Files::new(&sim);
    let key = key_b64(10);
    sim.enroll(Enrollment::new(
        "proxied-dev",
        EnrollmentAttestation::SymmetricKey {
            primary_key_b64: key.clone(),
        },
    ));
    let key_file = files.write("dps-key", &key);
    let mut edge = Edge::with_config(&deployment(&[]), |c| {
        files.config(
            c,
            "auto_reprovisioning_mode = \"always-on-startup\"",
            &dps_symmetric(&sim, "proxied-dev", &key_file, ""),
        )
    });
    edge.stop();

    let (port, seen) = start_proxy();
    let proxy = format!("http://127.0.0.1:{port}");
    edge.start_with_env(&[("HTTPS_PROXY", &proxy), ("NO_PROXY", "")])
        .unwrap();
    assert_eq!(device_status(&edge)["from_cache"], false);
    assert_eq!(sim.registrations("proxied-dev").len(), 2);
    let tunnels = seen.lock().unwrap().clone();
    assert!(
        !tunnels.is_empty()
            && tunnels
                .iter()
                .all(|t| *t == format!("localhost:{}", sim.port())),
        "{tunnels:?}"
    );
    edge.stop();

    // NO_PROXY names the host: the (dead) proxy is not asked
    edge.start_with_env(&[
        ("https_proxy", "http://127.0.0.1:9"),
        ("no_proxy", "localhost"),
    ])
    .unwrap();
    assert_eq!(device_status(&edge)["from_cache"], false);
    assert_eq!(sim.registrations("proxied-dev").len(), 3);
}
