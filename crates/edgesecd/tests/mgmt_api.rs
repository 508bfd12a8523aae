//! The management API: who may call what, and bad input. A probe process plays the agent, so
//! the agent-only routes are exercised through real attestation.

mod common;

use common::*;

fn spec(name: &str, command: &str) -> String {
    serde_json::json!({ "name": name, "type": "process", "config": { "settings": { "command": command, "args": ["-c", "sleep 1000"] } } }).to_string()
}

#[test]
fn only_the_agent_may_change_modules_and_identities() {
    let edge = Edge::quickstart(&deployment(&[]));
    edge.wait_status("edgeAgent", "running");
    let body = spec("intruder", "/bin/sh");
    let mutating: Vec<(&str, String, Option<&str>)> = vec![
        ("POST", format!("/modules?{V}"), Some(&body)),
        ("PUT", format!("/modules/intruder?{V}"), Some(&body)),
        ("DELETE", format!("/modules/edgeAgent?{V}"), None),
        (
            "POST",
            format!("/modules/edgeAgent/prepareupdate?{V}"),
            Some(&body),
        ),
        (
            "POST",
            format!("/identities?{V}"),
            Some(r#"{"moduleId":"intruder"}"#),
        ),
        ("PUT", format!("/identities/edgeAgent?{V}"), Some("{}")),
        ("DELETE", format!("/identities/edgeAgent?{V}"), None),
    ];
    for (method, path, body) in &mutating {
        let (code, text) = edge.mgmt(method, path, *body);
        assert_eq!(
            (code, message(&text).as_str()),
            (403, "forbidden"),
            "{method} {path}"
        );
    }
    // reads are open to admins (this test runs as root, an admin by default)
    assert_eq!(edge.mgmt("GET", &format!("/modules?{V}"), None).0, 200);
    assert_eq!(edge.mgmt("GET", &format!("/systeminfo?{V}"), None).0, 200);
    // every refusal is audited, with the reason
    let denied: Vec<_> = edge
        .audit()
        .into_iter()
        .filter(|r| r["decision"] == "deny" && r["socket"] == "management")
        .collect();
    assert_eq!(denied.len(), mutating.len(), "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|r| r["status"] == 403 && r["reason"] == "not the agent" && r["uid"] == 0),
        "{denied:?}"
    );
    // and nothing changed
    assert!(edge.status("intruder").is_none());
    assert_eq!(edge.status("edgeAgent").as_deref(), Some("running"));
}

#[test]
fn a_module_that_is_not_the_agent_may_not_change_modules() {
    let probe = Probe::new_box();
    let (edge, agent) = Edge::with_probe_agent(&deployment(&[]));
    let mgmt = edge.path("run/mgmt.sock");
    // the agent registers a probe module, which then tries to act as the agent
    let body = serde_json::json!({ "name": "mod", "type": "process", "config": { "settings": {
        "command": python(), "args": [probe_script(), &probe.dir] } } })
    .to_string();
    assert_eq!(
        agent
            .call(&mgmt, "POST", &format!("/modules?{V}"), Some(&body))
            .0,
        201
    );
    assert_eq!(
        agent
            .call(&mgmt, "POST", &format!("/modules/mod/start?{V}"), None)
            .0,
        204
    );
    probe.wait_ready();
    let (code, text) = probe.call(
        &mgmt,
        "POST",
        &format!("/modules?{V}"),
        Some(&spec("x", "/bin/sh")),
    );
    assert_eq!((code, message(&text).as_str()), (403, "forbidden"));
    let rec = edge
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["decision"] == "deny")
        .unwrap();
    assert_eq!(rec["module"], "mod", "{rec}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let (edge, agent) = Edge::with_probe_agent(&deployment(&[]));
    let mgmt = edge.path("run/mgmt.sock");
    let call = |m: &str, p: &str, b: Option<&str>| agent.call(&mgmt, m, p, b);
    let dup_env = serde_json::json!({ "name": "d", "type": "process", "config": {
        "settings": { "command": "/bin/true" }, "env": [{"key":"A","value":"1"},{"key":"A","value":"2"}] } })
    .to_string();
    let long = "n".repeat(129);
    // a valid name whose socket path under the test's run/mnt would not fit in sun_path
    let socket_long = "s".repeat(100);
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        ("GET", format!("/nothing?{V}"), None, 404, "not found"),
        (
            "GET",
            "/modules".into(),
            None,
            400,
            "api-version not specified",
        ),
        (
            "GET",
            "/modules?api-version=2021-05-11".into(),
            None,
            400,
            "invalid api-version",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some("{not json".into()),
            422,
            "invalid request body",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(r#"{"name":5,"type":"process","config":{}}"#.into()),
            422,
            "name",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(
                r#"{"name":"m","type":"process","config":{"settings":{"comand":"/bin/true"}}}"#
                    .into(),
            ),
            422,
            "comand",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(dup_env),
            400,
            "duplicate env var key: A",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec("a/b", "/bin/sh")),
            400,
            "invalid module name",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec("..", "/bin/sh")),
            400,
            "invalid module name",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec("nul\u{0}x", "/bin/sh")),
            400,
            "invalid module name",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec(&long, "/bin/sh")),
            400,
            "invalid module name",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec(&socket_long, "/bin/sh")),
            400,
            "limit of a socket path",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec("ghost", "/no/such/program")),
            400,
            "not found",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(spec("ghost", "no-such-program-anywhere")),
            400,
            "not found",
        ),
        (
            "POST",
            format!("/modules?{V}"),
            Some(r#"{"name":"c","type":"docker","config":{"settings":{"image":"x"}}}"#.into()),
            400,
            "docker",
        ),
        (
            "DELETE",
            format!("/modules/none?{V}"),
            None,
            404,
            "not found",
        ),
        (
            "POST",
            format!("/modules/none/start?{V}"),
            None,
            404,
            "not found",
        ),
        (
            "PUT",
            format!("/modules/other?{V}&start=true"),
            Some(spec("m", "/bin/sh")),
            400,
            "does not match",
        ),
        (
            "PUT",
            format!("/modules/m?{V}&start=maybe"),
            Some(spec("m", "/bin/sh")),
            400,
            "invalid parameter: start",
        ),
        (
            "GET",
            format!("/modules/edgeAgent/logs?{V}&tail=lots"),
            None,
            400,
            "invalid parameter: tail",
        ),
        (
            "GET",
            format!("/modules/edgeAgent/logs?{V}&since=whenever"),
            None,
            400,
            "invalid parameter: since",
        ),
        (
            "DELETE",
            format!("/identities/none?{V}"),
            None,
            404,
            "not found",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let (code, text) = call(method, &path, body.as_deref());
        assert_eq!(code, status, "{method} {path}: {text}");
        assert!(
            message(&text).contains(needle),
            "{method} {path}: {text:?} lacks {needle:?}"
        );
    }
    // creating twice is a conflict; the first stays
    assert_eq!(
        call(
            "POST",
            &format!("/modules?{V}"),
            Some(&spec("m", "/bin/sh"))
        )
        .0,
        201
    );
    let (code, text) = call(
        "POST",
        &format!("/modules?{V}"),
        Some(&spec("m", "/bin/sh")),
    );
    assert_eq!(
        (code, message(&text).contains("already exists")),
        (409, true),
        "{text}"
    );
    assert_eq!(edge.status("m").as_deref(), Some("stopped"));
}

