//! `config check FILE`: loads the config (and keyd's, when it names one) as edgesecd would,
//! without starting anything.

use std::path::Path;

use edgesecd::config::Config;

use crate::error::{CliError, Result};

pub fn check_file(file: &Path) -> Result<()> {
    let hint = "fix the key named above, then check again (the config format is in the README)";
    let c = Config::load(file).map_err(|e| CliError::config(&e, hint))?;
    if let Some(k) = &c.keyd.start_with_config {
        edgesec_keyd::config::Config::load(k).map_err(|e| CliError::config(&e, hint))?;
    }
    println!("{} is valid.", file.display());
    let p = &c.provisioning;
    for (k, v) in [
        ("hostname", c.hostname.clone()),
        (
            "device",
            format!(
                "{} ({})",
                p.device_id,
                format!("{:?}", p.source).to_lowercase()
            ),
        ),
        ("state_dir", c.state_dir.display().to_string()),
        ("keyd", c.keyd.socket.display().to_string()),
        ("management", c.management.socket.display().to_string()),
        ("workload", c.workload.socket.display().to_string()),
        (
            "agent",
            format!("{} ({})", c.agent.name, c.agent.command.display()),
        ),
        ("edge CA", format!("{} mode", c.pki.edge_ca.mode)),
    ] {
        println!("  {k:<11}{v}");
    }
    Ok(())
}
