//! `edgesec-demo server`: fetches a server certificate and the trust bundle, then answers
//! mutual-TLS clients, renewing its certificate with 20% of its lifetime left or after a failed
//! exchange.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::certs::{self, Credentials, TrustBundle, rfc3339};
use crate::cli::{ModuleEnv, ServerArgs};
use crate::tls;
use crate::workload::Workload;

/// Exchanges served at once.
const MAX_CONCURRENT: usize = 32;
/// How long to keep trying to get a first certificate before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);
/// Wait after a failed renewal, and least time between renewals caused by failed exchanges.
const RETRY: Duration = Duration::from_secs(30);

struct Current {
    acceptor: TlsAcceptor,
    creds: Credentials,
    fetched: Instant,
}

async fn fetch(w: &Workload, args: &ServerArgs) -> Result<Current, String> {
    let response = w.server_cert(&args.common_name).await?;
    let bundle_pem = w.trust_bundle().await?;
    let creds = Credentials::from_response("the server certificate", &response)?;
    let bundle = TrustBundle::parse(&bundle_pem)?;
    let acceptor = tls::acceptor(&creds, &bundle)?;
    if let Some(dir) = &args.dump_dir {
        certs::dump(dir, "server", &response.certificate, &bundle_pem)?;
    }
    Ok(Current {
        acceptor,
        creds,
        fetched: Instant::now(),
    })
}

/// Fetches, retrying with a doubling wait until `STARTUP_PATIENCE` has passed.
async fn first_fetch(w: &Workload, args: &ServerArgs, id: &str) -> Result<Current, String> {
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        match fetch(w, args).await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() + wait > STARTUP_PATIENCE => return Err(e),
            Err(e) => {
                tracing::warn!(
                    "{id}: {e}; retrying in {}",
                    humantime::format_duration(wait)
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn until(t: SystemTime) -> Duration {
    // Capped, so a clock that jumps is noticed within the hour.
    t.duration_since(SystemTime::now())
        .unwrap_or_default()
        .min(Duration::from_secs(3600))
}

pub async fn run(
    args: ServerArgs,
    env: ModuleEnv,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let id = env.module_id.clone();
    let workload = Workload::new(&env);
    let mut current = first_fetch(&workload, &args, &id).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let leaf = &current.creds.leaf;
    tracing::info!(
        "{id}: got server certificate {} (names: {}) valid until {}, listening on {local}",
        leaf.subject,
        leaf.names.join(", "),
        rfc3339(leaf.not_after),
    );
    let mut renew_at = leaf.renew_at();
    let failed = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    tokio::pin!(shutdown);
    loop {
        let due = SystemTime::now() >= renew_at;
        let after_failure = failed.load(Ordering::Relaxed) && current.fetched.elapsed() >= RETRY;
        if due || after_failure {
            failed.store(false, Ordering::Relaxed);
            let why = if due {
                "it is due"
            } else {
                "an exchange failed"
            };
            match fetch(&workload, &args).await {
                Ok(next) => {
                    current = next;
                    renew_at = current.creds.leaf.renew_at();
                    tracing::info!(
                        "{id}: renewed the server certificate ({why}): {} valid until {}",
                        current.creds.leaf.subject,
                        rfc3339(current.creds.leaf.not_after)
                    );
                }
                Err(e) => {
                    tracing::warn!("{id}: cannot renew the server certificate ({why}): {e}");
                    renew_at = renew_at.max(SystemTime::now() + RETRY);
                }
            }
        }
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(until(renew_at)) => continue,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{id}: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("{id}: {MAX_CONCURRENT} exchanges in progress; refusing {peer}");
            continue;
        };
        let acceptor = current.acceptor.clone();
        let failed = failed.clone();
        let id = id.clone();
        tokio::spawn(async move {
            match tls::serve_one(&acceptor, tcp).await {
                Ok(s) => tracing::info!(
                    "{id}: mutual TLS with {peer} OK: client identity {} verified against the trust bundle; said {:?}",
                    s.client_identity,
                    s.line
                ),
                Err(e) => {
                    tracing::warn!("{id}: exchange with {peer} failed: {e}");
                    failed.store(true, Ordering::Relaxed);
                }
            }
            drop(slot);
        });
    }
    tracing::info!("{id}: stopping");
    Ok(())
}
