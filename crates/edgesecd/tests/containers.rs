//! Container modules against a real engine (dockerd in CI; see tests/common/engine.rs): the
//! container quickstart (agent and demo modules as containers, mutual TLS between them, the
//! watchdog bringing back a removed agent), attestation by container id (a process in module
//! A's container gets nothing of module B, a `docker exec` into B is B, a look-alike container
//! made by hand gets nothing), removal behind edgesec's back, the restrictive setting, pull
//! failures, and re-attaching after a daemon restart.

mod common;
#[path = "common/engine.rs"]
mod engine;

use std::path::{Path, PathBuf};

use common::*;
use engine::*;
use serde_json::{Value, json};

const OWN: &str = "/var/run/iotedge/workload.sock";
/// Where the tests mount the shared workload socket inside containers.
const SHARED_IN: &str = "/run/edgesec-shared.sock";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The system's python3 (under /usr, which the containers get from the host).
fn usr_python() -> String {
    "/usr/bin/python3".into()
}

fn logs_text(edge: &Edge, module: &str) -> String {
    edge.mgmt("GET", &format!("/modules/{module}/logs?{V}"), None)
        .1
}

#[test]
fn the_container_quickstart_runs_agent_and_demo_modules_as_containers() {
    let Some(e) = engine() else { return };
    let _cleanup = e.cleanup(&["edgeAgent", "demo-server", "demo-client"]);
    let qs = workspace().join("examples/quickstart-containers");
    let deployment = std::fs::read_to_string(qs.join("deployment.json")).unwrap();
    let config = std::fs::read_to_string(qs.join("config.toml"))
        .unwrap()
        .replace("unix:///var/run/docker.sock", &e.uri());
    let edge = Edge::with_config(&deployment, |_| config);

    // The demo modules do mutual TLS with certificates from edgesecd, as containers.
    let ok = "demo-client: mutual TLS with 127.0.0.1:8443 OK: server name localhost verified";
    wait_until(
        "a mutual-TLS exchange in demo-client's logs",
        || logs_text(&edge, "demo-client").contains(ok),
        || format!("{}\n{}", edge.log(), logs_text(&edge, "demo-server")),
    );
    for name in ["edgeAgent", "demo-server", "demo-client"] {
        assert_eq!(
            e.inspect(name, "{{.State.Running}}").as_deref(),
            Some("true"),
            "{name}"
        );
        assert_eq!(
            e.inspect(
                name,
                "{{index .Config.Labels \"net.azure-devices.edge.owner\"}}"
            )
            .as_deref(),
            Some("Microsoft.Azure.Devices.Edge.Agent")
        );
    }
    let caps = e.inspect("demo-server", "{{.HostConfig.CapDrop}}").unwrap();
    assert!(caps.contains("CHOWN") && caps.contains("SETUID"), "{caps}");
    let audit = edge.audit();
    let client_calls: Vec<_> = audit
        .iter()
        .filter(|r| r["module"] == "demo-client" && r["socket"] == "workload:demo-client")
        .collect();
    assert!(!client_calls.is_empty(), "{audit:?}");
    assert!(
        client_calls.iter().all(|r| r["decision"] == "allow"),
        "{client_calls:?}"
    );
    assert!(
        audit.iter().any(|r| r["module"] == "edgeAgent"
            && r["route"] == "/modules"
            && r["method"] == "POST"
            && r["decision"] == "allow"),
        "the agent container was attested on the management socket"
    );

    // A module's container removed behind edgesec's back is noticed and reported; the agent
    // (restartPolicy always) has it started again, in a new container.
    let old_client = e.inspect("demo-client", "{{.Id}}").unwrap();
    e.docker_ok(&["rm", "-f", "demo-client"]);
    wait_until(
        "edgesecd to report demo-client's removal",
        || {
            edge.log()
                .lines()
                .any(|l| l.contains("removed outside edgesec") && l.contains("demo-client"))
        },
        || edge.log(),
    );
    wait_until(
        "demo-client in a new container",
        || {
            e.inspect("demo-client", "{{.Id}} {{.State.Running}}")
                .is_some_and(|s| !s.starts_with(&old_client) && s.ends_with("true"))
        },
        || edge.log(),
    );

    // The watchdog re-creates a removed agent container.
    let old_agent = e.inspect("edgeAgent", "{{.Id}}").unwrap();
    e.docker_ok(&["rm", "-f", "edgeAgent"]);
    wait_until(
        "the watchdog to bring the agent back",
        || {
            e.inspect("edgeAgent", "{{.Id}} {{.State.Running}}")
                .is_some_and(|s| !s.starts_with(&old_agent) && s.ends_with("true"))
        },
        || edge.log(),
    );
    wait_until(
        "the new agent container to be attested",
        || {
            edge.audit()
                .iter()
                .filter(|r| r["module"] == "edgeAgent" && r["decision"] == "allow")
                .count()
                > audit
                    .iter()
                    .filter(|r| r["module"] == "edgeAgent" && r["decision"] == "allow")
                    .count()
        },
        || edge.log(),
    );
}

