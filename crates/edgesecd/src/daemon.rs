//! The state every part of the daemon shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use edgesec_pki::CertAuthority;
use edgesec_runtime::ModuleRuntime;

use crate::audit::AuditLog;
use crate::cloud::Cloud;
use crate::config::Config;
use crate::identity::Identities;
use crate::registry::Registry;
use crate::workload::sockets::ModuleSockets;

pub struct Daemon {
    pub config: Config,
    pub registry: Registry,
    pub identities: Identities,
    /// The device in the cloud; `None` for a standalone device.
    pub cloud: Option<Arc<Cloud>>,
    pub runtime: Arc<dyn ModuleRuntime>,
    pub ca: Arc<CertAuthority>,
    pub audit: AuditLog,
    pub started: Instant,
    /// Set when shutdown begins: the watchdog stops restarting things.
    pub stopping: std::sync::atomic::AtomicBool,
    pub(crate) module_sockets: ModuleSockets,
    /// One lock per module name, so two changes to one module never interleave while changes to
    /// different modules run in parallel.
    module_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Moves on whenever a module is being changed and whenever a module's run ends: a
    /// connection's attestation noted under an older value is void (see `attest.rs`).
    pub(crate) modules_version: AtomicU64,
    me: Weak<Daemon>,
}

/// Held while one module changes; the modules' version moves on when the change begins and
/// again when it ends, so no attestation made during it outlives it.
pub struct ModuleChange<'a> {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    version: &'a AtomicU64,
}

impl Drop for ModuleChange<'_> {
    fn drop(&mut self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a daemon is made of; `Daemon::new` adds its own bookkeeping.
pub struct Parts {
    pub config: Config,
    pub registry: Registry,
    pub identities: Identities,
    pub cloud: Option<Arc<Cloud>>,
    pub runtime: Arc<dyn ModuleRuntime>,
    pub ca: Arc<CertAuthority>,
    pub audit: AuditLog,
}

impl Daemon {
    pub fn new(p: Parts) -> Arc<Self> {
        Arc::new_cyclic(|me| Daemon {
            config: p.config,
            registry: p.registry,
            identities: p.identities,
            cloud: p.cloud,
            runtime: p.runtime,
            ca: p.ca,
            audit: p.audit,
            started: Instant::now(),
            stopping: Default::default(),
            module_sockets: ModuleSockets::default(),
            module_locks: Default::default(),
            modules_version: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// This daemon as an `Arc`, for tasks that outlive a call.
    pub fn me(&self) -> Arc<Daemon> {
        self.me
            .upgrade()
            .expect("the daemon is alive while its methods run")
    }

    /// Serializes changes to one module.
    pub async fn lock_module(&self, name: &str) -> ModuleChange<'_> {
        let lock = {
            let mut locks = self.module_locks.lock().expect("lock");
            // drop locks nobody holds, so 1,000 create/delete cycles leave nothing behind
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(name.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        self.modules_changed();
        ModuleChange {
            _guard: guard,
            version: &self.modules_version,
        }
    }

    /// Voids every connection's noted attestation (a module changed, or a run ended).
    pub fn modules_changed(&self) {
        self.modules_version.fetch_add(1, Ordering::SeqCst);
    }

    /// Keeps [`Daemon::modules_changed`] told of every run that ends, for as long as the
    /// daemon lives.
    pub fn watch_module_exits(&self) {
        let mut exits = self.runtime.exit_events();
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                let ended = exits.recv().await;
                let Some(daemon) = me.upgrade() else { return };
                match ended {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        daemon.modules_changed()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The hub and device id the device has now: what DPS assigned, else the config's.
    pub fn hub_and_device(&self) -> (String, String) {
        match &self.cloud {
            Some(c) => {
                let s = c.state();
                (s.hub, s.device_id)
            }
            None => (
                self.config.provisioning.iothub_hostname.clone(),
                self.config.provisioning.device_id.clone(),
            ),
        }
    }

    pub fn is_agent(&self, module: &str) -> bool {
        module == self.config.agent.name
    }
}
