//! The device in the cloud: provisioning at boot (manual, or DPS with the offline cache), the
//! hub client that module identities go through, and reprovisioning (on request, and by
//! `auto_reprovisioning_mode`). Standalone (`source = "local"`) devices have no [`Cloud`].
//!
//! Boot with DPS: with `on-error` or `dynamic` and a cached assignment, the cache is used and
//! checked with the hub; the hub refusing the device (401) sends the device to DPS again, and
//! an unreachable hub leaves it running from the cache. With `always-on-startup`, or no cache,
//! DPS is asked; if DPS cannot be reached the cache is the fallback. With neither cloud nor
//! cache the boot fails and says why.

pub mod cache;
pub mod credential;
pub mod modules;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgesec_identity::CloudError;
use edgesec_identity::dps::{DpsClient, PollPolicy};
use edgesec_identity::https::{CloudOptions, Endpoint, HttpsClient};
use edgesec_identity::hub::HubClient;
use edgesec_identity::proxy::ProxySetting;
use edgesec_identity::retry::RetryPolicy;
use edgesec_keyd::client::KeydClient;
use tokio::sync::Mutex;

use crate::config::{Config, DeviceAuth, DpsAttestation, ReprovisionMode};
use crate::identity::Identities;
use cache::CachedProvisioning;
use credential::Credential;

const PROVISIONED: &str = "a Cloud exists only once provisioned";

/// The largest DPS payload file sent.
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// Where the device is, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningState {
    pub hub: String,
    pub device_id: String,
    /// `manual` or `dps`.
    pub source: &'static str,
    pub credential: &'static str,
    pub registration_id: Option<String>,
    /// Unix seconds of the DPS assignment.
    pub provisioned_at: Option<u64>,
    /// Running from the cached assignment (DPS not asked, or not reachable, at this boot).
    pub from_cache: bool,
}

struct Connected {
    state: ProvisioningState,
    hub: Arc<HubClient>,
}

/// DPS settings, validated at boot.
struct DpsSettings {
    endpoint: Endpoint,
    scope: String,
    registration_id: String,
    fingerprint: String,
}

impl DpsSettings {
    /// The DPS settings of the config; `None` for a manual device.
    fn from_config(config: &Config) -> Result<Option<DpsSettings>, String> {
        Ok(match &config.provisioning.auth {
            DeviceAuth::Dps {
                global_endpoint,
                id_scope,
                registration_id,
                attestation,
            } => {
                let registration_id = match (registration_id, attestation) {
                    (Some(r), _) => r.clone(),
                    (None, DpsAttestation::X509 { identity_cert, .. }) => {
                        credential::common_name(identity_cert)?
                    }
                    (None, _) => {
                        return Err("provisioning.attestation.registration_id is required".into());
                    }
                };
                let method = match attestation {
                    DpsAttestation::SymmetricKey(_) => "symmetric_key",
                    DpsAttestation::GroupKey(_) => "group_key",
                    DpsAttestation::X509 { .. } => "x509",
                    DpsAttestation::Tpm => "tpm",
                };
                Some(DpsSettings {
                    endpoint: Endpoint::parse(global_endpoint).map_err(|e| e.to_string())?,
                    scope: id_scope.clone(),
                    fingerprint: cache::settings_fingerprint(&[
                        global_endpoint,
                        id_scope,
                        &registration_id,
                        method,
                    ]),
                    registration_id,
                })
            }
            _ => None,
        })
    }
}

