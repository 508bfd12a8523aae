//! Command line and environment: where the daemon and the deployment are, and who we are.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::agent::AgentConfig;

#[derive(Parser, Debug)]
#[command(
    name = "edgesec-agent",
    version,
    about = "edgesec's default agent: runs the modules of a deployment file through the \
             management API of edgesecd"
)]
pub struct Args {
    /// The management API socket, as unix:///absolute/path.
    #[arg(long, env = "IOTEDGE_MANAGEMENTURI", value_name = "URI")]
    pub management_uri: String,

    /// The deployment file (JSON, see docs/deployment.md), as an absolute path.
    #[arg(long, env = "EDGESEC_DEPLOYMENT", value_name = "PATH")]
    pub deployment: PathBuf,

    /// This agent's own module name; the agent never creates, changes or removes it.
    #[arg(long, env = "IOTEDGE_MODULEID", value_name = "NAME")]
    pub module_id: String,

    /// Time between passes, like 2s, 500ms or 1m (a changed deployment file is acted on
    /// within a second anyway).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
}

impl Args {
    /// Checks what clap cannot and builds the agent's configuration.
    pub fn into_config(self) -> Result<AgentConfig, String> {
        let socket = edgesec_http::parse_unix_uri(&self.management_uri)
            .map_err(|e| format!("--management-uri / IOTEDGE_MANAGEMENTURI: {e}"))?;
        if !self.deployment.is_absolute() {
            return Err(format!(
                "--deployment / EDGESEC_DEPLOYMENT must be an absolute path, not {:?}",
                self.deployment
            ));
        }
        if self.module_id.is_empty() {
            return Err("--module-id / IOTEDGE_MODULEID must not be empty".into());
        }
        Ok(AgentConfig {
            socket,
            deployment: self.deployment,
            agent: self.module_id,
            interval: self.interval,
        })
    }
}

/// Parses `2s`, `500ms`, `1m` or a plain number of seconds; 100 ms to 1 hour.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 2s, 500ms or 1m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("unknown unit in {text:?}; use ms, s or m")),
    };
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) {
        return Err(format!("{text} is out of range (100ms to 60m)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("edgesec-agent").chain(list.iter().copied()))
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "2h", "-1s", "1.5s", "0s", "50ms", "61m"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_give_the_config() {
        let c = args(&[
            "--management-uri",
            "unix:///run/edgesec/mgmt.sock",
            "--deployment",
            "/etc/edgesec/deployment.json",
            "--module-id",
            "edgeAgent",
            "--interval",
            "5s",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/edgesec/mgmt.sock"));
        assert_eq!(c.deployment, PathBuf::from("/etc/edgesec/deployment.json"));
        assert_eq!(c.agent, "edgeAgent");
        assert_eq!(c.interval, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_are_explained() {
        let base = |uri: &'static str, path: &'static str, id: &'static str| {
            args(&[
                "--management-uri",
                uri,
                "--deployment",
                path,
                "--module-id",
                id,
            ])
            .unwrap()
            .into_config()
            .unwrap_err()
        };
        let e = base("http://x/y", "/d.json", "a");
        assert!(
            e.starts_with("--management-uri / IOTEDGE_MANAGEMENTURI: invalid socket URI"),
            "{e}"
        );
        let e = base("unix:///m.sock", "d.json", "a");
        assert!(e.contains("must be an absolute path"), "{e}");
        let e = base("unix:///m.sock", "/d.json", "");
        assert!(e.contains("must not be empty"), "{e}");
    }
}
