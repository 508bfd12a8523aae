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
    /// What the runtime has to say beyond the status, e.g. that a container was removed
    /// behind the daemon's back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
            description: None,
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

/// When a container module's image is pulled (IoT Edge `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull the image every time the module is created (IoT Edge's default).
    #[default]
    OnCreate,
    /// Never pull: the image must already be in the engine.
    Never,
}

impl PullPolicy {
    /// `on-create` or `never`, in any letter case (as IoT Edge parses it).
    pub fn parse(s: &str) -> Option<PullPolicy> {
        if s.eq_ignore_ascii_case("on-create") {
            Some(PullPolicy::OnCreate)
        } else if s.eq_ignore_ascii_case("never") {
            Some(PullPolicy::Never)
        } else {
            None
        }
    }
}

/// A host path bind-mounted into a container (a workload or management socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Absolute host path; it must exist when the container starts.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: PathBuf,
    pub read_only: bool,
}

/// How to run a module as a container (the `docker` backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// Image reference, e.g. `mcr.microsoft.com/azureiotedge-agent:1.6` or `localhost/demo:1`.
    pub image: String,
    /// Docker `ContainerCreate` JSON, as IoT Edge's `settings.createOptions` (an object).
    pub create_options: serde_json::Map<String, serde_json::Value>,
    pub pull_policy: PullPolicy,
    /// Mounts the daemon adds (the module's workload socket; the agent's management socket).
    pub mounts: Vec<BindMount>,
}

/// Backend-specific settings of a module. A backend refuses kinds it does not run with
/// [`crate::RuntimeError::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleSettings {
    Process(ProcessSettings),
    Docker(DockerSettings),
}

impl ModuleSettings {
    /// The backend that runs this kind: `"process"` or `"docker"`.
    pub fn backend(&self) -> &'static str {
        match self {
            ModuleSettings::Process(_) => "process",
            ModuleSettings::Docker(_) => "docker",
        }
    }
}

impl From<DockerSettings> for ModuleSettings {
    fn from(s: DockerSettings) -> Self {
        ModuleSettings::Docker(s)
    }
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
