//! `plan`: creating, updating, stopping and removing modules.

use std::time::Instant;

use serde_json::json;

use super::*;
use crate::test_support::{deployment, entry, identity, module, never_started};

const AGENT: &str = "edgeAgent";

fn plan_now(d: &Deployment, modules: &[ModuleDetails], ids: &[Identity]) -> Vec<Action> {
    let now = Instant::now();
    let mut book = RestartBook::new();
    book.observe(modules, now);
    plan(d, modules, ids, now, &book, AGENT)
}

fn spec_of(d: &Deployment, name: &str) -> ModuleSpec {
    d.modules[name].spec.clone()
}

fn start_initial(name: &str, order: u32) -> Action {
    Action::Start {
        name: name.into(),
        startup_order: order,
        why: StartReason::Initial,
    }
}

fn id(name: &str) -> Action {
    Action::CreateIdentity { name: name.into() }
}

fn create(d: &Deployment, name: &str) -> Action {
    Action::CreateModule {
        spec: spec_of(d, name),
    }
}

#[test]
fn fresh_deployment_creates_identities_and_modules_and_starts_in_order() {
    let d = deployment(vec![
        entry("web", json!({"startupOrder": 2})),
        entry("db", json!({"startupOrder": 1})),
        entry("zz-last", json!({})),
        entry("api", json!({"startupOrder": 2})),
        entry("paused", json!({"startupOrder": 0, "status": "stopped"})),
    ]);
    let actions = plan_now(&d, &[], &[]);
    assert_eq!(
        actions,
        [
            id("paused"),
            create(&d, "paused"),
            id("db"),
            create(&d, "db"),
            start_initial("db", 1),
            id("api"),
            create(&d, "api"),
            start_initial("api", 2),
            id("web"),
            create(&d, "web"),
            start_initial("web", 2),
            id("zz-last"),
            create(&d, "zz-last"),
            start_initial("zz-last", u32::MAX),
        ]
    );
}

#[test]
fn converged_state_plans_nothing() {
    let d = deployment(vec![
        entry("a", json!({"startupOrder": 1})),
        entry("b", json!({"status": "stopped"})),
        entry("c", json!({"restartPolicy": "never"})),
    ]);
    let modules = [
        module("a", "running"),
        module("b", "stopped"),
        module("c", "running"),
        module(AGENT, "running"),
    ];
    let ids = [
        identity("a"),
        identity("b"),
        identity("c"),
        identity("$edgeAgent"),
    ];
    assert_eq!(plan_now(&d, &modules, &ids), []);
}

#[test]
fn changed_spec_is_an_update_that_starts_only_if_desired_running() {
    let d = deployment(vec![
        entry("a", json!({"env": {"MODE": {"value": "new"}}})),
        entry(
            "b",
            json!({"status": "stopped", "settings": {"command": "b", "args": ["-v"]}}),
        ),
        entry("c", json!({"settings": {"command": "other"}})),
    ]);
    let modules = [
        module("a", "running"),
        module("b", "running"),
        module("c", "failed"),
    ];
    let ids = [identity("a"), identity("b"), identity("c")];
    assert_eq!(
        plan_now(&d, &modules, &ids),
        [
            Action::UpdateModule {
                spec: spec_of(&d, "a"),
                start: true
            },
            Action::UpdateModule {
                spec: spec_of(&d, "b"),
                start: false
            },
            Action::UpdateModule {
                spec: spec_of(&d, "c"),
                start: true
            },
        ]
    );
}

#[test]
fn changed_type_is_an_update() {
    let d = deployment(vec![(
        "a".into(),
        json!({"type": "docker", "settings": {"image": "a:1"}}),
    )]);
    let actions = plan_now(&d, &[module("a", "running")], &[identity("a")]);
    assert_eq!(
        actions,
        [Action::UpdateModule {
            spec: spec_of(&d, "a"),
            start: true
        }]
    );
}

#[test]
fn env_order_in_the_daemon_report_is_not_a_change() {
    let d = deployment(vec![entry(
        "a",
        json!({"env": {"B": {"value": "2"}, "A": {"value": "1"}, "C": {"value": "3"}}}),
    )]);
    let sent: Vec<_> = d.modules["a"]
        .spec
        .config
        .env
        .iter()
        .map(|e| e.key.clone())
        .collect();
    assert_eq!(sent, ["A", "B", "C"]);
    let mut m = module("a", "running");
    m.config.env = d.modules["a"].spec.config.env.clone();
    m.config.env.reverse();
    assert_eq!(plan_now(&d, &[m], &[identity("a")]), []);
}

#[test]
fn unlisted_modules_and_identities_are_removed() {
    let d = deployment(vec![entry("keep", json!({}))]);
    let modules = [
        module("keep", "running"),
        module("old", "running"),
        module("no-id", "failed"),
    ];
    let ids = [identity("keep"), identity("old"), identity("orphan")];
    assert_eq!(
        plan_now(&d, &modules, &ids),
        [
            Action::RemoveModule {
                name: "no-id".into()
            },
            Action::RemoveModule { name: "old".into() },
            Action::RemoveIdentity { name: "old".into() },
            Action::RemoveIdentity {
                name: "orphan".into()
            },
        ]
    );
}

