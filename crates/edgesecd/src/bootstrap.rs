//! Boot, in the order the design gives: state dir → keyd → device identity (provisioned in
//! the cloud for a hub-connected device) → certificate
//! authority → registrations → runtime → sockets → modules → agent → watchdog.

use std::sync::Arc;

use edgesec_http::{ServerLimits, bind_unix_socket, serve};
use edgesec_keyd::remote_store::RemoteKeyStore;
use edgesec_pki::{CertAuthority, PkiEvent, SystemClock};
use edgesec_runtime::{ProcessRuntime, ProcessRuntimeConfig};
use tokio::sync::oneshot;

use crate::audit::AuditLog;
use crate::cloud::Cloud;
use crate::config::Config;
use crate::daemon::{Daemon, Parts};
use crate::identity::Identities;
use crate::keyd_link::KeydLink;
use crate::mgmt::MgmtApi;
use crate::registry::Registry;
use crate::workload::Socket;
use crate::workload::sockets::spawn_listener;

/// Mode of the management socket: the daemon's user and the admin group.
const MGMT_SOCKET_MODE: u32 = 0o660;

/// A running daemon and what must be stopped on exit.
pub struct Running {
    pub daemon: Arc<Daemon>,
    keyd: KeydLink,
    stops: Vec<oneshot::Sender<()>>,
    /// Held for the daemon's life: a second edgesecd on the same state refuses to start.
    _lock: edgesec_state::DirLock,
}

/// A name for this daemon's cgroups that no other edgesecd on the machine shares: each
/// daemon cleans up leftovers under its own parent at start, and must never touch another's.
fn cgroup_parent(config: &Config) -> String {
    let h = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        config.state_dir.as_os_str().as_encoded_bytes(),
    );
    let hex: String = h.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("edgesec-{hex}")
}

