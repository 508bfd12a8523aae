//! create / start / stop / restart / remove for the process backend.
//!
//! Every operation on an existing module holds that module's `ops` lock for its whole
//! duration, so a stop and a start of one module cannot interleave, while other modules are
//! untouched. The `_locked` helpers assume the caller holds it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edgesec_attest::Measurement;
use rustix::process::{Signal, pidfd_send_signal};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::kill::{signal_cgroup, signal_group};
use super::log_reader::read_lines;
use super::module::{ModuleEntry, Run, Shared};
use super::prepare::prepare;
use super::spawn::spawn;
use super::watch::watch_run;
use crate::error::RuntimeError;
use crate::logs::LogStream;
use crate::types::{ModuleSettings, ModuleStatus};
use edgesec_api::name::validate_module_name;

/// Rounds of emptying a cgroup before giving up on removing it.
const RMDIR_ROUNDS: usize = 250;

pub(crate) fn lookup(shared: &Shared, name: &str) -> Result<Arc<ModuleEntry>, RuntimeError> {
    shared.get(name).ok_or_else(|| RuntimeError::NotFound {
        name: name.to_owned(),
    })
}

fn not_removed(entry: &ModuleEntry) -> Result<(), RuntimeError> {
    if entry.lock().removed {
        return Err(RuntimeError::NotFound {
            name: entry.name.clone(),
        });
    }
    Ok(())
}

pub(crate) async fn create(
    shared: &Arc<Shared>,
    name: &str,
    settings: ModuleSettings,
    env: Vec<(String, String)>,
) -> Result<Measurement, RuntimeError> {
    validate_module_name(name).map_err(|reason| RuntimeError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let settings = match settings {
        ModuleSettings::Process(s) => s,
        other => {
            return Err(RuntimeError::Unsupported {
                what: format!(
                    "module {name}: {} modules in the process backend",
                    other.backend()
                ),
            });
        }
    };
    if shared.get(name).is_some() {
        return Err(RuntimeError::AlreadyExists {
            name: name.to_owned(),
        });
    }
    let (module, default_path) = (name.to_owned(), shared.config.default_path.clone());
    let prepared =
        tokio::task::spawn_blocking(move || prepare(&module, settings, env, &default_path))
            .await
            .map_err(|e| RuntimeError::Io {
                context: format!("module {name}: create task"),
                source: std::io::Error::other(e),
            })??;
    let measurement = prepared.measurement;

    let mut modules = shared.modules();
    if modules.contains_key(name) {
        return Err(RuntimeError::AlreadyExists {
            name: name.to_owned(),
        });
    }
    // mkdir under the map lock: a quick syscall, and it keeps two creates of one name from
    // both making (and one later removing) the same directory.
    let cgroup = match &shared.cgroups {
        None => None,
        Some(tree) => Some(tree.create(name).map_err(|source| RuntimeError::Cgroup {
            module: name.to_owned(),
            context: "create".into(),
            source,
        })?),
    };
    let entry = ModuleEntry::new(name.to_owned(), prepared, cgroup, &shared.config);
    modules.insert(name.to_owned(), Arc::new(entry));
    tracing::info!(module = name, %measurement, "module created");
    Ok(measurement)
}

pub(crate) async fn start(shared: &Arc<Shared>, name: &str) -> Result<(), RuntimeError> {
    let entry = lookup(shared, name)?;
    let _ops = entry.ops.lock().await;
    start_locked(shared, &entry).await
}

async fn start_locked(shared: &Arc<Shared>, entry: &Arc<ModuleEntry>) -> Result<(), RuntimeError> {
    {
        let inner = entry.lock();
        if inner.removed {
            return Err(RuntimeError::NotFound {
                name: entry.name.clone(),
            });
        }
        if inner.run.is_some() {
            return Err(RuntimeError::AlreadyRunning {
                name: entry.name.clone(),
            });
        }
    }
    let e = entry.clone();
    let spawned = tokio::task::spawn_blocking(move || spawn(&e.prepared, e.cgroup.as_ref()))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
    let spawned = match spawned {
        Ok(s) => s,
        Err(source) => {
            let mut inner = entry.lock();
            inner.state.status = ModuleStatus::Failed;
            inner.state.finished_at = Some(SystemTime::now());
            return Err(RuntimeError::Spawn {
                module: entry.name.clone(),
                source,
            });
        }
    };
    let pid = spawned.pid;
    let pidfd = Arc::new(spawned.pidfd);
    // Readers first, so no output is lost; they own the run's log sender.
    let run_tx = entry.logs.begin_run();
    for (fd, stream) in [
        (spawned.stdout, LogStream::Stdout),
        (spawned.stderr, LogStream::Stderr),
    ] {
        match pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => {
                tokio::spawn(read_lines(
                    rx,
                    stream,
                    entry.logs.clone(),
                    run_tx.clone(),
                    shared.config.log_line_max,
                ));
            }
            Err(e) => {
                tracing::warn!(module = %entry.name, ?stream, error = %e, "cannot read module output")
            }
        }
    }
    drop(run_tx);
    let generation = {
        let mut inner = entry.lock();
        inner.generation += 1;
        let st = &mut inner.state;
        if st.started_at.is_some() {
            st.restart_count += 1;
        }
        st.status = ModuleStatus::Running;
        st.pid = Some(pid);
        st.started_at = Some(SystemTime::now());
        st.finished_at = None;
        st.exit_code = None;
        st.signal = None;
        let generation = inner.generation;
        inner.run = Some(Run {
            pid,
            pidfd: pidfd.clone(),
            generation,
            stop_requested: false,
        });
        generation
    };
    tracing::info!(module = %entry.name, pid, "module started");
    tokio::spawn(watch_run(
        shared.clone(),
        entry.clone(),
        pid,
        pidfd,
        generation,
    ));
    Ok(())
}

