//! What a module's reported status means to the agent.

use std::fmt;

use edgesec_api::mgmt::ModuleDetails;

/// A module's runtime state as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Running,
    Down(Down),
    /// `unknown`, or a status this agent does not know: it is left alone.
    Unknown(String),
}

/// A module that is not running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    pub kind: DownKind,
    /// `exitStatus.statusCode`, when the daemon reports one.
    pub exit_code: Option<String>,
    /// Neither a start time nor an exit status: it has not run since it was created (or since
    /// the daemon started).
    pub never_started: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownKind {
    /// Exited with status 0, or stopped.
    Stopped,
    /// Exited with a non-zero status.
    Failed,
    /// Could not be run at all.
    Dead,
}

impl Down {
    /// Failed or dead: what `on-failure` restarts.
    pub fn is_failure(&self) -> bool {
        matches!(self.kind, DownKind::Failed | DownKind::Dead)
    }
}

impl fmt::Display for Down {
    /// `failed (exit 3)`, `stopped (exit 0)`, `dead`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            DownKind::Stopped => "stopped",
            DownKind::Failed => "failed",
            DownKind::Dead => "dead",
        })?;
        if let Some(code) = &self.exit_code {
            write!(f, " (exit {code})")?;
        }
        Ok(())
    }
}

/// Reads the status of a reported module (status words compared case-insensitively).
pub fn observe(module: &ModuleDetails) -> Observed {
    let status = &module.status;
    let word = status.runtime_status.status.to_ascii_lowercase();
    let kind = match word.as_str() {
        "running" => return Observed::Running,
        "stopped" => DownKind::Stopped,
        "failed" => DownKind::Failed,
        "dead" => DownKind::Dead,
        _ => return Observed::Unknown(status.runtime_status.status.clone()),
    };
    Observed::Down(Down {
        kind,
        exit_code: status.exit_status.as_ref().map(|e| e.status_code.clone()),
        never_started: status.start_time.is_none() && status.exit_status.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use edgesec_api::mgmt::{ExitStatus, ModuleConfig, RuntimeStatus, Status};

    use super::*;

    fn module(status: &str, start: Option<&str>, exit: Option<&str>) -> ModuleDetails {
        ModuleDetails {
            id: "id".into(),
            name: "m".into(),
            module_type: "process".into(),
            config: ModuleConfig::default(),
            status: Status {
                start_time: start.map(Into::into),
                exit_status: exit.map(|c| ExitStatus {
                    exit_time: "2026-01-01T00:00:00Z".into(),
                    status_code: c.into(),
                }),
                runtime_status: RuntimeStatus {
                    status: status.into(),
                    description: None,
                },
            },
        }
    }

    #[test]
    fn reads_each_status() {
        assert_eq!(
            observe(&module("running", Some("t"), None)),
            Observed::Running
        );
        assert_eq!(observe(&module("Running", None, None)), Observed::Running);
        let down = |kind, code: Option<&str>, never| {
            Observed::Down(Down {
                kind,
                exit_code: code.map(Into::into),
                never_started: never,
            })
        };
        assert_eq!(
            observe(&module("stopped", None, None)),
            down(DownKind::Stopped, None, true)
        );
        assert_eq!(
            observe(&module("failed", Some("t"), Some("3"))),
            down(DownKind::Failed, Some("3"), false)
        );
        assert_eq!(
            observe(&module("dead", Some("t"), None)),
            down(DownKind::Dead, None, false)
        );
        assert_eq!(
            observe(&module("unknown", None, None)),
            Observed::Unknown("unknown".into())
        );
        assert_eq!(
            observe(&module("paused", None, None)),
            Observed::Unknown("paused".into())
        );
    }

    #[test]
    fn describes_itself() {
        let Observed::Down(d) = observe(&module("failed", Some("t"), Some("3"))) else {
            panic!()
        };
        assert_eq!(d.to_string(), "failed (exit 3)");
        assert!(d.is_failure());
        let Observed::Down(d) = observe(&module("stopped", Some("t"), Some("0"))) else {
            panic!()
        };
        assert_eq!(d.to_string(), "stopped (exit 0)");
        assert!(!d.is_failure());
        let Observed::Down(d) = observe(&module("dead", None, None)) else {
            panic!()
        };
        assert_eq!(d.to_string(), "dead");
        assert!(d.is_failure());
    }
}
