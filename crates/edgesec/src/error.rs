//! Errors of the CLI: what went wrong and what to do next.

use std::fmt;

use edgesec_http::ClientError;

/// Exit code for a bad config, as edgesecd uses (`EX_CONFIG`).
pub const EXIT_CONFIG: u8 = edgesec_config::EXIT_CONFIG as u8;

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
    pub code: u8,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
            code: 1,
        }
    }

    pub fn config(e: &edgesec_config::ConfigError, hint: impl Into<String>) -> Self {
        CliError {
            message: e.to_string(),
            hint: Some(hint.into()),
            code: EXIT_CONFIG,
        }
    }

    /// An error from a call to edgesecd's management API, with the usual remedies.
    pub fn mgmt(e: ClientError, socket: &std::path::Path) -> Self {
        let hint = match &e {
            ClientError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                "run as root or as a user allowed on the management socket (management.admin_gid)"
                    .to_string()
            }
            ClientError::Connect { .. } => format!(
                "is edgesecd running? Start it (`edgesecd --config FILE`, or `systemctl start \
                 edgesecd`), or point --host / EDGESEC_MGMT_URI at unix://{}",
                socket.display()
            ),
            ClientError::Api { status, .. } if status.as_u16() == 403 => {
                "run as root or as a user listed in management.admin_uids / admin_gid of the \
                 daemon's config"
                    .to_string()
            }
            ClientError::Api { status, .. } if status.as_u16() == 404 => {
                "`edgesec list` shows the modules; a daemon older than this CLI may lack the route"
                    .to_string()
            }
            _ => "see edgesecd's log (journalctl -u edgesecd) for details".to_string(),
        };
        CliError {
            message: format!("edgesecd: {e}"),
            hint: Some(hint),
            code: 1,
        }
    }

    pub fn io(what: impl fmt::Display, e: std::io::Error, hint: impl Into<String>) -> Self {
        CliError::new(format!("{what}: {e}"), hint)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
