//! Module names: one rule for the daemon (where a name becomes a cgroup directory and a socket
//! file name), its runtimes and the agent (which checks a deployment before sending it).

/// Longest accepted module name in bytes: IoT Hub's limit for a module id, and short enough
/// for a cgroup directory and a socket file name.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// Accepts 1..=128 bytes with no `/`, no NUL, no control characters, and not `.` or `..`.
/// A leading `$` is allowed (`$edgeAgent`, `$edgeHub`). The error says what is wrong, in words
/// that can go straight into an API answer.
pub fn validate_module_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("module name is empty".into());
    }
    if name.len() > MAX_MODULE_NAME_LEN {
        return Err(format!(
            "module name is {} bytes long, longer than {MAX_MODULE_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("module name may not be {name:?}"));
    }
    if name.contains('/') {
        return Err("module name may not contain '/'".into());
    }
    // char::is_control covers NUL, the C0 and C1 ranges and DEL.
    if name.chars().any(char::is_control) {
        return Err("module name may not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_dollar_names() {
        for ok in [
            "edgeAgent",
            "$edgeAgent",
            "$edgeHub",
            "a",
            "my module.v2",
            "ü",
            "...",
        ] {
            validate_module_name(ok).unwrap();
        }
        validate_module_name(&"x".repeat(128)).unwrap();
        assert!(validate_module_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "a\0b",
            "a\nb",
            "tab\there",
            "del\u{7f}",
        ] {
            assert!(validate_module_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_module_name(&"x".repeat(257)).is_err());
    }
}
