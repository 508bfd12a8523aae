//! Names as the daemon sees them: the module name rule is the daemon's own
//! ([`edgesec_api::name`]), checked before the agent sends a name.

pub use edgesec_api::name::validate_module_name as check_module_name;

/// Whether `name` (a module or identity) is the agent itself. IoT Edge names the agent's
/// identity `$edgeAgent` and its module `edgeAgent`, so a leading `$` is ignored on both sides.
pub fn is_agent(name: &str, agent: &str) -> bool {
    name.strip_prefix('$').unwrap_or(name) == agent.strip_prefix('$').unwrap_or(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_matches_with_or_without_dollar() {
        assert!(is_agent("edgeAgent", "edgeAgent"));
        assert!(is_agent("$edgeAgent", "edgeAgent"));
        assert!(is_agent("edgeAgent", "$edgeAgent"));
        assert!(!is_agent("edgeHub", "edgeAgent"));
        assert!(!is_agent("edgeagent", "edgeAgent"));
    }
}
