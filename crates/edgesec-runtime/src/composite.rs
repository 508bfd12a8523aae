//! One runtime over several backends, so process and container modules live side by side: a
//! module is created by the backend its settings name, and every later call about it goes to
//! that backend.
//!
//! Attribution: a process inside a container (its cgroup names a container id) is asked of the
//! container backend only, never of the process backend, so a container process can never be
//! taken for a process module; every other process is asked of the process backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use edgesec_attest::Measurement;
use tokio::sync::{broadcast, mpsc};

use crate::error::RuntimeError;
use crate::logs::{LogLine, LogQuery};
use crate::runtime::ModuleRuntime;
use crate::types::{ExitEvent, ModuleSettings, ModuleState};

const EXIT_EVENTS: usize = 256;

pub struct CompositeRuntime {
    backends: Vec<Arc<dyn ModuleRuntime>>,
    /// Module name → index in `backends`.
    owners: Mutex<HashMap<String, usize>>,
    exits: broadcast::Sender<ExitEvent>,
}

impl std::fmt::Debug for CompositeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.backends.iter().map(|b| b.backend()).collect();
        f.debug_struct("CompositeRuntime")
            .field("backends", &names)
            .finish()
    }
}

impl CompositeRuntime {
    /// Backends with distinct `backend()` names. Must be called inside a tokio runtime: the
    /// backends' exit events are forwarded by tasks.
    pub fn new(backends: Vec<Arc<dyn ModuleRuntime>>) -> CompositeRuntime {
        let exits = broadcast::channel(EXIT_EVENTS).0;
        for b in &backends {
            let mut rx = b.exit_events();
            let tx = exits.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            let _ = tx.send(ev);
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "exit events were dropped");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        CompositeRuntime {
            backends,
            owners: Mutex::new(HashMap::new()),
            exits,
        }
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_of_backend(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.backend() == name)
    }

    fn of(&self, module: &str) -> Result<&Arc<dyn ModuleRuntime>, RuntimeError> {
        let i = self
            .owners()
            .get(module)
            .copied()
            .ok_or_else(|| RuntimeError::NotFound {
                name: module.to_owned(),
            })?;
        Ok(&self.backends[i])
    }

    /// The backend name of a module: `"process"` or `"docker"`.
    pub fn backend_of(&self, module: &str) -> Option<&'static str> {
        self.of(module).ok().map(|b| b.backend())
    }
}

#[async_trait]
impl ModuleRuntime for CompositeRuntime {
    fn backend(&self) -> &'static str {
        "composite"
    }

    async fn create(
        &self,
        name: &str,
        settings: ModuleSettings,
        env: Vec<(String, String)>,
    ) -> Result<Measurement, RuntimeError> {
        let kind = settings.backend();
        let i = self
            .index_of_backend(kind)
            .ok_or_else(|| RuntimeError::Unsupported {
                what: format!(
                    "module {name}: {kind} modules (this edgesecd has no {kind} runtime configured)"
                ),
            })?;
        if self.owners().contains_key(name) {
            return Err(RuntimeError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        let m = self.backends[i].create(name, settings, env).await?;
        self.owners().insert(name.to_owned(), i);
        Ok(m)
    }

    async fn prepare(&self, name: &str, settings: &ModuleSettings) -> Result<(), RuntimeError> {
        match self.index_of_backend(settings.backend()) {
            Some(i) => self.backends[i].prepare(name, settings).await,
            None => Ok(()),
        }
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        self.of(name)?.start(name).await
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.of(name)?.stop(name, grace).await
    }

    async fn restart(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.of(name)?.restart(name, grace).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let r = self.of(name)?.remove(name).await;
        if matches!(r, Ok(()) | Err(RuntimeError::NotFound { .. })) {
            self.owners().remove(name);
        }
        r
    }

    async fn state(&self, name: &str) -> Result<ModuleState, RuntimeError> {
        self.of(name)?.state(name).await
    }

    async fn list(&self) -> Result<Vec<(String, ModuleState)>, RuntimeError> {
        let mut out = Vec::new();
        for b in &self.backends {
            out.extend(b.list().await?);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn logs(
        &self,
        name: &str,
        query: LogQuery,
    ) -> Result<mpsc::Receiver<LogLine>, RuntimeError> {
        self.of(name)?.logs(name, query).await
    }

    async fn owner_of(&self, pid: i32) -> Option<String> {
        // Without a container backend no /proc read is spent on the question.
        let docker = self.index_of_backend("docker");
        let in_container = docker.is_some() && edgesec_attest::container_id(pid).is_some();
        let backend = if in_container {
            docker?
        } else {
            self.index_of_backend("process")?
        };
        let name = self.backends[backend].owner_of(pid).await?;
        // The module must be that backend's now (not one re-created in another since).
        (self.owners().get(&name) == Some(&backend)).then_some(name)
    }

    async fn caller_measurement(
        &self,
        module: &str,
        pid: i32,
    ) -> Result<Measurement, RuntimeError> {
        self.of(module)?.caller_measurement(module, pid).await
    }

    fn exit_events(&self) -> broadcast::Receiver<ExitEvent> {
        self.exits.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DockerSettings, PullPolicy};

    #[tokio::test]
    async fn a_kind_without_its_backend_is_refused_and_unknown_modules_are_not_found() {
        let rt = CompositeRuntime::new(vec![]);
        let settings = ModuleSettings::Docker(DockerSettings {
            image: "localhost/x:1".into(),
            create_options: Default::default(),
            pull_policy: PullPolicy::Never,
            mounts: vec![],
        });
        let e = rt.create("m1", settings, vec![]).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Unsupported { .. }), "{e}");
        assert!(
            e.to_string().contains("no docker runtime configured"),
            "{e}"
        );
        assert!(matches!(
            rt.state("m1").await,
            Err(RuntimeError::NotFound { .. })
        ));
        assert_eq!(rt.owner_of(std::process::id() as i32).await, None);
        assert!(rt.list().await.unwrap().is_empty());
    }
}
