//! [`CertAuthority`]: the daemon's handle on the CA chain, module certificate issuance, the
//! trust bundle and renewal.
//!
//! Every method that talks to the key store blocks (the store may be a socket client); call
//! them from `tokio::task::spawn_blocking` in async code. Issuance takes a read lock only long
//! enough to clone an `Arc`, so many issuances run in parallel; renewal swaps in a new chain.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use edgesec_keys::KeyStore;
use rcgen::SanType;
use time::{Duration, OffsetDateTime};
use tokio::sync::{Notify, broadcast};

use crate::chain::{self, Chain, Ctx};
use crate::clock::{Clock, ClockCheck};
use crate::config::{CaMode, ModuleCertConfig, PkiConfig};
use crate::error::{PkiError, Result};
use crate::issue::{self, IssuedCert, LeafKind};
use crate::records::Recorder;
use crate::renewal::{self, Action, ChainTimes, RenewReason};
use crate::store::{self, Layout};

/// What the CA tells the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiEvent {
    /// The edge CA certificate (and with `root_changed`, the root and so the trust bundle) was
    /// made or replaced. Module certificates issued before no longer chain to the current edge
    /// CA: restart the modules so they fetch new ones.
    ChainChanged {
        reason: ChangeReason,
        root_changed: bool,
        key_rotated: bool,
        edge_not_after: OffsetDateTime,
    },
    /// A renewal or creation failed; it is tried again at `retry_at`.
    RenewalFailed {
        error: String,
        retry_at: OffsetDateTime,
    },
    /// The clock cannot be trusted, so nothing is issued or renewed until it is set.
    ClockNotSane { message: String },
}

/// Why the chain changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeReason {
    /// It did not exist (first start, or the clock was wrong at start, or a file was unusable).
    Created,
    Renewed(RenewReason),
    /// Renewed on request.
    Forced,
}

/// A summary for status output and `edgesec check`.
#[derive(Clone, Debug)]
pub struct CaStatus {
    pub mode: CaMode,
    /// A chain is loaded (it may still be expired).
    pub ready: bool,
    pub edge_subject: Option<String>,
    pub edge_not_after: Option<OffsetDateTime>,
    /// The earliest expiry anywhere in the chain.
    pub chain_not_after: Option<OffsetDateTime>,
    /// `Err` with the reason while the clock cannot be trusted.
    pub clock: std::result::Result<(), String>,
}

/// The certificate authority.
pub struct CertAuthority {
    ctx: Ctx,
    modules: ModuleCertConfig,
    clock: Arc<dyn Clock>,
    clock_check: ClockCheck,
    chain: RwLock<Option<Arc<Chain>>>,
    renew_lock: Mutex<()>,
    events: broadcast::Sender<PkiEvent>,
    wake: Notify,
    records: Recorder,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority")
            .field("mode", &self.ctx.cfg.mode)
            .field("state_dir", &self.ctx.layout.state_dir)
            .finish_non_exhaustive()
    }
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

