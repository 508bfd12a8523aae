//! The agent: registered implicitly from config (after measuring its executable, or as a
//! container of its image, the way IoT Edge runs edgeAgent), started at boot, and kept running
//! by the watchdog, which restarts it with a doubling backoff. A container agent whose
//! container was removed or died is created again by the runtime's start.

use std::time::{Duration, Instant};

use edgesec_api::mgmt::{EnvVar, ModuleConfig, ModuleSpec};
use edgesec_runtime::ModuleStatus;

use crate::daemon::Daemon;

impl Daemon {
    /// The agent's module spec, from config.
    pub fn agent_spec(&self) -> ModuleSpec {
        let a = &self.config.agent;
        let (module_type, settings) = if a.agent_type == "docker" {
            let mut s = serde_json::json!({ "image": a.image.clone().unwrap_or_default() });
            if !a.create_options.is_empty() {
                s["createOptions"] = serde_json::Value::Object(a.create_options.clone());
            }
            ("docker", s)
        } else {
            (
                "process",
                serde_json::json!({ "command": a.command.display().to_string(), "args": a.args }),
            )
        };
        ModuleSpec {
            name: a.name.clone(),
            module_type: module_type.into(),
            image_pull_policy: a.image_pull_policy.clone(),
            config: ModuleConfig {
                settings,
                env: a
                    .env
                    .iter()
                    .map(|(k, v)| EnvVar {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            },
        }
    }

    /// Registers the agent as config describes it now (its executable measured afresh) and
    /// starts it.
    pub async fn bootstrap_agent(&self) -> Result<(), String> {
        let spec = self.agent_spec();
        let what = match &self.config.agent.image {
            Some(image) if self.config.agent.agent_type == "docker" => image.clone(),
            _ => self.config.agent.command.display().to_string(),
        };
        self.update_module(spec, true)
            .await
            .map_err(|e| format!("cannot start the agent {what}: {}", e.message))?;
        tracing::info!(agent = %self.config.agent.name, "agent started");
        Ok(())
    }

    /// Keeps the agent running: on its exit and on every interval, restarts it if it is not
    /// running, waiting longer after each quick failure (up to the configured maximum).
    pub async fn watchdog(&self) {
        let w = self.config.watchdog;
        let name = self.config.agent.name.clone();
        let mut exits = self.runtime.exit_events();
        let mut backoff = Duration::from_secs(1);
        let mut last_start = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(w.interval) => {}
                ev = exits.recv() => {
                    if let Ok(ev) = ev && ev.name != name {
                        continue;
                    }
                }
            }
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let running = matches!(self.runtime.state(&name).await, Ok(s) if s.status == ModuleStatus::Running);
            if running {
                if last_start.elapsed() > w.max_backoff * 2 {
                    backoff = Duration::from_secs(1);
                }
                continue;
            }
            if !self
                .registry
                .read()
                .await
                .modules
                .get(&name)
                .is_some_and(|r| r.desired_running)
            {
                continue; // an admin stopped it on purpose
            }
            tracing::warn!(agent = %name, delay = ?backoff, "the agent is not running; restarting it");
            tokio::time::sleep(backoff).await;
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            backoff = (backoff * 2).min(w.max_backoff);
            last_start = Instant::now();
            if let Err(e) = self.start_module(&name).await {
                tracing::error!(agent = %name, error = %e.message, "cannot restart the agent");
            }
        }
    }
}
