//! `edgesec` against the real daemon on a copy of the quickstart: golden outputs of `list`,
//! `check --output json` and `system status`; every other subcommand; and `check` failing by
//! name on a stopped keyd and on an expired CA.

mod common;

use common::*;

fn demo() -> Edge {
    let edge = Edge::quickstart(&deployment(&[ticker("alpha", 1), crasher("crasher", 3, 2)]));
    edge.wait_status("edgeAgent", "running");
    edge.wait_status("alpha", "running");
    edge.wait_status("crasher", "failed");
    edge
}

/// The temp dir and the binaries' dir as placeholders, so goldens do not depend on paths.
fn paths(edge: &Edge, s: &str) -> String {
    let bin = edgesec_bin().parent().unwrap().display().to_string();
    s.replace(&edge.dir.path().display().to_string(), "<DIR>")
        .replace(&bin, "<BIN>")
}

#[test]
fn list_check_and_status_match_their_goldens() {
    let edge = demo();

    let list = edge.ok(&["list"]);
    golden("list.txt", &cells(&normalize(&paths(&edge, &list))));

    let out = edge.edgesec(&["check", "--output", "json"]);
    assert!(
        out.status.success(),
        "a healthy quickstart passes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Free space belongs to the test machine: a nearly full disk warns, and that is right too.
    // The golden records it as a pass so it does not depend on where the test runs.
    let mut disk_warned = false;
    for c in v["checks"].as_array_mut().unwrap() {
        if c["id"] == "disk-space" {
            c["detail"] = "<free space>".into();
            match c["result"].as_str() {
                Some("pass") => {}
                Some("warn") => {
                    disk_warned = true;
                    c["result"] = "pass".into();
                    c.as_object_mut().unwrap().remove("hint");
                }
                other => panic!("disk-space check gave {other:?}: {c}"),
            }
        }
    }
    if disk_warned {
        let summary = &mut v["summary"];
        summary["warn"] = (summary["warn"].as_u64().unwrap() - 1).into();
        summary["pass"] = (summary["pass"].as_u64().unwrap() + 1).into();
    }
    let json = serde_json::to_string_pretty(&v).unwrap() + "\n";
    golden("check.json", &normalize(&paths(&edge, &json)));

    let status = edge.ok(&["system", "status"]);
    let status: String = status
        .lines()
        .map(|l| {
            if l.contains("sign:") {
                "            <capabilities>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    golden("status.txt", &normalize(&paths(&edge, &status)));

    // the same facts as JSON: edgesecd's GET /status
    let s: serde_json::Value =
        serde_json::from_str(&edge.ok(&["system", "status", "--json"])).unwrap();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["device"]["id"], "quickstart-device");
    assert_eq!(s["key_store"]["backend"], "soft");
    let caps: Vec<&str> = s["key_store"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        caps.contains(&"symmetric:hmac-sha256") && caps.contains(&"key-pair:ec-p256"),
        "{caps:?}"
    );
    assert_eq!(s["ca"]["mode"], "quickstart");
    assert_eq!(
        s["ca"]["chain"].as_array().unwrap().len(),
        2,
        "edge CA and root"
    );
    assert_eq!(
        s["modules"],
        serde_json::json!({ "total": 3, "running": 2, "failed": 1, "stopped": 0 })
    );

    // text check output names every check with an ASCII mark when not on a terminal
    let text = edge.ok(&["check"]);
    assert!(
        text.contains("[ok]   ca-expiry") && text.contains("[ok]   keyd-reachable"),
        "{text}"
    );
}

#[test]
fn logs_restart_certs_identities_and_bundle() {
    let edge = demo();

    wait_until(
        "alpha's output",
        || {
            edge.ok(&["logs", "alpha", "--tail", "2"])
                .contains("alpha-tick")
        },
        || edge.log(),
    );
    assert_eq!(edge.ok(&["logs", "crasher"]), "crasher gives up\n");
    assert_eq!(
        edge.ok(&["logs", "crasher", "--since", "1 day", "--until", "0"]),
        ""
    );
    assert_eq!(
        edge.ok(&["logs", "crasher", "--since", "2000-01-01T00:00:00Z"]),
        "crasher gives up\n"
    );
    let out = edge.edgesec(&["logs", "alpha", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = edge.edgesec(&["logs", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") && err.contains("hint: no module named \"nope\""),
        "{err}"
    );

    // -f keeps streaming until the module stops: read two lines, then stop reading
    let mut child = std::process::Command::new(edgesec_bin())
        .arg("--config")
        .arg(edge.path("config.toml"))
        .args(["logs", "alpha", "-f", "--tail", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "alpha-tick");
    assert_eq!(lines.next().unwrap().unwrap(), "alpha-tick");
    child.kill().unwrap();
    child.wait().unwrap();

    let pid_before = edge.ok(&["list", "--json"]);
    assert_eq!(edge.ok(&["restart", "alpha"]), "Restarted alpha\n");
    edge.wait_status("alpha", "running");
    assert_ne!(pid_before, edge.ok(&["list", "--json"]), "a new start time");

    let certs = edge.ok(&["cert", "list"]);
    assert!(certs.starts_with("ID "), "{certs}");
    assert!(
        certs.contains("edge-ca")
            && certs.contains("device-root-ca")
            && certs.contains("keyd:edgesec/ca/"),
        "{certs}"
    );
    let show = edge
        .ok(&["cert", "show", "edge-ca"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for field in [
        "Subject",
        "SANs",
        "Issuer CN=edgesec device root CA",
        "Not after",
        "Days left 89",
        "Key keyd:edgesec/ca/edge-",
    ] {
        assert!(show.contains(field), "{field}: {show}");
    }
    let out = edge.edgesec(&["cert", "show", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("there are: edge-ca, device-root-ca"));

    let ids = edge.ok(&["identity", "list"]);
    assert!(
        ids.starts_with("MODULE ") && ids.contains("alpha") && ids.contains("edgeAgent"),
        "{ids}"
    );

    assert!(
        edge.ok(&[
            "config",
            "check",
            edge.path("config.toml").to_str().unwrap()
        ])
        .contains("is valid")
    );
    assert_eq!(
        edge.ok(&["version"]),
        format!("edgesec {}\n", env!("CARGO_PKG_VERSION"))
    );

    let bundle = edge.path("bundle.tar.gz");
    edge.ok(&["support-bundle", "-o", bundle.to_str().unwrap()]);
    let list = std::process::Command::new("tar")
        .arg("tzf")
        .arg(&bundle)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    for f in [
        "check.json",
        "status.json",
        "modules.json",
        "logs/alpha.log",
        "logs/crasher.log",
        "config.toml",
        "keyd.toml",
        "audit.log",
        "versions.txt",
    ] {
        assert!(
            names.contains(&format!("support_bundle/{f}")),
            "{f} in {names}"
        );
    }
}

#[test]
fn check_fails_by_name_on_a_stopped_keyd_and_on_an_expired_ca() {
    let mut edge = demo();
    assert!(edge.edgesec(&["check"]).status.success());

    // keyd stops while the daemon runs
    let keyd = edge.keyd_pid().expect("the quickstart's keyd runs");
    unsafe { libc::kill(keyd, libc::SIGTERM) };
    wait_until("keyd to stop", || edge.keyd_pid().is_none(), String::new);
    let out = edge.edgesec(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[FAIL] keyd-reachable"), "{text}");
    assert!(text.contains("[ok]   daemon-running"), "{text}");

    // the daemon stopped, and its edge CA replaced by an expired certificate
    edge.stop();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "edgesec edge CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(edge.path("state/edgesecd/certs/edge-ca.pem"), cert.pem()).unwrap();

    let out = edge.edgesec(&["check", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ca = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ca-expiry")
        .unwrap();
    assert_eq!(ca["result"], "fail", "{ca}");
    assert_eq!(
        ca["detail"],
        "CN=edgesec edge CA expired at 2021-01-01T00:00:00Z"
    );
    assert!(ca["hint"].as_str().unwrap().contains("restart edgesecd"));
    let text = String::from_utf8_lossy(&edge.edgesec(&["check"]).stdout).into_owned();
    assert!(text.contains("[FAIL] ca-expiry"), "{text}");
}
