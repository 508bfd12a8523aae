//! Builders for unit tests: deployments and what the daemon reports.

use edgesec_api::mgmt::{ExitStatus, Identity, ModuleConfig, ModuleDetails, RuntimeStatus, Status};
use serde_json::{Value, json};

use crate::deployment::{Deployment, parse};

/// A module as the daemon reports it, with process settings `{"command": name}`.
/// `running`/`stopped` (exit 0)/`failed` (exit 1)/`dead` have run before; use
/// [`never_started`] for a module that has not.
pub fn module(name: &str, status: &str) -> ModuleDetails {
    let exit = match status {
        "stopped" => Some("0"),
        "failed" => Some("1"),
        _ => None,
    };
    ModuleDetails {
        id: "id".into(),
        name: name.into(),
        module_type: "process".into(),
        config: ModuleConfig {
            settings: json!({"command": name, "args": []}),
            env: vec![],
        },
        status: Status {
            start_time: Some("2026-01-01T00:00:00Z".into()),
            exit_status: exit.map(|code| ExitStatus {
                exit_time: "2026-01-01T00:01:00Z".into(),
                status_code: code.into(),
            }),
            runtime_status: RuntimeStatus {
                status: status.into(),
                description: None,
            },
        },
    }
}

/// A module created and not started since.
pub fn never_started(name: &str) -> ModuleDetails {
    let mut m = module(name, "stopped");
    m.status.start_time = None;
    m.status.exit_status = None;
    m
}

/// Sets the reported exit code.
pub fn exited(mut m: ModuleDetails, code: &str) -> ModuleDetails {
    m.status.exit_status = Some(ExitStatus {
        exit_time: "2026-01-01T00:01:00Z".into(),
        status_code: code.into(),
    });
    m
}

pub fn identity(name: &str) -> Identity {
    Identity {
        module_id: name.into(),
        managed_by: "iotedge".into(),
        generation_id: format!("gen-{name}"),
        auth_type: "sas".into(),
    }
}

/// A process module entry whose settings match what [`module`] reports for `name`.
pub fn entry(name: &str, extra: Value) -> (String, Value) {
    let mut e = json!({"type": "process", "settings": {"command": name}});
    if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
        e.extend(extra);
    }
    (name.to_owned(), e)
}

/// A deployment of the given entries (see [`entry`]).
pub fn deployment(entries: Vec<(String, Value)>) -> Deployment {
    let modules: serde_json::Map<String, Value> = entries.into_iter().collect();
    let file = json!({"schemaVersion": "1.0", "modules": modules});
    parse(file.to_string().as_bytes()).expect("test deployment is valid")
}
