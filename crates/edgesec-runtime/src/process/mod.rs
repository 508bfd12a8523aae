//! The process backend: modules as plain child processes of the daemon.
//!
//! Each module's main process gets its own session (and so process group), is placed in a
//! per-module cgroup before it execs where a cgroup tree is writable, runs with a cleared
//! environment and optionally as another user, and has its stdout/stderr kept in a bounded
//! in-memory ring. See the files of this folder for each concern.
//!
//! Limits worth knowing:
//! - modules do not survive the daemon: on the next start, `ProcessRuntime::new` kills what is
//!   left in the old module cgroups and removes them (without cgroups, leftovers are not found);
//! - the daemon is not a child subreaper, so orphaned module descendants are reparented to
//!   init; they stay attributable through the cgroup or session and are killed with the module;
//! - the daemon must not set SIGCHLD to SIG_IGN (the kernel would auto-reap the main processes
//!   this backend keeps as zombies during cleanup).

mod cgroup;
mod kill;
mod lifecycle;
mod log_reader;
mod log_ring;
mod module;
mod owner;
mod prepare;
mod spawn;
mod user;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use edgesec_attest::Measurement;
use rustix::process::Signal;
use tokio::sync::{broadcast, mpsc};

use self::cgroup::CgroupTree;
use self::module::Shared;
use crate::error::RuntimeError;
use crate::logs::{LogLine, LogQuery};
use crate::runtime::ModuleRuntime;
use crate::types::{ExitEvent, ModuleSettings, ModuleState};
use edgesec_api::name::validate_module_name;

/// Whether to use cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// Use the first writable hierarchy found (cgroup.rs says which are tried).
    #[default]
    Auto,
    /// Never; attribution by session only.
    Disabled,
}

#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    pub cgroups: CgroupMode,
    /// Where cgroup file systems are mounted.
    pub cgroup_root: PathBuf,
    /// Name of the parent cgroup of all module cgroups (one path component).
    pub cgroup_parent: String,
    /// `PATH` of a module whose environment does not set one.
    pub default_path: String,
    /// Log ring bounds per module: lines, and bytes (text plus a fixed per-line cost).
    pub log_max_lines: usize,
    pub log_max_bytes: usize,
    /// Longer output lines are split.
    pub log_line_max: usize,
    /// How long to keep SIGKILLing what a module left behind after its main process ended.
    pub exit_cleanup_timeout: Duration,
    /// How long stop waits for the main process after SIGKILL before reporting failure.
    pub kill_timeout: Duration,
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        ProcessRuntimeConfig {
            cgroups: CgroupMode::Auto,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "edgesec".into(),
            default_path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            log_max_lines: 10_000,
            log_max_bytes: 4 * 1024 * 1024,
            log_line_max: 16 * 1024,
            exit_cleanup_timeout: Duration::from_secs(5),
            kill_timeout: Duration::from_secs(60),
        }
    }
}

/// Capacity of the exit event channel; a listener that falls further behind sees `Lagged`.
const EXIT_EVENTS: usize = 256;

/// The process backend. Cheap to share: hold it as `Arc<dyn ModuleRuntime>`.
#[derive(Debug)]
pub struct ProcessRuntime {
    shared: Arc<Shared>,
}

impl ProcessRuntime {
    /// Sets up the backend: picks the cgroup tree (if any) and cleans up module cgroups left
    /// by an earlier daemon, killing their processes.
    pub async fn new(config: ProcessRuntimeConfig) -> Result<ProcessRuntime, RuntimeError> {
        validate_module_name(&config.cgroup_parent).map_err(|reason| RuntimeError::Io {
            context: "cgroup_parent".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, reason),
        })?;
        let cgroups = match config.cgroups {
            CgroupMode::Disabled => None,
            CgroupMode::Auto => {
                let (root, parent) = (config.cgroup_root.clone(), config.cgroup_parent.clone());
                tokio::task::spawn_blocking(move || CgroupTree::detect(&root, &parent))
                    .await
                    .ok()
                    .flatten()
            }
        };
        match &cgroups {
            Some(tree) => tracing::info!(tree = %tree.describe(), "module cgroups"),
            None => tracing::warn!(
                "no writable cgroup tree: module processes are attributed by session only"
            ),
        }
        let runtime = ProcessRuntime {
            shared: Arc::new(Shared {
                config,
                cgroups,
                modules: Mutex::new(HashMap::new()),
                exits: broadcast::channel(EXIT_EVENTS).0,
            }),
        };
        runtime.clean_stale_cgroups().await;
        Ok(runtime)
    }

    async fn clean_stale_cgroups(&self) {
        let Some(tree) = &self.shared.cgroups else {
            return;
        };
        for name in tree.existing_modules() {
            let Ok(cg) = tree.module(&name) else {
                continue;
            };
            tracing::warn!(module = %name, "removing module cgroup left by an earlier run");
            for _ in 0..250 {
                kill::signal_cgroup(tree, &cg, Signal::KILL);
                if cg.rmdir().is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The parent directory of the module cgroups, if cgroups are in use.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.shared.cgroups.as_ref().map(|t| t.dir())
    }

    /// The module's cgroup directory, if it has one.
    pub fn module_cgroup_dir(&self, name: &str) -> Option<PathBuf> {
        self.shared
            .get(name)?
            .cgroup
            .as_ref()
            .map(|c| c.dir.clone())
    }

    /// Stops (with `grace`) and removes every module, then removes the parent cgroup if it is
    /// empty. For daemon shutdown and tests.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), RuntimeError> {
        let names: Vec<String> = self.shared.modules().keys().cloned().collect();
        let mut first_err = None;
        for name in names {
            let r = async {
                lifecycle::stop(&self.shared, &name, grace).await?;
                lifecycle::remove(&self.shared, &name).await
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(module = %name, error = %e, "shutdown");
                first_err.get_or_insert(e);
            }
        }
        if let Some(tree) = &self.shared.cgroups {
            tree.remove_parent_if_empty();
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl ModuleRuntime for ProcessRuntime {
    fn backend(&self) -> &'static str {
        "process"
    }

    async fn create(
        &self,
        name: &str,
        settings: ModuleSettings,
        env: Vec<(String, String)>,
    ) -> Result<Measurement, RuntimeError> {
        lifecycle::create(&self.shared, name, settings, env).await
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        lifecycle::start(&self.shared, name).await
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        lifecycle::stop(&self.shared, name, grace).await
    }

    async fn restart(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        lifecycle::restart(&self.shared, name, grace).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        lifecycle::remove(&self.shared, name).await
    }

    async fn state(&self, name: &str) -> Result<ModuleState, RuntimeError> {
        Ok(lifecycle::lookup(&self.shared, name)?.state())
    }

    async fn list(&self) -> Result<Vec<(String, ModuleState)>, RuntimeError> {
        let entries: Vec<_> = self.shared.modules().values().cloned().collect();
        let mut out: Vec<_> = entries
            .iter()
            .map(|e| (e.name.clone(), e.state()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn logs(
        &self,
        name: &str,
        query: LogQuery,
    ) -> Result<mpsc::Receiver<LogLine>, RuntimeError> {
        Ok(lifecycle::lookup(&self.shared, name)?.logs.query(query))
    }

    async fn owner_of(&self, pid: i32) -> Option<String> {
        owner::owner_of(&self.shared, pid)
    }

    fn exit_events(&self) -> broadcast::Receiver<ExitEvent> {
        self.shared.exits.subscribe()
    }
}
