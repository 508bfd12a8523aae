//! The real `edgesec-agent` binary against a stand-in for edgesecd (see `common/stand_in.rs`;
//! the daemon does not exist yet, so end-to-end tests against it come later).

mod common;

use std::process::Command;

use common::stand_in::State;
use common::{Setup, deployment};
use serde_json::json;

const AGENT: &str = "edgeAgent";

fn process(command: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({"type": "process", "settings": {"command": command}});
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m
}

/// The agent's own module and identity, plus leftovers the deployment does not list.
fn initial_state() -> State {
    let mut s = State::default();
    s.add_running(AGENT, "edgesec-agent");
    s.add_identity("$edgeAgent");
    s.add_running("old", "old-server");
    s.add_identity("old");
    s.add_identity("orphan");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_follows_file_edits_and_exits_on_sigterm() {
    let first = deployment(json!({
        "web": process("web-server", json!({"startupOrder": 2, "env": {"PORT": {"value": "8443"}}})),
        "db": process("db-server", json!({"startupOrder": 1})),
        "batch": process("batch-job", json!({"status": "stopped"})),
    }));
    let mut t = Setup::new(initial_state(), Some(&first));
    t.spawn_agent(AGENT);

    t.wait_until("the first deployment is in place", |s| {
        s.status("db") == Some("running")
            && s.status("web") == Some("running")
            && s.status("batch") == Some("stopped")
            && !s.modules.contains_key("old")
            && s.identities.keys().collect::<Vec<_>>() == ["$edgeAgent", "batch", "db", "web"]
    })
    .await;
    {
        let s = t.daemon.state();
        assert_eq!(s.status(AGENT), Some("running"));
        assert!(
            s.calls.iter().all(|c| !c.contains("edgeAgent")),
            "the agent touched itself: {:?}",
            s.calls
        );
        let db = s.position("POST /modules/db/start").unwrap();
        let web = s.position("POST /modules/web/start").unwrap();
        assert!(db < web, "startupOrder not followed: {:?}", s.calls);
        let old = s.position("DELETE /modules/old").unwrap();
        assert!(old < s.position("DELETE /identities/old").unwrap());
        assert!(old < db, "removals come first: {:?}", s.calls);
        assert_eq!(s.count("DELETE /identities/orphan"), 1);
        assert_eq!(s.count("POST /modules/batch/start"), 0);
        let env = &s.modules["web"].config.env;
        assert_eq!(
            (env[0].key.as_str(), env[0].value.as_str()),
            ("PORT", "8443")
        );
    }
    let log = t.log();
    assert!(log.contains("created module db (process)"), "{log}");
    assert!(log.contains("starting web (startupOrder 2)"), "{log}");

    // Edit: web gets arguments, batch goes, cache comes first.
    t.write_deployment(&deployment(json!({
        "web": process("web-server", json!({"startupOrder": 2, "settings": {"command": "web-server", "args": ["-v"]}})),
        "db": process("db-server", json!({"startupOrder": 1})),
        "cache": process("cache-server", json!({"startupOrder": 0})),
    })));
    t.wait_until("the edited deployment is in place", |s| {
        s.modules
            .get("web")
            .is_some_and(|m| m.config.settings["args"] == json!(["-v"]))
            && s.status("web") == Some("running")
            && s.status("cache") == Some("running")
            && !s.modules.contains_key("batch")
            && !s.identities.contains_key("batch")
    })
    .await;
    {
        let s = t.daemon.state();
        assert_eq!(s.count("PUT /modules/web start=true"), 1, "{:?}", s.calls);
        assert_eq!(s.count("POST /modules/db/start"), 1, "db was left alone");
    }

    // A broken file changes nothing: the last valid deployment stays in force.
    t.write_deployment(r#"{"schemaVersion": "1.0", "modules": {"web": {"type": "vm"}}}"#);
    t.wait_for_log("invalid deployment file").await;
    let calls_before = t.daemon.state().calls.len();
    t.wait_passes(3).await;
    assert_eq!(t.daemon.state().calls.len(), calls_before);
    assert!(
        t.log()
            .contains("at modules.web.type: unknown variant `vm`"),
        "{}",
        t.log()
    );

    let status = t.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", t.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_by_policy() {
    let file = deployment(json!({
        "keeps-going": process("a", json!({"restartPolicy": "always"})),
        "one-shot": process("b", json!({"restartPolicy": "never"})),
        "clean-exit": process("c", json!({"restartPolicy": "on-failure"})),
    }));
    let mut t = Setup::new(State::default(), Some(&file));
    t.spawn_agent(AGENT);
    t.wait_until("all running", |s| {
        ["keeps-going", "one-shot", "clean-exit"]
            .iter()
            .all(|m| s.status(m) == Some("running"))
    })
    .await;

    t.daemon.fail("keeps-going", 3);
    t.daemon.fail("one-shot", 3);
    t.daemon.fail("clean-exit", 0);
    t.wait_until("keeps-going restarted", |s| {
        s.count("POST /modules/keeps-going/start") == 2
            && s.status("keeps-going") == Some("running")
    })
    .await;
    t.wait_for_log("keeps-going failed (exit 3); restarting in 1s (policy always)")
        .await;
    t.wait_for_log("one-shot failed (exit 3); not restarting it (policy never)")
        .await;
    t.wait_for_log("clean-exit stopped (exit 0); not restarting it (policy on-failure)")
        .await;
    t.wait_passes(2).await;
    {
        let s = t.daemon.state();
        assert_eq!(s.status("one-shot"), Some("failed"));
        assert_eq!(s.status("clean-exit"), Some("stopped"));
        assert_eq!(s.count("POST /modules/one-shot/start"), 1);
    }
    // said once, not once per pass
    assert_eq!(
        t.log().matches("not restarting it (policy never)").count(),
        1,
        "{}",
        t.log()
    );

    assert_eq!(t.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_daemon_is_reported_and_a_missing_file_means_no_modules() {
    let mut t = Setup::new(initial_state(), None);
    // refuses every change, as the daemon does for a process that is not the agent
    t.spawn_agent_with(AGENT, false);
    t.wait_for_log("does not exist; running no modules").await;
    t.wait_for_log(
        "cannot remove module old: the daemon does not accept this process as the agent",
    )
    .await;
    assert_eq!(t.terminate().await.code(), Some(0));
}

#[test]
fn missing_settings_are_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_edgesec-agent"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--management-uri"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_edgesec-agent"))
        .env_clear()
        .env("IOTEDGE_MANAGEMENTURI", "tcp://127.0.0.1:1")
        .env("EDGESEC_DEPLOYMENT", "/x.json")
        .env("IOTEDGE_MODULEID", AGENT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IOTEDGE_MANAGEMENTURI: invalid socket URI"),
        "{err}"
    );
}
