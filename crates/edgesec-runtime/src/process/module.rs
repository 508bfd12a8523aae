//! The in-memory record of one module and of the backend as a whole.
//!
//! Locks, and why no global lock is ever held across process I/O:
//! - `Shared::modules` (std mutex): the name → module map. Held only to look up, insert or
//!   remove, never across an await.
//! - `ModuleEntry::ops` (tokio mutex, per module): serializes start/stop/restart/remove of
//!   *one* module across their awaits. Different modules never wait for each other.
//! - `ModuleEntry::inner` (std mutex, per module): state and the current run, held for short
//!   non-blocking sections. Signals sent to the run's process group are sent under it, and the
//!   watcher reaps under it, so a signal can never reach a group whose leader was reaped (and
//!   whose id could have been reused) in between.
//!
//! Lock order: `modules` before `inner`; `ops` before both.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use super::ProcessRuntimeConfig;
use super::cgroup::{CgroupTree, ModuleCgroup};
use super::log_ring::LogRing;
use super::prepare::Prepared;
use crate::types::{ExitEvent, ModuleState};

/// State shared by the runtime handle and its background tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ProcessRuntimeConfig,
    pub cgroups: Option<CgroupTree>,
    pub modules: Mutex<HashMap<String, Arc<ModuleEntry>>>,
    pub exits: broadcast::Sender<ExitEvent>,
}

impl Shared {
    pub fn modules(&self) -> MutexGuard<'_, HashMap<String, Arc<ModuleEntry>>> {
        // Map operations are single inserts/removes; a poisoned lock still holds a valid map.
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<ModuleEntry>> {
        self.modules().get(name).cloned()
    }
}

#[derive(Debug)]
pub(crate) struct ModuleEntry {
    pub name: String,
    pub prepared: Prepared,
    pub cgroup: Option<ModuleCgroup>,
    pub logs: Arc<LogRing>,
    pub ops: tokio::sync::Mutex<()>,
    inner: Mutex<Inner>,
    /// Generation of the last run that has ended and been reaped; stop waits on it.
    pub finished: watch::Sender<u64>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub state: ModuleState,
    /// Present from spawn until the watcher reaps the main process.
    pub run: Option<Run>,
    /// Number of runs started so far; the current run's generation.
    pub generation: u64,
    /// Set by remove; operations that were waiting on `ops` then answer "not found".
    pub removed: bool,
}

/// The current run's main process. While this exists the process is unreaped, so `pid` is
/// also a live process group id and session id that belong to this module.
#[derive(Debug)]
pub(crate) struct Run {
    pub pid: i32,
    pub pidfd: Arc<OwnedFd>,
    pub generation: u64,
    /// The daemon asked it to stop: its end counts as "stopped" whatever the exit code.
    pub stop_requested: bool,
}

impl ModuleEntry {
    pub fn new(
        name: String,
        prepared: Prepared,
        cgroup: Option<ModuleCgroup>,
        config: &ProcessRuntimeConfig,
    ) -> ModuleEntry {
        ModuleEntry {
            name,
            prepared,
            cgroup,
            logs: Arc::new(LogRing::new(config.log_max_lines, config.log_max_bytes)),
            ops: tokio::sync::Mutex::new(()),
            inner: Mutex::new(Inner {
                state: ModuleState::created(),
                run: None,
                generation: 0,
                removed: false,
            }),
            finished: watch::channel(0).0,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves Inner consistent before anything that could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current state (a copy).
    pub fn state(&self) -> ModuleState {
        self.lock().state.clone()
    }

    /// The leader pid of the current run, if one is running (or exited and not yet reaped).
    pub fn leader(&self) -> Option<i32> {
        self.lock().run.as_ref().map(|r| r.pid)
    }
}