pub(crate) async fn stop(
    shared: &Arc<Shared>,
    name: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let entry = lookup(shared, name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    stop_locked(shared, &entry, grace).await
}

pub(crate) async fn restart(
    shared: &Arc<Shared>,
    name: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let entry = lookup(shared, name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    stop_locked(shared, &entry, grace).await?;
    start_locked(shared, &entry).await
}

/// SIGTERM to the group (SIGKILL right away for a zero grace), wait up to `grace`, then
/// SIGKILL. The watcher kills the rest of the module once the main process is gone; this
/// returns when the watcher has reaped it.
async fn stop_locked(
    shared: &Shared,
    entry: &ModuleEntry,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let mut finished = entry.finished.subscribe();
    let generation = {
        let mut inner = entry.lock();
        let Some(run) = inner.run.as_mut() else {
            return Ok(());
        };
        run.stop_requested = true;
        // Under the lock the watcher cannot reap, so the leader's pid is still its group id.
        let sig = if grace.is_zero() {
            Signal::KILL
        } else {
            Signal::TERM
        };
        signal_group(run.pid, sig);
        run.generation
    };
    if !grace.is_zero() && wait_finished(&mut finished, generation, grace).await {
        return Ok(());
    }
    {
        let inner = entry.lock();
        if let Some(run) = inner.run.as_ref().filter(|r| r.generation == generation) {
            signal_group(run.pid, Signal::KILL);
            // Also through the pidfd, in case the leader left its group (setpgid).
            let _ = pidfd_send_signal(&run.pidfd, Signal::KILL);
        }
    }
    if wait_finished(&mut finished, generation, shared.config.kill_timeout).await {
        Ok(())
    } else {
        Err(RuntimeError::StopTimeout {
            module: entry.name.clone(),
        })
    }
}

/// Whether run `generation` was reaped within `limit`.
async fn wait_finished(rx: &mut watch::Receiver<u64>, generation: u64, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, rx.wait_for(|g| *g >= generation)).await,
        Ok(Ok(_))
    )
}

pub(crate) async fn remove(shared: &Arc<Shared>, name: &str) -> Result<(), RuntimeError> {
    let entry = lookup(shared, name)?;
    let _ops = entry.ops.lock().await;
    not_removed(&entry)?;
    stop_locked(shared, &entry, Duration::ZERO).await?;
    if let Some(cg) = &entry.cgroup {
        remove_cgroup(shared, &entry, cg).await?;
    }
    entry.lock().removed = true;
    let mut modules = shared.modules();
    if modules.get(name).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
        modules.remove(name);
    }
    tracing::info!(module = name, "module removed");
    Ok(())
}

/// Kills anything still in the cgroup (a straggler from a run that survived the watcher's
/// cleanup) and removes the directory, retrying while the kernel reports it busy.
async fn remove_cgroup(
    shared: &Shared,
    entry: &ModuleEntry,
    cg: &super::cgroup::ModuleCgroup,
) -> Result<(), RuntimeError> {
    let mut last = None;
    for _ in 0..RMDIR_ROUNDS {
        if let Some(tree) = &shared.cgroups {
            signal_cgroup(tree, cg, Signal::KILL);
        }
        match cg.rmdir() {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(RuntimeError::Cgroup {
        module: entry.name.clone(),
        context: format!("remove {}", cg.dir.display()),
        source: last.unwrap_or_else(|| std::io::Error::other("busy")),
    })
}
