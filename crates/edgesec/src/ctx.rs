//! Where the CLI finds things: the daemon's config (`--config`, `EDGESEC_CONFIG`), and the
//! management socket (`--host`, `EDGESEC_MGMT_URI`, else the config's).

use std::path::PathBuf;

use edgesec_api::mgmt_client::MgmtClient;
use edgesec_config::ConfigError;
use edgesecd::config::Config;

use crate::error::{CliError, Result};

pub const DEFAULT_CONFIG: &str = "/etc/edgesec/config.toml";

pub struct Ctx {
    pub config_path: PathBuf,
    /// The daemon's config, or why it could not be loaded.
    pub config: std::result::Result<Config, ConfigError>,
    host: Option<String>,
}

impl Ctx {
    pub fn new(config_path: PathBuf, host: Option<String>) -> Ctx {
        let config = Config::load(&config_path);
        Ctx {
            config_path,
            config,
            host,
        }
    }

    /// The loaded config, or an error that says how to point at one.
    pub fn config(&self) -> Result<&Config> {
        self.config.as_ref().map_err(|e| {
            CliError::config(
                e,
                format!(
                    "fix the config, or pass --config FILE (or set EDGESEC_CONFIG); `edgesec config \
                     check {}` explains what is wrong",
                    self.config_path.display()
                ),
            )
        })
    }

    /// The management socket: `--host`/`EDGESEC_MGMT_URI`, else the config's.
    pub fn mgmt_socket(&self) -> Result<PathBuf> {
        if let Some(h) = &self.host {
            return edgesec_http::parse_unix_uri(h).map_err(|e| {
                CliError::new(
                    format!("--host: {e}"),
                    "give the management socket as unix:///run/edgesec/mgmt.sock",
                )
            });
        }
        match &self.config {
            Ok(c) => Ok(c.management.socket.clone()),
            Err(e) => Err(CliError {
                hint: Some(format!(
                    "pass --host unix:///path/to/mgmt.sock (or set EDGESEC_MGMT_URI), or --config \
                     with the daemon's config; `edgesec config check {}` explains the config error",
                    self.config_path.display()
                )),
                ..CliError::config(e, "")
            }),
        }
    }

    pub fn mgmt(&self) -> Result<(MgmtClient, PathBuf)> {
        let s = self.mgmt_socket()?;
        Ok((MgmtClient::new(&s), s))
    }
}