impl CertAuthority {
    /// Loads the CA chain of the configured mode from `state_dir` (its `certs/` subdirectory)
    /// and the key store, creating what edgesec owns and is missing, and renewing an owned CA
    /// that is expired or past its threshold. With a wrong clock nothing is created, renewed or
    /// deleted: the CA opens without a chain (or with the old one), issuance answers
    /// [`PkiError::ClockNotSane`], and the renewal task finishes the job once the clock is set.
    ///
    /// Errors are configuration problems (missing or bad user files, a key that does not fit
    /// its certificate) and key store failures.
    pub fn open(
        config: &PkiConfig,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        state_dir: &Path,
    ) -> Result<Arc<CertAuthority>> {
        config.validate()?;
        let layout = Layout::new(state_dir);
        layout.create()?;
        let user_bundle = match &config.trust_bundle_cert {
            None => Vec::new(),
            Some(file) => store::read_certs(&file.0)?.ok_or_else(|| {
                PkiError::Config(format!(
                    "trust_bundle_cert {} does not exist",
                    file.0.display()
                ))
            })?,
        };
        let ca = Arc::new(CertAuthority {
            ctx: Ctx {
                store,
                layout,
                cfg: config.edge_ca.clone(),
                user_bundle,
            },
            modules: config.module_certs.clone(),
            clock_check: ClockCheck::open(state_dir),
            clock,
            chain: RwLock::new(None),
            renew_lock: Mutex::new(()),
            events: broadcast::channel(64).0,
            wake: Notify::new(),
            records: Recorder::start(),
        });
        let now = ca.now();
        let sane = match ca.clock_check.check_and_record(now) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "not creating or renewing certificates at start");
                false
            }
        };
        let _guard = ca.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        match chain::establish(&ca.ctx, now, sane) {
            Ok((chain, made)) => {
                let reason = made.then_some(ChangeReason::Created);
                ca.install(chain, reason, true, false)?;
            }
            Err(e @ PkiError::NotReady(_)) if !sane => {
                tracing::warn!(error = %e, "the CA chain is not available yet");
            }
            Err(e) => return Err(e),
        }
        drop(_guard);
        if sane {
            // An owned CA that expired (or passed its threshold) while edgesec was down is
            // renewed before anything is issued under it. A failure here is left to the
            // renewal task to retry: an expired CA issues nothing meanwhile.
            if let Err(e) = ca.renew_due() {
                tracing::error!(error = %e, "renewing the edge CA at start failed");
            }
        }
        Ok(ca)
    }

    /// The current time by the CA's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Events about the chain: changes, failed renewals, a wrong clock.
    pub fn subscribe(&self) -> broadcast::Receiver<PkiEvent> {
        self.events.subscribe()
    }

    pub fn mode(&self) -> CaMode {
        self.ctx.cfg.mode
    }

    pub fn status(&self) -> CaStatus {
        let chain = self.current();
        CaStatus {
            mode: self.ctx.cfg.mode,
            ready: chain.is_some(),
            edge_subject: chain.as_ref().map(|c| c.edge.cert.subject.clone()),
            edge_not_after: chain.as_ref().map(|c| c.edge.cert.not_after),
            chain_not_after: chain.as_ref().map(|c| c.earliest_expiry()),
            clock: self
                .clock_check
                .check(self.now())
                .map_err(|e| e.to_string()),
        }
    }

    fn current(&self) -> Option<Arc<Chain>> {
        self.chain.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The chain, created on the spot if the clock was wrong at start and is right now.
    fn ready_chain(&self, now: OffsetDateTime) -> Result<Arc<Chain>> {
        self.clock_check.check_and_record(now)?;
        if let Some(chain) = self.current() {
            return Ok(chain);
        }
        self.renew_due()?;
        self.current()
            .ok_or_else(|| PkiError::NotReady("the CA chain could not be created".into()))
    }

    /// A server certificate for `module`, with subject CN `common_name` and SANs for the CN,
    /// the module name without a leading `$` and the configured extra host names.
    pub fn issue_server_cert(&self, module: &str, common_name: &str) -> Result<IssuedCert> {
        let sans = issue::server_sans(module, common_name, &self.modules.extra_hostnames)?;
        self.issue(LeafKind::Server, module, common_name, sans)
    }

    /// An identity (client) certificate for `module`: CN = the module name as given, the
    /// identity URI (see [`issue::module_identity_uri`]) as a URI SAN.
    pub fn issue_identity_cert(&self, module: &str, identity_uri: &str) -> Result<IssuedCert> {
        let san = issue::identity_san(identity_uri)?;
        self.issue(LeafKind::Identity, module, module, vec![san])
    }

    fn issue(
        &self,
        kind: LeafKind,
        module: &str,
        cn: &str,
        sans: Vec<SanType>,
    ) -> Result<IssuedCert> {
        let now = self.now();
        let chain = self.ready_chain(now)?;
        if now >= chain.edge.cert.not_after {
            self.wake();
            return Err(PkiError::CaExpired {
                not_after: chain.edge.cert.not_after,
            });
        }
        let span = issue::validity(
            now,
            days(self.modules.expiry_days),
            Some(chain.edge.cert.not_before),
            Some(chain.earliest_expiry()),
        )?;
        let algorithm = self.modules.key_algorithm;
        let (subject, private_key_pem) = issue::generate_leaf_key(algorithm)?;
        let params = issue::leaf_params(kind, module, cn, sans, algorithm, span)?;
        let cert = params
            .signed_by(&subject, &chain.issuer)
            .map_err(|e| chain.issuer.key().explain(e))?;
        let leaf = cert.der().clone();
        let mut certificate_pem = edgesec_keys::pem_encode("CERTIFICATE", &leaf);
        certificate_pem.push_str(&chain.chain_pem);
        if self.modules.persist {
            let path = self.ctx.layout.module_cert(module, kind.as_str());
            self.records.record(path, certificate_pem.clone());
        }
        tracing::debug!(module, kind = kind.as_str(), not_after = %crate::rfc3339(span.1), "issued a module certificate");
        Ok(IssuedCert {
            certificate_pem,
            private_key_pem,
            not_after: span.1,
            leaf,
        })
    }

    /// Waits until the copies of module certificates issued so far are written (they are
    /// written in the background, see `module_certs.persist`).
    pub fn flush_records(&self) {
        self.records.flush();
    }

    /// The trust bundle: the root(s), the edge CA chain and the user's extra CA certificates,
    /// without duplicates, as PEM.
    pub fn trust_bundle_pem(&self) -> Result<String> {
        self.current()
            .map(|c| c.bundle_pem.clone())
            .ok_or_else(|| PkiError::NotReady("the CA chain does not exist yet".into()))
    }

    /// The edge CA certificate and its intermediates up to (not including) the root, as PEM.
    pub fn edge_ca_chain_pem(&self) -> Result<String> {
        self.current()
            .map(|c| c.chain_pem.clone())
            .ok_or_else(|| PkiError::NotReady("the CA chain does not exist yet".into()))
    }

    /// What the renewal task should do at `now`.
    pub fn next_action(&self, now: OffsetDateTime) -> Action {
        if self.clock_check.check(now).is_err() {
            return Action::ClockWrong;
        }
        let chain = self.current();
        let times = chain.as_deref().map(times_of);
        renewal::check(&self.ctx.cfg.auto_renew, now, times.as_ref())
    }

    /// Creates the chain if there is none and renews what is due. `Ok(true)` when the chain
    /// changed (and an event was sent).
    pub fn renew_due(&self) -> Result<bool> {
        self.renew_with(None)
    }

    /// Renews the edge CA now (and the quickstart root with `root`), whether due or not.
    pub fn force_renew(&self, root: bool) -> Result<()> {
        self.renew_with(Some(root)).map(|_| ())
    }

    fn renew_with(&self, force: Option<bool>) -> Result<bool> {
        let _guard = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        self.clock_check.check_and_record(now)?;
        let Some(current) = self.current() else {
            let (chain, _) = chain::establish(&self.ctx, now, true)?;
            self.install(chain, Some(ChangeReason::Created), true, false)?;
            return Ok(true);
        };
        let (root, reason) = match (
            force,
            renewal::check(&self.ctx.cfg.auto_renew, now, Some(&times_of(&current))),
        ) {
            (Some(root), _) => (root, ChangeReason::Forced),
            (None, Action::Renew { root, reason }) => (root, ChangeReason::Renewed(reason)),
            _ => return Ok(false),
        };
        let root = root && current.mode == CaMode::Quickstart;
        tracing::info!(?reason, root, "renewing the edge CA");
        let chain = chain::renew(&self.ctx, &current, now, root)?;
        let rotated = chain.edge.key != current.edge.key;
        self.install(chain, Some(reason), root, rotated)?;
        Ok(true)
    }

    /// Makes `chain` current, writes the trust bundle file, and tells subscribers.
    fn install(
        &self,
        chain: Chain,
        reason: Option<ChangeReason>,
        root_changed: bool,
        key_rotated: bool,
    ) -> Result<()> {
        store::write_atomic(&self.ctx.layout.trust_bundle(), chain.bundle_pem.as_bytes())?;
        let edge_not_after = chain.edge.cert.not_after;
        if let Some(reason) = reason {
            tracing::info!(
                ?reason, root_changed, key_rotated, not_after = %crate::rfc3339(edge_not_after),
                "the edge CA chain changed; modules need new certificates"
            );
        }
        *self.chain.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(chain));
        if let Some(reason) = reason {
            let _ = self.events.send(PkiEvent::ChainChanged {
                reason,
                root_changed,
                key_rotated,
                edge_not_after,
            });
        }
        Ok(())
    }

    /// Wakes the renewal task.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    pub(crate) fn retry_interval(&self, _now: OffsetDateTime) -> Duration {
        match self.current() {
            Some(c) => renewal::retry_interval(
                &self.ctx.cfg.auto_renew,
                c.edge.cert.not_before,
                c.edge.cert.not_after,
            ),
            None => renewal::MIN_RETRY,
        }
    }

    pub(crate) fn report_failure(&self, e: &PkiError, retry_at: OffsetDateTime) {
        tracing::error!(error = %e, retry_at = %crate::rfc3339(retry_at), "edge CA renewal failed");
        let _ = self.events.send(PkiEvent::RenewalFailed {
            error: e.to_string(),
            retry_at,
        });
    }

    pub(crate) fn report_clock(&self, now: OffsetDateTime) {
        if let Err(e) = self.clock_check.check(now) {
            tracing::warn!(error = %e, "waiting for the clock to be set");
            let _ = self.events.send(PkiEvent::ClockNotSane {
                message: e.to_string(),
            });
        }
    }
}

fn times_of(chain: &Chain) -> ChainTimes {
    let root = match chain.mode {
        CaMode::Quickstart => chain
            .parent
            .as_ref()
            .map(|p| (p.cert.not_before, p.cert.not_after)),
        _ => None,
    };
    ChainTimes {
        mode: chain.mode,
        edge: (chain.edge.cert.not_before, chain.edge.cert.not_after),
        root,
        earliest_expiry: chain.earliest_expiry(),
    }
}
