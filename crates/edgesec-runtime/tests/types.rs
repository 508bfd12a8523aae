//! Wire forms of the shared types.

use std::time::{Duration, SystemTime};

use edgesec_runtime::{ExitEvent, LogLine, LogStream, ModuleState, ModuleStatus, ProcessSettings};

#[test]
fn status_is_lowercase() {
    for (s, text) in [
        (ModuleStatus::Running, "running"),
        (ModuleStatus::Stopped, "stopped"),
        (ModuleStatus::Failed, "failed"),
        (ModuleStatus::Dead, "dead"),
        (ModuleStatus::Unknown, "unknown"),
    ] {
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{text}\""));
        assert_eq!(s.to_string(), text);
    }
}

#[test]
fn state_times_are_rfc3339_utc() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let st = ModuleState {
        status: ModuleStatus::Failed,
        exit_code: Some(3),
        signal: None,
        started_at: Some(t),
        finished_at: None,
        pid: None,
        restart_count: 2,
        description: None,
    };
    let v = serde_json::to_value(&st).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["started_at"], "2023-11-14T22:13:20.123000000Z");
    assert!(v["finished_at"].is_null());
    assert!(v.get("signal").is_none());
    let back: ModuleState = serde_json::from_value(v).unwrap();
    assert_eq!(back, st);

    let ev = ExitEvent {
        name: "m".into(),
        status: ModuleStatus::Stopped,
        exit_code: Some(143),
        signal: Some(15),
        time: t,
    };
    let back: ExitEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
    assert_eq!(back, ev);
    let line = LogLine {
        time: t,
        stream: LogStream::Stderr,
        text: "x".into(),
    };
    let v = serde_json::to_value(&line).unwrap();
    assert_eq!(v["stream"], "stderr");
}

#[test]
fn process_settings_are_strict_camel_case() {
    let s: ProcessSettings = serde_json::from_str(
        r#"{"command":"sleep","args":["1"],"workingDir":"/tmp","user":"nobody"}"#,
    )
    .unwrap();
    assert_eq!(s.working_dir.as_deref(), Some(std::path::Path::new("/tmp")));
    let s: ProcessSettings = serde_json::from_str(r#"{"command":"sleep"}"#).unwrap();
    assert!(s.args.is_empty() && s.user.is_none());
    assert!(serde_json::from_str::<ProcessSettings>(r#"{"command":"x","cmd":"y"}"#).is_err());
}
