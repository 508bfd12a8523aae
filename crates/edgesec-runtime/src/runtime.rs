//! The `ModuleRuntime` trait: what the daemon asks of any backend (plain processes, docker or
//! podman containers). The daemon holds an `Arc<dyn ModuleRuntime>`, so the trait is
//! dyn-compatible through `async_trait` (one boxed future per call).

use std::time::Duration;

use async_trait::async_trait;
use edgesec_attest::Measurement;
use tokio::sync::{broadcast, mpsc};

use crate::error::RuntimeError;
use crate::logs::{LogLine, LogQuery};
use crate::types::{ExitEvent, ModuleSettings, ModuleState};

#[async_trait]
pub trait ModuleRuntime: Send + Sync {
    /// Short backend name for status output: `"process"`, `"docker"`.
    fn backend(&self) -> &'static str;

    /// Registers a module without starting it. Validates the name and settings and fails here,
    /// not at start, when the command or user does not exist. Returns the measurement of what
    /// will run (the executable's SHA-256; a container backend returns the image id), which the
    /// daemon records and compares with callers' measurements.
    /// `env` is the complete environment the daemon computed (IOTEDGE_* etc.); the runtime adds
    /// only a default `PATH` when `env` has none.
    async fn create(
        &self,
        name: &str,
        settings: ModuleSettings,
        env: Vec<(String, String)>,
    ) -> Result<Measurement, RuntimeError>;

    /// Gets ready to create a module with `settings` without creating it (IoT Edge's
    /// `prepareupdate`): a container backend pulls the image when the pull policy says so.
    /// Nothing to do by default.
    async fn prepare(&self, name: &str, settings: &ModuleSettings) -> Result<(), RuntimeError> {
        let _ = (name, settings);
        Ok(())
    }

    /// Starts a created or stopped module. A running module gives `AlreadyRunning`.
    async fn start(&self, name: &str) -> Result<(), RuntimeError>;

    /// Asks the module to end (SIGTERM to its process group), waits up to `grace`, then kills
    /// it and everything it started. Returns once the main process is gone. Stopping a module
    /// that is not running is not an error.
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// `stop` with `grace`, then `start`, without another operation on the module in between.
    async fn restart(&self, name: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Kills the module at once if it runs (like `docker rm -f`), then forgets it and its logs.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;

    async fn state(&self, name: &str) -> Result<ModuleState, RuntimeError>;

    /// Every module and its state, sorted by name.
    async fn list(&self) -> Result<Vec<(String, ModuleState)>, RuntimeError>;

    /// The matching log lines, then (with `follow`) new lines while the module runs. Dropping
    /// the receiver ends the stream and frees everything behind it.
    async fn logs(
        &self,
        name: &str,
        query: LogQuery,
    ) -> Result<mpsc::Receiver<LogLine>, RuntimeError>;

    /// Which module the process `pid` belongs to, by what the kernel says (cgroup, session or
    /// container id), never by anything the process claims. `None` when it cannot be told for
    /// sure: attribution fails closed. The caller pins the pid first and re-checks the pin
    /// after this answer.
    async fn owner_of(&self, pid: i32) -> Option<String>;

    /// The measurement of what the caller `pid` of `module` runs now, to compare with the one
    /// `create` returned: for a process, the SHA-256 of its executable (`/proc/<pid>/exe`); for
    /// a container, the image id of the caller's container as the engine reports it now.
    async fn caller_measurement(
        &self,
        module: &str,
        pid: i32,
    ) -> Result<Measurement, RuntimeError> {
        let measure_error = |source| RuntimeError::Measure {
            module: module.to_owned(),
            source,
        };
        // A cached measurement costs an open and an fstat, not a hash: no hand-off to a
        // blocking thread (and back) for it. Only a miss goes to the blocking pool.
        if let Some(m) = edgesec_attest::exe_measurement_cached(pid).map_err(measure_error)? {
            return Ok(m);
        }
        let measured = tokio::task::spawn_blocking(move || edgesec_attest::exe_measurement(pid))
            .await
            .map_err(|e| RuntimeError::Io {
                context: format!("module {module}: measure task"),
                source: std::io::Error::other(e),
            })?;
        measured.map_err(measure_error)
    }

    /// A receiver of exit events, one per ended run of any module.
    fn exit_events(&self) -> broadcast::Receiver<ExitEvent>;
}
