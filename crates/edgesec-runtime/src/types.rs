//! Types shared with the daemon: module settings, state, exit events.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::time_fmt;

/// Module status, lowercase on the wire (the IoT Edge `runtimeStatus.status` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleStatus {
    /// The main process is alive.
    Running,
    /// Exited with code 0, or ended by the daemon's stop (whatever its exit code).
    Stopped,
    /// Exited non-zero or was killed by a signal the daemon did not send; also a failed start.
    Failed,
    /// The runtime lost track of it (waiting for the process failed).
    Dead,
    /// Created but never started.
    Unknown,
}

impl ModuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleStatus::Running => "running",
            ModuleStatus::Stopped => "stopped",
            ModuleStatus::Failed => "failed",
            ModuleStatus::Dead => "dead",
            ModuleStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ModuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime knows about one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleState {
    pub status: ModuleStatus,
    /// Exit code of the last run. A run killed by a signal reports `128 + signal`, the shell
    /// and docker convention, so IoT Edge's `exitStatus.statusCode` always has a number.
    pub exit_code: Option<i32>,
    /// The signal that ended the last run, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, with = "time_fmt::rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(default, with = "time_fmt::rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    /// Pid of the main process while it runs.
    pub pid: Option<i32>,
    /// Starts after the first one (by `start`, `restart` or a restart policy in the daemon).
    pub restart_count: u32,
}

impl ModuleState {
    /// The state of a module that was created and never started.
    pub fn created() -> ModuleState {
        ModuleState {
            status: ModuleStatus::Unknown,
            exit_code: None,
            signal: None,
            started_at: None,
            finished_at: None,
            pid: None,
            restart_count: 0,
        }
    }
}

/// How to run a module as a plain process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSettings {
    /// An absolute path, a path relative to `working_dir` (if it contains `/`), or a bare name
    /// searched in the module's `PATH`.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Absolute directory the module starts in.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// `name`, `uid`, `name:group` or `uid:gid`. None: the daemon's own user.
    #[serde(default)]
    pub user: Option<String>,
}

/// Backend-specific settings of a module. A backend refuses kinds it does not run with
/// [`crate::RuntimeError::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleSettings {
    Process(ProcessSettings),
}

impl From<ProcessSettings> for ModuleSettings {
    fn from(s: ProcessSettings) -> Self {
        ModuleSettings::Process(s)
    }
}

/// Sent when a module's main process has ended and been cleaned up (leftover processes killed,
/// main process reaped). The daemon's watchdog and restart policy listen to these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitEvent {
    pub name: String,
    /// `Stopped` for exit 0 or a stop the daemon asked for, `Failed` otherwise, `Dead` if the
    /// runtime could not learn how it ended.
    pub status: ModuleStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    #[serde(with = "time_fmt::rfc3339")]
    pub time: SystemTime,
}
