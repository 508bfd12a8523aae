//! The state every part of the daemon shares.

use std::collections::HashMap;
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
    me: Weak<Daemon>,
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
    pub async fn lock_module(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.module_locks.lock().expect("lock");
            // drop locks nobody holds, so 1,000 create/delete cycles leave nothing behind
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(name.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
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
