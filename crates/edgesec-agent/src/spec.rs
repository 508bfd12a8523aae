//! Whether a module the daemon reports still matches the spec the deployment wants.
//!
//! Only what the agent sets is compared: the type, the settings keys the agent sends for that
//! type, and the environment (as a list sorted by key). Keys the daemon adds to its report
//! (an image hash, say) do not count as a difference, or the agent would update forever.
//! `imagePullPolicy` is not reported by the daemon, so a change of it alone is not seen.

use edgesec_api::mgmt::{EnvVar, ModuleDetails, ModuleSpec};
use serde_json::Value;

/// The settings keys the agent sends for each module type.
fn settings_keys(module_type: &str) -> &'static [&'static str] {
    match module_type {
        "process" => &["command", "args", "workingDir", "user"],
        "docker" => &["image", "createOptions"],
        _ => &[],
    }
}

/// Whether `reported` already is what `desired` describes.
pub fn matches(desired: &ModuleSpec, reported: &ModuleDetails) -> bool {
    desired.module_type == reported.module_type
        && settings_match(
            &desired.module_type,
            &desired.config.settings,
            &reported.config.settings,
        )
        && env_matches(&desired.config.env, &reported.config.env)
}

fn settings_match(module_type: &str, desired: &Value, reported: &Value) -> bool {
    let keys = settings_keys(module_type);
    if keys.is_empty() {
        return desired == reported;
    }
    let (Some(desired), Some(reported)) = (desired.as_object(), reported.as_object()) else {
        return false;
    };
    keys.iter().all(|key| {
        let (d, r) = (desired.get(*key), reported.get(*key));
        d == r || (is_empty_default(d) && is_empty_default(r))
    })
}

/// An absent key, `null` and `[]` all mean "none" (a process with no arguments).
fn is_empty_default(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// `desired` is already sorted by key; the daemon's order does not matter.
fn env_matches(desired: &[EnvVar], reported: &[EnvVar]) -> bool {
    let mut reported: Vec<&EnvVar> = reported.iter().collect();
    reported.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    desired.len() == reported.len() && desired.iter().zip(reported).all(|(d, r)| d == r)
}

#[cfg(test)]
mod tests {
    use edgesec_api::mgmt::{ModuleConfig, RuntimeStatus, Status};
    use serde_json::json;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(k, v)| EnvVar {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn spec(module_type: &str, settings: Value, e: &[(&str, &str)]) -> ModuleSpec {
        ModuleSpec {
            name: "m".into(),
            module_type: module_type.into(),
            image_pull_policy: None,
            config: ModuleConfig {
                settings,
                env: env(e),
            },
        }
    }

    fn reported(module_type: &str, settings: Value, e: &[(&str, &str)]) -> ModuleDetails {
        ModuleDetails {
            id: "id".into(),
            name: "m".into(),
            module_type: module_type.into(),
            config: ModuleConfig {
                settings,
                env: env(e),
            },
            status: Status {
                start_time: None,
                exit_status: None,
                runtime_status: RuntimeStatus {
                    status: "running".into(),
                    description: None,
                },
            },
        }
    }

    #[test]
    fn same_spec_matches() {
        let s = json!({"command": "x", "args": ["a"]});
        assert!(matches(
            &spec("process", s.clone(), &[("A", "1")]),
            &reported("process", s, &[("A", "1")])
        ));
    }

    #[test]
    fn each_difference_is_seen() {
        let s = json!({"command": "x", "args": ["a"]});
        let d = spec("process", s.clone(), &[("A", "1")]);
        assert!(!matches(&d, &reported("docker", s.clone(), &[("A", "1")])));
        assert!(!matches(
            &d,
            &reported(
                "process",
                json!({"command": "y", "args": ["a"]}),
                &[("A", "1")]
            )
        ));
        assert!(!matches(
            &d,
            &reported(
                "process",
                json!({"command": "x", "args": ["b"]}),
                &[("A", "1")]
            )
        ));
        assert!(!matches(
            &d,
            &reported(
                "process",
                json!({"command": "x", "args": ["a"], "user": "u"}),
                &[("A", "1")]
            )
        ));
        assert!(!matches(&d, &reported("process", s.clone(), &[("A", "2")])));
        assert!(!matches(&d, &reported("process", s.clone(), &[])));
        assert!(!matches(
            &d,
            &reported("process", s.clone(), &[("A", "1"), ("B", "2")])
        ));
        assert!(!matches(
            &d,
            &reported("process", json!("x"), &[("A", "1")])
        ));
    }

    #[test]
    fn env_order_and_empty_args_do_not_matter() {
        let d = spec(
            "process",
            json!({"command": "x", "args": []}),
            &[("A", "1"), ("B", "2")],
        );
        let r = reported(
            "process",
            json!({"command": "x"}),
            &[("B", "2"), ("A", "1")],
        );
        assert!(matches(&d, &r));
    }

    #[test]
    fn keys_the_daemon_adds_are_ignored() {
        let d = spec("docker", json!({"image": "nginx:1"}), &[]);
        let r = reported(
            "docker",
            json!({"image": "nginx:1", "imageHash": "sha256:abc"}),
            &[],
        );
        assert!(matches(&d, &r));
        let r = reported(
            "docker",
            json!({"image": "nginx:1", "createOptions": {"Env": []}}),
            &[],
        );
        assert!(!matches(&d, &r));
        let r = reported(
            "process",
            json!({"command": "x", "args": [], "pid": 12}),
            &[],
        );
        assert!(matches(
            &spec("process", json!({"command": "x", "args": []}), &[]),
            &r
        ));
    }
}