/// A docker module spec running the probe fixture in the busybox image (python3 from the
/// host), with the shared workload socket mounted too; `host` adds to HostConfig.
fn probe_container(name: &str, probe: &Probe, shared: &Path, host: Value) -> String {
    let fixtures = fixture("").display().to_string();
    let fixtures = fixtures.trim_end_matches('/');
    let box_dir = probe.dir.display().to_string();
    let mut host_config = json!({ "Binds": host_binds(&[
        format!("{fixtures}:{fixtures}:ro"),
        format!("{box_dir}:{box_dir}"),
        format!("{}:{SHARED_IN}", shared.display()),
    ]) });
    for (k, v) in host.as_object().unwrap() {
        host_config[k] = v.clone();
    }
    json!({ "name": name, "type": "docker", "imagePullPolicy": "never", "config": {
        "settings": { "image": BUSYBOX, "createOptions": {
            "Cmd": [usr_python(), probe_script(), &probe.dir], "HostConfig": host_config } } } })
    .to_string()
}

fn identity_path(module: &str) -> String {
    format!("/modules/{module}/certificate/identity?{V}")
}

#[test]
fn container_modules_are_attested_by_container_id() {
    let Some(e) = engine() else { return };
    // Names of this test process only: another run on the same engine does not collide.
    let pid = std::process::id();
    let (a_name, b_name) = (&*format!("ctr-a-{pid}"), &*format!("ctr-b-{pid}"));
    let orphan = &*format!("ctr-orphan-{pid}");
    let _cleanup = e.cleanup(&[a_name, b_name, orphan]);
    let agent = Probe::new_box();
    let agent_line = format!(
        "command = \"{}\"\nargs = [\"{}\", \"{}\"]",
        python().display(),
        probe_script().display(),
        agent.dir.display()
    );
    let mut edge = Edge::with_config(&deployment(&[]), |c| {
        c.replace("command = \"edgesec-agent\"", &agent_line) + &moby_section(&e, false)
    });
    agent.wait_ready();
    let mgmt = edge.path("run/mgmt.sock");
    let shared = edge.path("run/workload.sock");
    let (a, b) = (Probe::new_box(), Probe::new_box());
    // Module A asks for privileges the restrictive setting does not allow.
    for (name, probe, host) in [
        (
            a_name,
            &a,
            json!({ "Privileged": true, "CapAdd": ["SYS_ADMIN", "NET_ADMIN"] }),
        ),
        (b_name, &b, json!({})),
    ] {
        let spec = probe_container(name, probe, &shared, host);
        let (code, body) = agent.call(&mgmt, "POST", &format!("/modules?{V}"), Some(&spec));
        assert_eq!(code, 201, "{body}\n{}", edge.log());
        let (code, body) = agent.call(&mgmt, "POST", &format!("/modules/{name}/start?{V}"), None);
        assert_eq!(code, 204, "{body}");
        probe.wait_ready();
    }

    // Each module gets its own certificate on its own socket and on the shared one, and
    // nothing of the other module on either.
    let own = Path::new(OWN);
    assert_eq!(a.call(own, "POST", &identity_path(a_name), None).0, 201);
    assert_eq!(
        a.call(Path::new(SHARED_IN), "POST", &identity_path(a_name), None)
            .0,
        201
    );
    assert_eq!(
        a.call(Path::new(SHARED_IN), "POST", &identity_path(b_name), None)
            .0,
        403
    );
    assert_eq!(a.call(own, "POST", &identity_path(b_name), None).0, 403);
    assert_eq!(b.call(own, "POST", &identity_path(b_name), None).0, 201);

    // A process `docker exec`'d into B's container is B's: B's certificate yes, A's no.
    let call = fixture("call.py").display().to_string();
    let exec = |module: &str| {
        e.docker_ok(&[
            "exec",
            b_name,
            &usr_python(),
            &call,
            SHARED_IN,
            "POST",
            &identity_path(module),
        ])
    };
    assert!(exec(a_name).starts_with("403 "), "{}", exec(a_name));
    assert!(exec(b_name).starts_with("201 "), "{}", exec(b_name));
    let denied: Vec<_> = edge
        .audit()
        .into_iter()
        .filter(|r| {
            r["decision"] == "deny"
                && r["route"] == identity_path(a_name).split('?').next().unwrap()
        })
        .collect();
    assert!(
        denied
            .iter()
            .any(|r| r["module"] == b_name && r["reason"] == "caller is another module"),
        "{denied:?}"
    );

    // The restrictive setting stripped A's privileges: CHOWN is gone inside.
    assert_eq!(
        e.inspect(a_name, "{{.HostConfig.Privileged}}").as_deref(),
        Some("false")
    );
    assert_eq!(
        e.inspect(a_name, "{{.HostConfig.CapAdd}}").as_deref(),
        Some("[]")
    );
    let drop = e.inspect(a_name, "{{.HostConfig.CapDrop}}").unwrap();
    assert!(drop.contains("CHOWN") && drop.contains("SETUID"), "{drop}");
    assert!(
        !e.docker(&["exec", a_name, "/bin/chown", "1", "/tmp"])
            .status
            .success()
    );
    assert!(
        edge.log().contains("running it unprivileged"),
        "the stripping is logged"
    );

    // B's container removed behind edgesec's back: noticed, reported as dead.
    let instance = e
        .inspect(b_name, "{{index .Config.Labels \"io.edgesec.instance\"}}")
        .unwrap();
    e.docker_ok(&["rm", "-f", b_name]);
    wait_until(
        "B reported dead",
        || {
            let (_, body) = edge.mgmt("GET", &format!("/modules/{b_name}?{V}"), None);
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            v["status"]["runtimeStatus"]["status"] == "dead"
                && v["status"]["runtimeStatus"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("removed outside edgesec"))
        },
        || edge.log(),
    );
    assert!(
        edge.log()
            .lines()
            .any(|l| l.contains("removed outside edgesec") && l.contains(b_name))
    );

    // A look-alike made by hand: same name, same labels, same image, B's socket mounted. It
    // gets nothing: its container id is not the one edgesec created.
    let b_sock = edge.path(&format!("run/mnt/{b_name}.sock"));
    let mut run = vec![
        "run".to_owned(),
        "--rm".into(),
        "--name".into(),
        b_name.into(),
        "--network".into(),
        "none".into(),
        "--label".into(),
        format!("io.edgesec.instance={instance}"),
        "--label".into(),
        format!("io.edgesec.module={b_name}"),
        "--label".into(),
        "net.azure-devices.edge.owner=Microsoft.Azure.Devices.Edge.Agent".into(),
        "-v".into(),
        format!("{}:{OWN}", b_sock.display()),
        "-v".into(),
        format!("{}:{}:ro", fixture("").display(), fixture("").display()),
    ];
    for bind in host_binds(&[]) {
        run.push("-v".into());
        run.push(bind);
    }
    run.extend([
        BUSYBOX.to_owned(),
        usr_python(),
        call.clone(),
        OWN.into(),
        "POST".into(),
        identity_path(b_name),
    ]);
    let args: Vec<&str> = run.iter().map(String::as_str).collect();
    let out = e.docker_ok(&args);
    assert!(out.starts_with("403 "), "the look-alike got: {out}");
    assert!(
        edge.audit().iter().any(|r| r["decision"] == "deny"
            && r["reason"] == "not a process of any module"
            && r["socket"] == format!("workload:{b_name}")),
        "the look-alike's call is audited"
    );

    // Bad specs: a failed pull names the image; bad createOptions are refused.
    let missing = "localhost:1/edgesec-test/missing:1";
    let spec = json!({ "name": "ctr-attest-pull", "type": "docker", "config": { "settings": { "image": missing } } });
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/modules?{V}"),
        Some(&spec.to_string()),
    );
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).contains(missing), "{body}");
    // prepareupdate pulls (on-create) and so fails the same way; with "never" it only checks.
    let prep = format!("/modules/ctr-prep/prepareupdate?{V}");
    let mut spec = json!({ "name": "ctr-prep", "type": "docker", "config": { "settings": { "image": missing } } });
    let (code, body) = agent.call(&mgmt, "POST", &prep, Some(&spec.to_string()));
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).contains(missing), "{body}");
    spec["imagePullPolicy"] = json!("never");
    assert_eq!(
        agent.call(&mgmt, "POST", &prep, Some(&spec.to_string())).0,
        204
    );
    let spec = json!({ "name": "ctr-attest-bad", "type": "docker", "imagePullPolicy": "never",
        "config": { "settings": { "image": BUSYBOX, "createOptions": { "HostConfig": { "Privileged": "yes" } } } } });
    let (code, body) = agent.call(
        &mgmt,
        "POST",
        &format!("/modules?{V}"),
        Some(&spec.to_string()),
    );
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).contains("invalid Docker config"), "{body}");

    // A daemon restart re-attaches A's container (same id, no duplicate), and reports a
    // container of this daemon that no module owns.
    let a_id = e.inspect(a_name, "{{.Id}}").unwrap();
    e.docker_ok(&[
        "create",
        "--name",
        orphan,
        "--label",
        &format!("io.edgesec.instance={instance}"),
        "--network",
        "none",
        BUSYBOX,
    ]);
    edge.stop();
    assert_eq!(
        e.inspect(a_name, "{{.State.Running}}").as_deref(),
        Some("false"),
        "stopped with the daemon"
    );
    std::fs::remove_file(a.dir.join("pid")).unwrap();
    edge.start().unwrap();
    a.wait_ready();
    assert_eq!(
        e.inspect(a_name, "{{.Id}}").as_deref(),
        Some(a_id.as_str()),
        "re-attached"
    );
    let same = e.docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.edgesec.module={a_name}"),
    ]);
    assert_eq!(same.lines().count(), 1, "{same}");
    assert_eq!(
        a.call(own, "POST", &identity_path(a_name), None).0,
        201,
        "{}",
        edge.log()
    );
    wait_until(
        "the orphan to be reported",
        || {
            edge.log()
                .lines()
                .any(|l| l.contains("no registered module") && l.contains(orphan))
        },
        || edge.log(),
    );
}
