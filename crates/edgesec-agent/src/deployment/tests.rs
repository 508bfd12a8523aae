//! Validation of deployment files: what is accepted, what it becomes, and how errors read.

use serde_json::json;

use super::*;

fn parse_json(v: serde_json::Value) -> Result<Deployment, DeploymentError> {
    parse(v.to_string().as_bytes())
}

fn error_of(v: serde_json::Value) -> DeploymentError {
    parse_json(v).expect_err("must be refused")
}

fn with_module(module: serde_json::Value) -> serde_json::Value {
    json!({"schemaVersion": "1.0", "modules": {"m": module}})
}

fn process() -> serde_json::Value {
    json!({"type": "process", "settings": {"command": "edgesec-demo"}})
}

#[test]
fn the_documented_example_is_accepted() {
    let d = parse_json(json!({
        "schemaVersion": "1.0",
        "modules": {
            "demo-server": {
                "type": "process",
                "status": "running",
                "restartPolicy": "always",
                "startupOrder": 1,
                "settings": { "command": "edgesec-demo", "args": ["server", "--port", "8443"] },
                "env": { "DEMO_NAME": { "value": "server" } }
            }
        }
    }))
    .unwrap();
    let m = &d.modules["demo-server"];
    assert_eq!(m.status, DesiredStatus::Running);
    assert_eq!(m.restart_policy, RestartPolicy::Always);
    assert_eq!(m.startup_order, 1);
    assert_eq!(m.spec.name, "demo-server");
    assert_eq!(m.spec.module_type, "process");
    assert_eq!(m.spec.image_pull_policy, None);
    assert_eq!(
        m.spec.config.settings,
        json!({"command": "edgesec-demo", "args": ["server", "--port", "8443"]})
    );
    assert_eq!(m.spec.config.env.len(), 1);
    assert_eq!(m.spec.config.env[0].key, "DEMO_NAME");
    assert_eq!(m.spec.config.env[0].value, "server");
}

#[test]
fn the_example_in_the_docs_is_valid() {
    let doc = include_str!("../../../../docs/deployment.md");
    let start = doc.find("```json\n").expect("a json block") + "```json\n".len();
    let end = start + doc[start..].find("```").expect("end of the block");
    let d = parse(&doc.as_bytes()[start..end]).unwrap();
    let names: Vec<_> = d.in_start_order().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["demo-server", "demo-client", "maintenance", "web"]);
    assert_eq!(
        d.modules["web"].spec.image_pull_policy.as_deref(),
        Some("on-create")
    );
}

#[test]
fn defaults_apply() {
    let d = parse_json(with_module(process())).unwrap();
    let m = &d.modules["m"];
    assert_eq!(m.status, DesiredStatus::Running);
    assert_eq!(m.restart_policy, RestartPolicy::Always);
    assert_eq!(m.startup_order, DEFAULT_STARTUP_ORDER);
    // settings are normalized: `args` is always present for a process module
    assert_eq!(
        m.spec.config.settings,
        json!({"command": "edgesec-demo", "args": []})
    );
    assert!(m.spec.config.env.is_empty());
    // a file without modules is an empty deployment
    assert!(
        parse(br#"{"schemaVersion":"1.0"}"#)
            .unwrap()
            .modules
            .is_empty()
    );
    assert!(
        parse(br#"{"schemaVersion":"1.0","modules":{}}"#)
            .unwrap()
            .modules
            .is_empty()
    );
}

#[test]
fn docker_settings_and_pull_policy_pass_through() {
    let d = parse_json(with_module(json!({
        "type": "docker",
        "imagePullPolicy": "On-Create",
        "restartPolicy": "on-failure",
        "status": "stopped",
        "settings": {"image": "nginx:1", "createOptions": {"HostConfig": {"Privileged": false}}}
    })))
    .unwrap();
    let m = &d.modules["m"];
    assert_eq!(m.spec.module_type, "docker");
    assert_eq!(m.spec.image_pull_policy.as_deref(), Some("On-Create"));
    assert_eq!(m.status, DesiredStatus::Stopped);
    assert_eq!(m.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(
        m.spec.config.settings,
        json!({"image": "nginx:1", "createOptions": {"HostConfig": {"Privileged": false}}})
    );
}

#[test]
fn env_is_sorted_by_key_whatever_the_file_order() {
    let a = parse(
        br#"{"schemaVersion":"1.0","modules":{"m":{"type":"process","settings":{"command":"x"},
        "env":{"ZED":{"value":"1"},"ALPHA":{"value":"2"},"MID":{"value":"3"}}}}}"#,
    )
    .unwrap();
    let b = parse(
        br#"{"schemaVersion":"1.0","modules":{"m":{"type":"process","settings":{"command":"x"},
        "env":{"MID":{"value":"3"},"ZED":{"value":"1"},"ALPHA":{"value":"2"}}}}}"#,
    )
    .unwrap();
    let keys: Vec<_> = a.modules["m"]
        .spec
        .config
        .env
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(keys, ["ALPHA", "MID", "ZED"]);
    assert_eq!(a, b);
}

