//! The daemon's rules for module names, checked before the agent sends one.

/// Longest module name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Checks a module name: 1 to 256 bytes, no `/`, NUL or other control characters, and not
/// `.` or `..`. The error says which rule was broken.
pub fn check_module_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("must be at most 256 bytes long");
    }
    if name == "." || name == ".." {
        return Err("must not be \".\" or \"..\"");
    }
    if name.contains('/') {
        return Err("must not contain '/'");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain NUL or other control characters");
    }
    Ok(())
}

/// Whether `name` (a module or identity) is the agent itself. IoT Edge names the agent's
/// identity `$edgeAgent` and its module `edgeAgent`, so a leading `$` is ignored on both sides.
pub fn is_agent(name: &str, agent: &str) -> bool {
    name.strip_prefix('$').unwrap_or(name) == agent.strip_prefix('$').unwrap_or(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "a",
            "demo-server",
            "$edgeHub",
            "a.b",
            "..a",
            "é",
            &"x".repeat(256),
        ] {
            assert_eq!(check_module_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(check_module_name(""), Err("must not be empty"));
        assert_eq!(
            check_module_name(&"x".repeat(257)),
            Err("must be at most 256 bytes long")
        );
        // 129 two-byte characters: 258 bytes
        assert!(check_module_name(&"é".repeat(129)).is_err());
        assert!(check_module_name(".").is_err());
        assert!(check_module_name("..").is_err());
        assert_eq!(check_module_name("a/b"), Err("must not contain '/'"));
        for bad in ["a\0b", "a\nb", "tab\t", "\u{7f}", "\u{85}"] {
            assert_eq!(
                check_module_name(bad),
                Err("must not contain NUL or other control characters"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn agent_matches_with_or_without_dollar() {
        assert!(is_agent("edgeAgent", "edgeAgent"));
        assert!(is_agent("$edgeAgent", "edgeAgent"));
        assert!(is_agent("edgeAgent", "$edgeAgent"));
        assert!(!is_agent("edgeHub", "edgeAgent"));
        assert!(!is_agent("edgeagent", "edgeAgent"));
    }
}