pub struct Cloud {
    keyd: KeydClient,
    state_dir: std::path::PathBuf,
    mode: ReprovisionMode,
    http: HttpsClient,
    credential: Credential,
    dps: Option<DpsSettings>,
    poll: PollPolicy,
    payload: Option<std::path::PathBuf>,
    /// Set once `start` has provisioned; replaced by each provisioning.
    connected: std::sync::RwLock<Option<Connected>>,
    /// One provisioning at a time.
    provisioning: Mutex<()>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The HTTPS options from the config.
pub fn cloud_options(config: &Config) -> CloudOptions {
    let c = &config.cloud;
    CloudOptions {
        trusted_ca_files: c.trusted_ca_certs.clone(),
        proxy: match &c.proxy {
            Some(u) => ProxySetting::Url(u.clone()),
            None => ProxySetting::FromEnv,
        },
        timeout: c.timeout,
        retry: RetryPolicy {
            retries: c.retries,
            base_delay: c.retry_base_delay,
            max_delay: Duration::from_secs(60),
        },
        ..CloudOptions::default()
    }
}

impl Cloud {
    /// Provisions a hub-connected device; `None` for a standalone one.
    pub async fn start(
        config: &Config,
        keyd: &KeydClient,
        identities: &Identities,
    ) -> Result<Option<Arc<Cloud>>, String> {
        let p = &config.provisioning;
        if !p.has_hub() {
            return Ok(None);
        }
        let dps = DpsSettings::from_config(config)?;
        let credential = credential::resolve(
            config,
            keyd,
            identities,
            dps.as_ref().map(|d| d.registration_id.as_str()),
        )
        .await?;
        let http = HttpsClient::new(cloud_options(config), credential.client_identity())
            .map_err(|e| format!("cloud connection settings: {e}"))?;
        let poll = PollPolicy {
            default_interval: config.cloud.dps_poll_interval,
            min_interval: config.cloud.dps_poll_interval.min(Duration::from_secs(1)),
            ..PollPolicy::default()
        };
        let connected = match &dps {
            None => {
                let state = ProvisioningState {
                    hub: p.iothub_hostname.clone(),
                    device_id: p.device_id.clone(),
                    source: "manual",
                    credential: credential.kind(),
                    registration_id: None,
                    provisioned_at: None,
                    from_cache: false,
                };
                let hub = hub_client(&http, &credential, keyd, &state, None).await?;
                Some(Connected { state, hub })
            }
            // boot_dps below connects
            Some(_) => None,
        };
        let cloud = Arc::new(Cloud {
            keyd: keyd.clone(),
            state_dir: config.state_dir.clone(),
            mode: p.reprovisioning,
            http,
            credential,
            dps,
            poll,
            payload: p.dps_payload.clone(),
            connected: std::sync::RwLock::new(connected),
            provisioning: Mutex::new(()),
        });
        if cloud.dps.is_some() {
            cloud.boot_dps().await?;
        }
        let s = cloud.state();
        tracing::info!(hub = %s.hub, device = %s.device_id, source = s.source, credential = s.credential, from_cache = s.from_cache, "device provisioned");
        Ok(Some(cloud))
    }

    pub fn state(&self) -> ProvisioningState {
        let c = self.connected.read().expect("lock");
        c.as_ref().expect(PROVISIONED).state.clone()
    }

    pub fn hub(&self) -> Arc<HubClient> {
        let c = self.connected.read().expect("lock");
        c.as_ref().expect(PROVISIONED).hub.clone()
    }

    fn set_connected(&self, connected: Connected) {
        *self.connected.write().expect("lock") = Some(connected);
    }

    pub fn mode(&self) -> ReprovisionMode {
        self.mode
    }

    pub fn uses_dps(&self) -> bool {
        self.dps.is_some()
    }

    async fn boot_dps(&self) -> Result<(), String> {
        let _one = self.provisioning.lock().await;
        let dps = self.dps.as_ref().expect("DPS settings");
        let cached = cache::load(&self.state_dir, &dps.fingerprint);
        if let Some(c) = cached
            .as_ref()
            .filter(|_| self.mode != ReprovisionMode::AlwaysOnStartup)
        {
            self.connect_cached(c).await?;
            let hub = self.hub();
            match hub.list_modules().await {
                Ok(_) => {
                    tracing::info!(hub = %c.hub, device = %c.device_id, "starting from the cached DPS assignment; the hub accepts the device");
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, hub = %c.hub, device = %c.device_id, "the cloud is unreachable; starting from the cached provisioning");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the hub does not take the cached device identity; provisioning again with DPS");
                }
            }
        }
        match self.register().await {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() && cached.is_some() => {
                let c = cached.expect("checked");
                tracing::warn!(error = %e, hub = %c.hub, device = %c.device_id, "the cloud is unreachable; starting from the cached provisioning");
                self.connect_cached(&c).await
            }
            Err(e) => {
                let why = if cached.is_some() || !e.is_transient() {
                    String::new()
                } else {
                    " and there is no cached provisioning to start from".into()
                };
                Err(format!("provisioning with DPS failed: {e}{why}"))
            }
        }
    }