pub async fn boot(config: Config) -> Result<Running, String> {
    edgesec_state::ensure_private_dir(&config.state_dir).map_err(|e| e.to_string())?;
    let lock = edgesec_state::DirLock::acquire(&config.state_dir)
        .map_err(|e| format!("{e}: is another edgesecd running with this config?"))?;
    let keyd = KeydLink::connect(&config.keyd).await?;
    crate::mgmt::attestation::report_boot(&keyd.client, &config).await;
    let identities = Identities::init(&keyd.client, &config.provisioning).await?;
    let cloud = Cloud::start(&config, &keyd.client, &identities).await?;
    if cloud.is_none() {
        tracing::info!(device = %config.provisioning.device_id, "device identity ready (standalone)");
    }

    let store = Arc::new(RemoteKeyStore::new(
        keyd.client.clone(),
        tokio::runtime::Handle::current(),
    ));
    let (pki, state) = (config.pki.clone(), config.state_dir.clone());
    let ca = tokio::task::spawn_blocking(move || {
        CertAuthority::open(&pki, store, Arc::new(SystemClock), &state)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("certificate authority: {e}"))?;
    edgesec_pki::renewal::spawn(ca.clone());

    let registry = Registry::open(&config.state_dir)?;
    let runtime = ProcessRuntime::new(ProcessRuntimeConfig {
        cgroup_parent: cgroup_parent(&config),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("module runtime: {e}"))?;
    let (runtime, docker) =
        crate::containers::runtimes(&config, runtime, &cgroup_parent(&config)).await?;
    let audit = AuditLog::open(&config.audit_log, crate::audit::DEFAULT_MAX_BYTES)
        .await
        .map_err(|e| {
            format!(
                "cannot open the audit log {}: {e}",
                config.audit_log.display()
            )
        })?;
    let daemon = Daemon::new(Parts {
        config,
        registry,
        identities,
        cloud,
        runtime,
        ca,
        audit,
    });
    daemon.watch_module_exits();

    recreate_modules(&daemon).await;
    if let (Some(docker), Some(moby)) = (&docker, &daemon.config.moby) {
        crate::containers::reconcile(docker, moby.remove_orphans).await;
    }
    let stops = open_sockets(&daemon)?;
    resume_modules(&daemon).await;
    daemon.bootstrap_agent().await?;
    restart_modules_on_new_chain(&daemon);
    let watchdog = daemon.clone();
    tokio::spawn(async move { watchdog.watchdog().await });
    Ok(Running {
        daemon,
        keyd,
        stops,
        _lock: lock,
    })
}

/// Puts every registered module back into the runtime. The registered measurement stays: a
/// module whose executable changed on disk meanwhile is refused at attestation.
async fn recreate_modules(d: &Arc<Daemon>) {
    let regs: Vec<_> = d.registry.read().await.modules.values().cloned().collect();
    for r in regs {
        let generation = d
            .registry
            .read()
            .await
            .identities
            .get(&r.spec.name)
            .map(|i| i.generation_id.clone())
            .unwrap_or_default();
        let settings = match crate::modules::validate_spec(&r.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(module = %r.spec.name, error = %e.message, "stored module spec is invalid");
                continue;
            }
        };
        let env = d.module_env(&r.spec, &generation);
        if Daemon::is_container(&r.spec)
            && let Err(e) = d.prepare_container_socket(&r.spec.name).await
        {
            tracing::error!(module = %r.spec.name, error = %e.message, "cannot open the module's socket");
            continue;
        }
        match d
            .runtime
            .create(
                &r.spec.name,
                d.runtime_settings(&r.spec.name, settings),
                env,
            )
            .await
        {
            Ok(m) if m != r.measurement => {
                tracing::warn!(module = %r.spec.name, registered = %r.measurement, now = %m, "the module's executable or image changed since it was registered; its calls will be refused")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(module = %r.spec.name, error = %e, "cannot re-create module"),
        }
    }
}

/// Starts the modules that were running when the daemon last stopped (the agent is started
/// separately, last).
async fn resume_modules(d: &Arc<Daemon>) {
    let names: Vec<String> = d
        .registry
        .read()
        .await
        .modules
        .values()
        .filter(|r| r.desired_running && !d.is_agent(&r.spec.name))
        .map(|r| r.spec.name.clone())
        .collect();
    for name in names {
        if let Err(e) = d.start_module(&name).await {
            tracing::error!(module = %name, error = %e.message, "cannot resume module");
        }
    }
}

fn open_sockets(d: &Arc<Daemon>) -> Result<Vec<oneshot::Sender<()>>, String> {
    let c = &d.config;
    let mgmt = bind_unix_socket(
        &c.management.socket,
        MGMT_SOCKET_MODE,
        c.management.admin_gid,
    )
    .map_err(|e| format!("cannot listen on {}: {e}", c.management.socket.display()))?;
    let (tx, rx) = oneshot::channel::<()>();
    let limits = ServerLimits {
        max_connections_per_uid: c.management.max_connections_per_uid,
        ..ServerLimits::default()
    };
    tokio::spawn(serve(
        mgmt,
        limits,
        Arc::new(MgmtApi { daemon: d.clone() }),
        async move {
            let _ = rx.await;
        },
    ));
    std::fs::create_dir_all(&c.workload.module_socket_dir).map_err(|e| {
        format!(
            "cannot create {}: {e}",
            c.workload.module_socket_dir.display()
        )
    })?;
    let shared = spawn_listener(d.clone(), &c.workload.socket, Socket::Shared)
        .map_err(|e| format!("cannot listen on {}: {e}", c.workload.socket.display()))?;
    tracing::info!(management = %c.management.socket.display(), workload = %c.workload.socket.display(), "sockets open");
    Ok(vec![tx, shared])
}

/// When the edge CA is renewed, running modules are restarted (the agent last) so they fetch
/// certificates under the new chain.
fn restart_modules_on_new_chain(d: &Arc<Daemon>) {
    let d = d.clone();
    let mut events = d.ca.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if !matches!(ev, PkiEvent::ChainChanged { .. }) {
                continue;
            }
            tracing::info!("the CA chain changed; restarting running modules");
            let mut names: Vec<String> = d
                .registry
                .read()
                .await
                .modules
                .values()
                .filter(|r| r.desired_running)
                .map(|r| r.spec.name.clone())
                .collect();
            names.sort_by_key(|n| d.is_agent(n));
            for n in names {
                if let Err(e) = d.restart_module(&n).await {
                    tracing::error!(module = %n, error = %e.message, "cannot restart module after CA renewal");
                }
            }
        }
    });
}

impl Running {
    /// Stops every module (the agent first, so it does not fight the shutdown), closes the
    /// sockets and stops the keyd this daemon started.
    pub async fn shutdown(mut self) {
        let d = &self.daemon;
        d.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut names: Vec<String> = d.registry.read().await.modules.keys().cloned().collect();
        names.sort_by_key(|n| !d.is_agent(n));
        for n in &names {
            let _ = d.runtime.stop(n, crate::modules::STOP_GRACE).await;
        }
        self.stops.clear();
        for n in &names {
            d.unbind_module_socket(n, false).await;
        }
        let _ = std::fs::remove_file(&d.config.management.socket);
        let _ = std::fs::remove_file(&d.config.workload.socket);
        self.keyd.shutdown().await;
    }
}
