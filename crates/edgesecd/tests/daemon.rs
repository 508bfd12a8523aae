//! edgesecd end to end: the quickstart with the real agent; watchdog and restart policy;
//! deployment edits; restarts keep identities; readiness; bad configs.

mod common;

use common::*;

fn ticker(name: &str, order: u32) -> String {
    format!(
        r#""{name}": {{ "type": "process", "restartPolicy": "always", "startupOrder": {order},
            "settings": {{ "command": "/bin/sh", "args": ["-c", "while true; do echo {name}-tick; sleep 1; done"] }} }}"#
    )
}

#[test]
fn the_agent_runs_the_deployment_and_keeps_it_running() {
    let mut edge = Edge::quickstart(&deployment(&[ticker("alpha", 1), ticker("beta", 2)]));
    edge.wait_status("edgeAgent", "running");
    edge.wait_status("alpha", "running");
    edge.wait_status("beta", "running");

    // the logs endpoint serves what the module printed
    wait_until(
        "alpha's output",
        || {
            edge.mgmt("GET", &format!("/modules/alpha/logs?{V}&tail=5"), None)
                .1
                .contains("alpha-tick")
        },
        || edge.log(),
    );

    // a module with restartPolicy always comes back after kill -9
    let before = edge.pids("alpha-tick");
    assert_eq!(before.len(), 1, "{before:?}");
    unsafe { libc::kill(before[0], libc::SIGKILL) };
    wait_until(
        "alpha to come back",
        || edge.pids("alpha-tick").iter().any(|p| !before.contains(p)),
        || edge.log(),
    );
    edge.wait_status("alpha", "running");

    // the agent comes back after kill -9 (the daemon's watchdog)
    let agents = edge.pids("edgesec-agent");
    assert_eq!(agents.len(), 1, "{agents:?}");
    unsafe { libc::kill(agents[0], libc::SIGKILL) };
    wait_until(
        "a new agent",
        || {
            edge.pids("edgesec-agent")
                .iter()
                .any(|p| !agents.contains(p))
        },
        || edge.log(),
    );
    edge.wait_status("edgeAgent", "running");

    // an edit of the deployment is reconciled: beta goes, gamma comes
    std::fs::write(
        edge.path("deployment.json"),
        deployment(&[ticker("alpha", 1), ticker("gamma", 3)]),
    )
    .unwrap();
    edge.wait_status("gamma", "running");
    wait_until(
        "beta to be removed",
        || edge.status("beta").is_none(),
        || edge.log(),
    );
    assert!(edge.pids("beta-tick").is_empty(), "beta's process is gone");

    edge.stop();
    assert!(
        edge.pids("-tick").is_empty(),
        "SIGTERM stopped every module"
    );
    assert!(!edge.path("run/mgmt.sock").exists() && !edge.path("run/keyd.sock").exists());
}

#[test]
fn a_restart_keeps_identities_and_generation_ids() {
    let mut edge = Edge::quickstart(&deployment(&[ticker("alpha", 1)]));
    edge.wait_status("alpha", "running");
    let ids = |e: &Edge| {
        let (code, body) = e.mgmt("GET", &format!("/identities?{V}"), None);
        assert_eq!(code, 200);
        let mut v: Vec<(String, String)> = serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["moduleId"].as_str().unwrap().to_owned(),
                    i["generationId"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = ids(&edge);
    assert!(
        before.iter().any(|(m, _)| m == "alpha") && before.iter().any(|(m, _)| m == "edgeAgent"),
        "{before:?}"
    );
    edge.stop();
    edge.start().unwrap();
    edge.wait_status("alpha", "running");
    assert_eq!(ids(&edge), before);
}

#[test]
fn readiness_is_announced_to_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut edge = Edge::quickstart(&deployment(&[]));
    edge.stop();
    edge.start_with_env(&[("NOTIFY_SOCKET", sock_path.to_str().unwrap())])
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("a readiness message");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
}

#[test]
fn a_bad_config_exits_78_naming_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    for (text, key) in [
        (
            "state_dir = \"s\"\n[keyd]\nsocket = \"k\"\n[provisioning]\nsource = \"local\"\ndevice_id = \"bad id\"\n",
            "provisioning.device_id",
        ),
        (
            "state_dir = \"s\"\n[keyd]\nsocket = \"k\"\n[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[watchdog]\ninterval_secs = \"often\"\n",
            "watchdog.interval_secs",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgesecd"))
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&file.display().to_string()) && err.contains(key),
            "{err}"
        );
    }
}

#[test]
fn edgesecd_refuses_an_unsafe_state_dir() {
    let mut edge = Edge::quickstart(&deployment(&[]));
    edge.stop();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        edge.path("state/edgesecd"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let (code, log) = edge.start().expect_err("must refuse");
    assert_eq!(code, Some(1));
    assert!(
        log.contains("state/edgesecd") && log.contains("0777"),
        "{log}"
    );
}

#[test]
fn a_connection_string_key_is_imported_into_keyd_and_module_keys_derive_from_it() {
    use base64::Engine as _;
    let key = [7u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let provisioning = format!(
        "[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName=hub1.example.net;DeviceId=dev-7;SharedAccessKey={b64}\"\n"
    );
    let edge = Edge::with_config(&deployment(&[ticker("alpha", 1)]), |c| {
        let start = c.find("[provisioning]").unwrap();
        let end = c[start..].find("\n\n").unwrap() + start;
        format!("{}{}{}", &c[..start], provisioning, &c[end..])
    });
    edge.wait_status("alpha", "running");
    // the config names no key file; keyd now holds the connection string's key
    let keyd = edgesec_keyd::client::KeydClient::new(edge.path("run/keyd.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = b"which key?";
    let tag = rt.block_on(async {
        let h = keyd.load_key("edgesec/device-key").await.unwrap();
        keyd.sign(
            &h.key_handle,
            edgesec_keys::SignAlgorithm::HmacSha256,
            edgesec_keys::SignInput::Message(probe),
        )
        .await
        .unwrap()
    });
    let expected = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        probe,
    );
    assert_eq!(tag, expected.as_ref());
    // modules see the hub and device of the connection string
    let pids = edge.pids("alpha-tick");
    let env =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/environ", pids[0])).unwrap())
            .to_string();
    assert!(
        env.contains("IOTEDGE_IOTHUBHOSTNAME=hub1.example.net")
            && env.contains("IOTEDGE_DEVICEID=dev-7"),
        "{env}"
    );
    // the key is nowhere in the daemon's state files
    for entry in walk(&edge.path("state/edgesecd")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&b64),
            "{} holds the key",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn a_second_edgesecd_on_the_same_state_refuses_to_start() {
    let edge = Edge::quickstart(&deployment(&[]));
    edge.wait_status("edgeAgent", "running");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgesecd"))
        .arg("--config")
        .arg(edge.path("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    // the first one is untouched
    assert_eq!(edge.status("edgeAgent").as_deref(), Some("running"));
}
