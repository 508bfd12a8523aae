//! The deployment file: what modules should exist and how they should run.
//!
//! The format is described in `docs/deployment.md`. [`parse`] validates a whole file before
//! anything acts on it; a file that fails validation is never partly applied.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use edgesec_api::mgmt::ModuleSpec;
use serde::Deserialize;

pub use parse::parse;

/// The schema versions this agent reads.
pub const SCHEMA_VERSIONS: &[&str] = &["1.0"];

/// `startupOrder` of a module that does not set one: it starts after all that do.
pub const DEFAULT_STARTUP_ORDER: u32 = u32::MAX;

/// A deployment file larger than this is refused (a real one is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A validated deployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deployment {
    /// By module name.
    pub modules: BTreeMap<String, DesiredModule>,
}

/// One module of a validated deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredModule {
    /// What is sent to the daemon on create and update: settings normalized, env sorted by key.
    pub spec: ModuleSpec,
    pub status: DesiredStatus,
    pub restart_policy: RestartPolicy,
    pub startup_order: u32,
}

impl Deployment {
    /// The modules in the order they are started: by `startupOrder`, then by name.
    pub fn in_start_order(&self) -> Vec<(&str, &DesiredModule)> {
        let mut all: Vec<_> = self.modules.iter().map(|(n, m)| (n.as_str(), m)).collect();
        all.sort_by(|a, b| (a.1.startup_order, a.0).cmp(&(b.1.startup_order, b.0)));
        all
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleType {
    Process,
    Docker,
}

impl ModuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleType::Process => "process",
            ModuleType::Docker => "docker",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredStatus {
    #[default]
    Running,
    Stopped,
}

/// What to do when a module that should run is not running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart whenever it is down (exited, failed or dead).
    #[default]
    Always,
    /// Restart only when it failed (non-zero exit) or is dead.
    OnFailure,
    /// Never restart it.
    Never,
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        })
    }
}

/// Why a deployment file is not valid, with the JSON path of the offending part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentError {
    /// Like `modules.demo-server.settings.args[1]`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for DeploymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.path, self.message)
        }
    }
}

/// Why a deployment file could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// The file does not exist (yet): the agent treats it as "no modules".
    Missing,
    /// It exists but could not be read.
    Io(io::Error),
    TooLarge,
    Invalid(DeploymentError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing => f.write_str("the file does not exist"),
            LoadError::Io(e) => write!(f, "cannot read it: {e}"),
            LoadError::TooLarge => write!(f, "it is larger than {MAX_FILE_BYTES} bytes"),
            LoadError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// Reads and validates the deployment file at `path`.
pub fn load(path: &Path) -> Result<Deployment, LoadError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::Missing),
        Err(e) => return Err(LoadError::Io(e)),
    };
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(LoadError::Io)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge);
    }
    parse(&text).map_err(LoadError::Invalid)
}