#[test]
fn an_empty_deployment_removes_everything_but_the_agent() {
    let d = deployment(vec![]);
    let modules = [module(AGENT, "running"), module("a", "running")];
    let ids = [identity("$edgeAgent"), identity("a")];
    assert_eq!(
        plan_now(&d, &modules, &ids),
        [
            Action::RemoveModule { name: "a".into() },
            Action::RemoveIdentity { name: "a".into() },
        ]
    );
}

#[test]
fn the_agent_never_touches_itself() {
    // listed, with a different spec and stopped: still left alone
    let d = deployment(vec![entry(
        AGENT,
        json!({"settings": {"command": "x"}, "status": "stopped"}),
    )]);
    let own = [module(AGENT, "running")];
    assert_eq!(
        plan_now(&d, &own, &[]),
        [Action::Leave {
            name: AGENT.into(),
            why: LeaveReason::IsAgent
        }]
    );
    // not listed: not removed, nor its identity, with or without `$`
    let empty = deployment(vec![]);
    for agent_name in ["edgeAgent", "$edgeAgent"] {
        let now = Instant::now();
        let ids = [identity("$edgeAgent"), identity("edgeAgent")];
        let actions = plan(&empty, &own, &ids, now, &RestartBook::new(), agent_name);
        assert_eq!(actions, [], "{agent_name}");
    }
}

#[test]
fn desired_stopped_stops_a_running_module_before_any_start() {
    let d = deployment(vec![
        entry("first", json!({"startupOrder": 0})),
        entry("halt", json!({"startupOrder": 5, "status": "stopped"})),
        entry("down", json!({"status": "stopped"})),
        entry("dead", json!({"status": "stopped"})),
    ]);
    let modules = [
        module("halt", "running"),
        module("down", "failed"),
        module("dead", "dead"),
    ];
    let ids = [
        identity("first"),
        identity("halt"),
        identity("down"),
        identity("dead"),
    ];
    assert_eq!(
        plan_now(&d, &modules, &ids),
        [
            Action::Stop {
                name: "halt".into()
            },
            create(&d, "first"),
            start_initial("first", 0),
        ]
    );
}

#[test]
fn removals_come_first() {
    let d = deployment(vec![entry("new", json!({"startupOrder": 0}))]);
    let modules = [module("zzz-old", "running")];
    let actions = plan_now(&d, &modules, &[]);
    assert_eq!(
        actions,
        [
            Action::RemoveModule {
                name: "zzz-old".into()
            },
            id("new"),
            create(&d, "new"),
            start_initial("new", 0),
        ]
    );
}

#[test]
fn a_missing_identity_alone_is_created() {
    let d = deployment(vec![entry("a", json!({}))]);
    assert_eq!(plan_now(&d, &[module("a", "running")], &[]), [id("a")]);
}

#[test]
fn a_module_never_started_is_started_whatever_its_policy() {
    let d = deployment(vec![
        entry("a", json!({"restartPolicy": "never", "startupOrder": 3})),
        entry(
            "b",
            json!({"restartPolicy": "on-failure", "startupOrder": 4}),
        ),
    ]);
    let modules = [never_started("a"), never_started("b")];
    let ids = [identity("a"), identity("b")];
    assert_eq!(
        plan_now(&d, &modules, &ids),
        [start_initial("a", 3), start_initial("b", 4)]
    );
}

#[test]
fn a_module_the_agent_stopped_resumes_without_policy_or_backoff() {
    let d = deployment(vec![entry(
        "a",
        json!({"restartPolicy": "never", "startupOrder": 1}),
    )]);
    let modules = [module("a", "stopped")];
    let now = Instant::now();
    let mut book = RestartBook::new();
    book.record_stop("a");
    book.observe(&modules, now);
    assert_eq!(
        plan(&d, &modules, &[identity("a")], now, &book, AGENT),
        [Action::Start {
            name: "a".into(),
            startup_order: 1,
            why: StartReason::Resume
        }]
    );
}

#[test]
fn unknown_status_is_left_alone() {
    let d = deployment(vec![entry("a", json!({}))]);
    assert_eq!(
        plan_now(&d, &[module("a", "unknown")], &[identity("a")]),
        [Action::Leave {
            name: "a".into(),
            why: LeaveReason::UnknownStatus("unknown".into())
        }]
    );
}

#[test]
fn actions_name_their_module() {
    let d = deployment(vec![entry("a", json!({}))]);
    for action in plan_now(&d, &[], &[]) {
        assert_eq!(action.module(), "a");
        assert!(action.is_call());
    }
    let leave = Action::Leave {
        name: "x".into(),
        why: LeaveReason::IsAgent,
    };
    assert!(!leave.is_call());
}