#[test]
fn a_thousand_create_delete_cycles_leak_nothing() {
    let (edge, agent) = Edge::with_probe_agent(&deployment(&[]));
    let mgmt = edge.path("run/mgmt.sock");
    let fds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let children = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .count()
    };
    let d = edge.pid();
    // warm up once so lazily opened files (audit log, caches) are counted in the baseline
    let body = spec("cycle", "/bin/sh");
    agent.call(&mgmt, "POST", &format!("/modules?{V}"), Some(&body));
    agent.call(&mgmt, "DELETE", &format!("/modules/cycle?{V}"), None);
    let (fds0, kids0) = (fds(d), children(d));
    let create = ("POST", format!("/modules?{V}"), Some(body.clone()));
    let start = ("POST", format!("/modules/cycle/start?{V}"), None);
    let delete = ("DELETE", format!("/modules/cycle?{V}"), None);
    for round in 0..10 {
        // every 100th cycle also runs the module
        let mut calls = vec![create.clone(), start.clone(), delete.clone()];
        for _ in 1..100 {
            calls.extend([create.clone(), delete.clone()]);
        }
        let statuses = agent.batch(&mgmt, &calls);
        let expected: Vec<u16> = calls
            .iter()
            .map(|(m, p, _)| {
                if *m == "DELETE" || p.contains("/start") {
                    204
                } else {
                    201
                }
            })
            .collect();
        assert_eq!(statuses, expected, "round {round}");
    }
    assert!(edge.status("cycle").is_none());
    assert!(edge.pids("sleep 1000").is_empty(), "no module process left");
    assert!(
        !edge.path("run/mnt/cycle.sock").exists(),
        "no socket file left"
    );
    assert_eq!(children(d), kids0, "no extra child processes");
    assert!(
        fds(d) <= fds0 + 2,
        "file descriptors: {} before, {} after",
        fds0,
        fds(d)
    );
    let reg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(edge.path("state/edgesecd/registry.json")).unwrap())
            .unwrap();
    assert!(reg["modules"].get("cycle").is_none());
}

#[test]
fn the_admin_group_may_read_and_others_cannot_connect() {
    // uid 65534 with group 4242 as a supplementary group only
    let edge = Edge::with_config(&deployment(&[]), |c| {
        c.replace("[management]\n", "[management]\nadmin_gid = 4242\n")
    });
    use std::os::unix::fs::PermissionsExt;
    for d in [edge.dir.path().to_owned(), edge.path("run")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |groups: &str, method: &str, path: &str| {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                &format!("--groups={groups}"),
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
                "--unix-socket",
            ])
            .arg(edge.path("run/mgmt.sock"))
            .arg(format!("http://localhost{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(as_nobody("4242", "GET", &format!("/modules?{V}")), "200");
    assert_eq!(
        as_nobody("4242", "POST", &format!("/modules/edgeAgent/restart?{V}")),
        "204"
    );
    assert_eq!(
        as_nobody("4242", "POST", &format!("/device/reprovision?{V}")),
        "204",
        "admins may reprovision (`edgesec system reprovision`)"
    );
    assert_eq!(
        as_nobody("4242", "POST", &format!("/identities?{V}")),
        "403",
        "admins are not the agent"
    );
    assert_eq!(
        as_nobody("4243", "GET", &format!("/modules?{V}")),
        "000",
        "the socket is 0660 with the admin group"
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(edge.path("run/mgmt.sock")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 4242));
}