    async fn connect_cached(&self, c: &CachedProvisioning) -> Result<(), String> {
        let state = ProvisioningState {
            hub: c.hub.clone(),
            device_id: c.device_id.clone(),
            source: "dps",
            credential: self.credential.kind(),
            registration_id: Some(c.registration_id.clone()),
            provisioned_at: Some(c.provisioned_at),
            from_cache: true,
        };
        let hub = hub_client(&self.http, &self.credential, &self.keyd, &state, None).await?;
        self.set_connected(Connected { state, hub });
        Ok(())
    }

    /// Registers with DPS and switches to what it assigns. The caller holds `provisioning`.
    async fn register(&self) -> Result<(), CloudError> {
        let dps = self.dps.as_ref().expect("DPS settings");
        let payload = self.read_payload().map_err(CloudError::Setup)?;
        let client = DpsClient {
            http: self.http.clone(),
            endpoint: dps.endpoint.clone(),
            scope: dps.scope.clone(),
            registration_id: dps.registration_id.clone(),
            poll: self.poll,
        };
        tracing::info!(registration = %dps.registration_id, scope = %dps.scope, credential = self.credential.kind(), "registering with DPS");
        let a = client
            .register(
                &self.credential.dps_attestation(&self.keyd),
                payload.as_ref(),
            )
            .await?;
        let state = ProvisioningState {
            hub: a.hub.clone(),
            device_id: a.device_id.clone(),
            source: "dps",
            credential: self.credential.kind(),
            registration_id: Some(dps.registration_id.clone()),
            provisioned_at: Some(now_secs()),
            from_cache: false,
        };
        let hub = hub_client(
            &self.http,
            &self.credential,
            &self.keyd,
            &state,
            a.tpm_auth_key.as_deref(),
        )
        .await
        .map_err(CloudError::Setup)?;
        tracing::info!(hub = %a.hub, device = %a.device_id, "DPS assigned the device");
        let cached = CachedProvisioning {
            hub: a.hub,
            device_id: a.device_id,
            credential: self.credential.kind().into(),
            registration_id: dps.registration_id.clone(),
            provisioned_at: state.provisioned_at.unwrap_or_default(),
            settings: dps.fingerprint.clone(),
        };
        if let Err(e) = cache::save(&self.state_dir, &cached) {
            tracing::error!(error = %e, "the assignment is used but not cached; the next boot needs the cloud");
        }
        self.set_connected(Connected { state, hub });
        Ok(())
    }

    fn read_payload(&self) -> Result<Option<serde_json::Value>, String> {
        let Some(p) = &self.payload else {
            return Ok(None);
        };
        let meta = std::fs::metadata(p)
            .map_err(|e| format!("cannot read the DPS payload {}: {e}", p.display()))?;
        if meta.len() > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "the DPS payload {} is over {MAX_PAYLOAD_BYTES} bytes",
                p.display()
            ));
        }
        let text = std::fs::read(p)
            .map_err(|e| format!("cannot read the DPS payload {}: {e}", p.display()))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| format!("the DPS payload {} is not JSON: {e}", p.display()))
    }

    /// Provisions again (the management API, the CLI, or `dynamic` mode). For DPS the cache is
    /// bypassed and replaced; a manual device keeps its configured identity. Returns the state
    /// before and after.
    ///
    /// `refused`: the hub client a call was refused with, when that is the reason. If it has
    /// been replaced meanwhile, another caller has provisioned already and nothing is done, so
    /// concurrent refusals register once.
    pub async fn reprovision(
        &self,
        refused: Option<&Arc<HubClient>>,
    ) -> Result<(ProvisioningState, ProvisioningState), CloudError> {
        let before = self.state();
        if self.dps.is_none() {
            tracing::info!(
                "reprovision requested; a manually provisioned device keeps its configured identity"
            );
            return Ok((before.clone(), before));
        }
        let _one = self.provisioning.lock().await;
        if let Some(r) = refused
            && !Arc::ptr_eq(r, &self.hub())
        {
            return Ok((before, self.state()));
        }
        self.register().await?;
        Ok((before, self.state()))
    }
}

async fn hub_client(
    http: &HttpsClient,
    credential: &Credential,
    keyd: &KeydClient,
    state: &ProvisioningState,
    tpm_handle: Option<&str>,
) -> Result<Arc<HubClient>, String> {
    let auth = credential.hub_auth(keyd, tpm_handle).await?;
    HubClient::new(http.clone(), &state.hub, &state.device_id, auth)
        .map(Arc::new)
        .map_err(|e| format!("the hub {:?}: {e}", state.hub))
}