#[test]
fn start_order_is_by_order_then_name() {
    let d = parse_json(json!({"schemaVersion": "1.0", "modules": {
        "z": {"type": "process", "startupOrder": 1, "settings": {"command": "x"}},
        "b": {"type": "process", "settings": {"command": "x"}},
        "a": {"type": "process", "settings": {"command": "x"}},
        "y": {"type": "process", "startupOrder": 1, "settings": {"command": "x"}},
        "c": {"type": "process", "startupOrder": 0, "settings": {"command": "x"}},
    }}))
    .unwrap();
    let names: Vec<_> = d.in_start_order().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["c", "y", "z", "a", "b"]);
}

#[test]
fn errors_name_the_json_path() {
    let cases = [
        (
            with_module(json!({"type": "vm", "settings": {}})),
            "modules.m.type",
            "unknown variant",
        ),
        (
            with_module(json!({"type": "process", "settings": {"command": "x"}, "restart": 1})),
            "modules.m.restart",
            "unknown field `restart`",
        ),
        (
            with_module(
                json!({"type": "process", "restartPolicy": "sometimes", "settings": {"command": "x"}}),
            ),
            "modules.m.restartPolicy",
            "unknown variant `sometimes`",
        ),
        (
            with_module(
                json!({"type": "process", "status": "paused", "settings": {"command": "x"}}),
            ),
            "modules.m.status",
            "unknown variant `paused`",
        ),
        (
            with_module(
                json!({"type": "process", "startupOrder": -1, "settings": {"command": "x"}}),
            ),
            "modules.m.startupOrder",
            "invalid value",
        ),
        (
            with_module(
                json!({"type": "process", "startupOrder": 4294967296u64, "settings": {"command": "x"}}),
            ),
            "modules.m.startupOrder",
            "invalid value",
        ),
        (
            with_module(json!({"type": "process", "settings": {"command": "x", "args": ["a", 2]}})),
            "modules.m.settings.args[1]",
            "invalid type: integer `2`, expected a string",
        ),
        (
            with_module(json!({"type": "process", "settings": {"command": "x", "image": "y"}})),
            "modules.m.settings.image",
            "unknown field `image`",
        ),
        (
            with_module(json!({"type": "process", "settings": {"args": []}})),
            "modules.m.settings",
            "missing field `command`",
        ),
        (
            with_module(json!({"type": "process", "settings": {"command": ""}})),
            "modules.m.settings.command",
            "must not be empty",
        ),
        (
            with_module(json!({"type": "process", "settings": "edgesec-demo"})),
            "modules.m.settings",
            "invalid type: string",
        ),
        (
            with_module(json!({"type": "process"})),
            "modules.m",
            "missing field `settings`",
        ),
        (
            with_module(
                json!({"type": "docker", "settings": {"image": "x", "createOptions": "{}"}}),
            ),
            "modules.m.settings.createOptions",
            "invalid type: string",
        ),
        (
            with_module(json!({"type": "docker", "settings": {"image": ""}})),
            "modules.m.settings.image",
            "must not be empty",
        ),
        (
            with_module(
                json!({"type": "docker", "imagePullPolicy": "always", "settings": {"image": "x"}}),
            ),
            "modules.m.imagePullPolicy",
            "unknown value \"always\"",
        ),
        (
            with_module(
                json!({"type": "process", "settings": {"command": "x"}, "env": {"A": "b"}}),
            ),
            "modules.m.env.A",
            "invalid type: string",
        ),
        (
            with_module(
                json!({"type": "process", "settings": {"command": "x"}, "env": {"A": {"value": 1}}}),
            ),
            "modules.m.env.A.value",
            "invalid type: integer",
        ),
        (
            with_module(
                json!({"type": "process", "settings": {"command": "x"}, "env": {"A=B": {"value": "1"}}}),
            ),
            "modules.m.env",
            "invalid variable name \"A=B\": must not contain '='",
        ),
        (json!({"modules": {}}), "", "missing field `schemaVersion`"),
        (
            json!({"schemaVersion": "2.0", "modules": {"m": {"bogus": 1}}}),
            "schemaVersion",
            "unsupported schema version \"2.0\"",
        ),
        (
            json!({"schemaVersion": 1.0}),
            "schemaVersion",
            "invalid type: floating point",
        ),
        (
            json!({"schemaVersion": "1.0", "extra": true}),
            "extra",
            "unknown field `extra`",
        ),
        (
            json!({"schemaVersion": "1.0", "modules": []}),
            "modules",
            "expected an object",
        ),
        (json!([]), "", "invalid type: sequence, expected an object"),
        (
            json!(["1.0", {}]),
            "",
            "invalid type: sequence, expected an object",
        ),
        (
            json!({"schemaVersion": "1.0", "modules": {"m": ["process", "running"]}}),
            "modules.m",
            "invalid type: sequence, expected an object",
        ),
        (
            with_module(
                json!({"type": "process", "settings": {"command": "x"}, "env": {"A": ["1"]}}),
            ),
            "modules.m.env.A",
            "invalid type: sequence, expected an object",
        ),
    ];
    let mut wrong = Vec::new();
    for (file, path, message) in cases {
        let e = error_of(file.clone());
        if e.path != path || !e.message.contains(message) {
            wrong.push(format!(
                "{file}\n  expected at {path}: ..{message}..\n  got {e}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn bad_module_names_are_refused() {
    for (name, why) in [
        ("a/b", "may not contain '/'"),
        ("..", "may not be"),
        ("", "module name is empty"),
        ("a\nb", "control characters"),
    ] {
        let e = error_of(json!({"schemaVersion": "1.0", "modules": {name: process()}}));
        assert_eq!(e.path, "modules");
        assert!(e.message.starts_with("invalid module name"), "{e}");
        assert!(e.message.contains(why), "{e}");
    }
    let long = "x".repeat(129);
    let e = error_of(json!({"schemaVersion": "1.0", "modules": {long: process()}}));
    assert!(e.message.contains("longer than 128"), "{e}");
}

#[test]
fn control_characters_in_paths_are_escaped() {
    let e = error_of(json!({"schemaVersion": "1.0", "modules": {"a\nb": {"type": "x"}}}));
    assert_eq!(e.path, "modules.a\\nb.type");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn syntax_errors_and_duplicates_are_refused() {
    let e = parse(b"{\"schemaVersion\": \"1.0\", \"modules\": {").unwrap_err();
    assert!(e.message.contains("EOF while parsing"), "{e}");
    let e = parse(br#"{"schemaVersion":"1.0"} trailing"#).unwrap_err();
    assert!(e.message.contains("trailing characters"), "{e}");
    let dup = br#"{"schemaVersion":"1.0","modules":{
        "m":{"type":"process","settings":{"command":"x"}},
        "m":{"type":"process","settings":{"command":"y"}}}}"#;
    let e = parse(dup).unwrap_err();
    assert_eq!(e.path, "modules");
    assert!(e.message.contains("duplicate key \"m\""), "{e}");
    let dup_env = br#"{"schemaVersion":"1.0","modules":{"m":{"type":"process",
        "settings":{"command":"x"},"env":{"A":{"value":"1"},"A":{"value":"2"}}}}}"#;
    let e = parse(dup_env).unwrap_err();
    assert_eq!(e.path, "modules.m.env");
}

#[test]
fn one_bad_module_refuses_the_whole_file() {
    let e = error_of(json!({"schemaVersion": "1.0", "modules": {
        "good": process(),
        "bad": {"type": "process", "settings": {"command": ""}},
    }}));
    assert_eq!(e.path, "modules.bad.settings.command");
}

#[test]
fn load_reports_missing_and_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deployment.json");
    assert!(matches!(load(&path), Err(LoadError::Missing)));
    std::fs::write(&path, b"{").unwrap();
    assert!(matches!(load(&path), Err(LoadError::Invalid(_))));
    std::fs::write(&path, with_module(process()).to_string()).unwrap();
    assert_eq!(load(&path).unwrap().modules.len(), 1);
    std::fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(matches!(load(&path), Err(LoadError::TooLarge)));
    assert!(matches!(load(dir.path()), Err(LoadError::Io(_))));
}
