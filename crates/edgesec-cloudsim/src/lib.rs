//! # edgesec-cloudsim
//!
//! A test service for the subset of the Azure Device Provisioning Service
//! (DPS) and IoT Hub that edgesec uses. Unlike a mock it checks every
//! credential: SAS tokens (audience, expiry, `skn`, HMAC-SHA256 signature in
//! constant time), X.509 client chains against the enrolled CA with the CN
//! bound to the registration or device id, and the TPM challenge flow.
//! End-to-end tests start it, point the real daemon at [`CloudSim::endpoint`]
//! and trust [`CloudSim::server_ca_pem`].
//!
//! It listens on `127.0.0.1` on a free port, over TLS (a fresh CA and a
//! server certificate for `localhost` and `127.0.0.1` per instance), HTTP/1.1,
//! on its own tokio runtime, so it works from sync and async tests alike.
//! DPS and the hub share the port:
//!
//! - DPS, api-version `2021-06-01`:
//!   `PUT /{idScope}/registrations/{registrationId}/register` answers 202
//!   with an `operationId`; `GET .../operations/{operationId}` answers
//!   `assigning`, then `assigned` (or `failed`). Any id scope is accepted,
//!   but a SAS token's audience must name the scope of the request.
//! - Hub, api-version `2017-11-08-preview`:
//!   `GET /devices/{deviceId}/modules`, `GET`/`PUT`/`DELETE
//!   /devices/{deviceId}/modules/{moduleId}`, authenticated as the device.
//!   An assigned registration puts its device in the hub with the
//!   credential it proved to DPS.
//!
//! Tests steer it with [`CloudSim::fail_next`] (injected DPS errors with
//! `Retry-After`), [`Enrollment::assigning_polls`], [`Enrollment::fail_with`],
//! [`CloudSim::reject_device`] and [`CloudSim::pause`]/[`CloudSim::resume`],
//! and inspect it with [`CloudSim::registrations`], [`CloudSim::hub_modules`]
//! and [`CloudSim::requests`]; [`CloudSim::verify_module_token`] checks a
//! module's own SAS token against its keys in the hub, and
//! [`CloudSim::tpm_issued_key`] lets a test without a TPM finish the TPM flow.
//! [`testpki::TestCa`] makes client certificates.
//!
//! Bounds: request bodies 64 KiB, headers 64 KiB, 30 s to send headers or a
//! body, 20 s for the TLS handshake, 256 connections.
//!
//! ```no_run
//! use edgesec_cloudsim::{CloudSim, Enrollment, EnrollmentAttestation};
//!
//! let sim = CloudSim::start();
//! sim.enroll(Enrollment::new(
//!     "device-1",
//!     EnrollmentAttestation::SymmetricKey { primary_key_b64: "AAECAwQFBgcICQoLDA0ODw==".into() },
//! ));
//! // point the daemon at sim.endpoint(), trusting sim.server_ca_pem() ...
//! assert!(sim.requests().is_empty());
//! ```

mod auth;
mod clock;
mod dps;
mod hub;
mod model;
mod reply;
mod router;
mod sas;
mod server;
mod state;
pub mod testpki;
mod tls;
mod tpm;
mod x509;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::auth::Credential;
use crate::server::Server;
use crate::state::{InjectedFailure, SimState};

pub use crate::model::{
    Enrollment, EnrollmentAttestation, HubDeviceAuth, HubModule, RegistrationRecord,
};
pub use crate::router::{DPS_API_VERSION, HUB_API_VERSION};
/// The TPM challenge builder, for the key service's import tests.
#[doc(hidden)]
pub use crate::tpm::challenge_for_tests as tpm_challenge_for_tests;

/// A running DPS + hub test service. Dropping it stops the service.
pub struct CloudSim {
    state: Arc<SimState>,
    server: Server,
    server_ca_pem: String,
    /// `Option` so that `Drop` can shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

impl CloudSim {
    /// Starts on `127.0.0.1` on a free port with a fresh server CA. Panics
    /// when that is impossible; [`CloudSim::try_start`] returns the error.
    pub fn start() -> CloudSim {
        CloudSim::try_start().unwrap_or_else(|e| panic!("cloudsim: cannot start: {e}"))
    }

    pub fn try_start() -> Result<CloudSim, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cloudsim")
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let listener = Server::bind(0).map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("listener address: {e}"))?
            .port();
        let state = Arc::new(SimState::new(format!("localhost:{port}")));
        let tls = tls::make_server_tls()?;
        let server = Server::start(
            runtime.handle().clone(),
            Arc::clone(&state),
            tls.config,
            listener,
        )?;
        Ok(CloudSim {
            state,
            server,
            server_ca_pem: tls.ca_pem,
            runtime: Some(runtime),
        })
    }

    /// The DPS global endpoint: `https://localhost:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.server.port())
    }

    /// `localhost:PORT`: the hub DPS assigns by default.
    pub fn hub_hostname(&self) -> String {
        self.state.hub_hostname.clone()
    }

    /// The port both services listen on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The CA (PEM) that clients must trust for this service.
    pub fn server_ca_pem(&self) -> String {
        self.server_ca_pem.clone()
    }

    /// Adds the enrollment, or replaces the one with the same registration
    /// id. Panics on a key that is not base64: that is a bug in the test.
    pub fn enroll(&self, enrollment: Enrollment) {
        let id = &enrollment.registration_id;
        match &enrollment.attestation {
            EnrollmentAttestation::SymmetricKey {
                primary_key_b64: key,
            }
            | EnrollmentAttestation::GroupSymmetricKey { group_key_b64: key } => {
                assert_base64(key, &format!("enrollment {id:?} key"));
            }
            EnrollmentAttestation::Tpm {
                endorsement_key_b64: Some(ek),
            } => {
                assert_base64(ek, &format!("enrollment {id:?} endorsement key"));
            }
            EnrollmentAttestation::Tpm {
                endorsement_key_b64: None,
            }
            | EnrollmentAttestation::X509 { .. } => {}
        }
        self.state.lock().enrollments.insert(id.clone(), enrollment);
    }

    /// Registers a device in the hub by hand (no DPS), keeping its modules
    /// if it is there already.
    pub fn add_hub_device(&self, device_id: &str, auth: HubDeviceAuth) {
        let credential = match auth {
            HubDeviceAuth::Sas { key_b64 } => Credential::HmacKey(assert_base64(
                &key_b64,
                &format!("hub device {device_id:?} key"),
            )),
            HubDeviceAuth::X509 { ca_pem } => Credential::X509 { ca_pem },
            HubDeviceAuth::TpmAuthKey { key } => Credential::HmacKey(key),
        };
        self.state
            .lock()
            .upsert_device(device_id, &self.state.hub_hostname, credential);
    }

    /// The next `n` DPS requests (register or poll) answer `status`, with a
    /// `Retry-After` header when given. `n == 0` cancels.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        let injected = (n > 0).then_some(InjectedFailure {
            remaining: n,
            status,
            retry_after_secs,
        });
        self.state.lock().injected = injected;
    }

    /// Stops accepting and closes open connections; returns when the port
    /// is closed.
    pub fn pause(&self) {
        self.server.pause();
    }

    /// Accepts again, on the same port.
    pub fn resume(&self) {
        self.server.resume();
    }

    /// While `reject`, every hub call for this device answers 401.
    pub fn reject_device(&self, device_id: &str, reject: bool) {
        let mut inner = self.state.lock();
        if reject {
            inner.rejected_devices.insert(device_id.to_owned());
        } else {
            inner.rejected_devices.remove(device_id);
        }
    }

    /// Every register PUT seen for this registration id, oldest first.
    pub fn registrations(&self, registration_id: &str) -> Vec<RegistrationRecord> {
        self.state
            .lock()
            .registrations
            .get(registration_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The device's modules in the hub, by module id.
    pub fn hub_modules(&self, device_id: &str) -> Vec<HubModule> {
        let inner = self.state.lock();
        let Some(device) = inner.devices.get(device_id) else {
            return Vec::new();
        };
        device
            .modules
            .iter()
            .map(|(id, m)| HubModule {
                module_id: id.clone(),
                generation_id: m.generation_id.clone(),
                primary_key: m.primary_key.clone(),
                secondary_key: m.secondary_key.clone(),
            })
            .collect()
    }

    /// The HMAC key inside the last TPM challenge sent for this
    /// registration, so a test without a TPM can finish the flow.
    pub fn tpm_issued_key(&self, registration_id: &str) -> Option<Vec<u8>> {
        let inner = self.state.lock();
        inner
            .tpm
            .get(registration_id)?
            .issued
            .as_ref()
            .map(|issued| issued.key.clone())
    }

    /// Checks a module's own SAS token (the `Authorization` value a module
    /// would send to the hub): audience `{hub}/devices/{d}/modules/{m}`, no
    /// `skn`, signed with the module's primary or secondary key in the hub.
    pub fn verify_module_token(
        &self,
        device_id: &str,
        module_id: &str,
        authorization: &str,
    ) -> Result<(), String> {
        hub::verify_module_token(&self.state, device_id, module_id, authorization)
    }

    /// Whether the hub knows this device (registered by hand or by DPS).
    pub fn hub_has_device(&self, device_id: &str) -> bool {
        self.state.lock().devices.contains_key(device_id)
    }

    /// Each request seen, oldest first: `"PUT /scope/registrations/r/register -> 202"`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().requests.iter().cloned().collect()
    }
}

impl Drop for CloudSim {
    fn drop(&mut self) {
        // Not `Runtime::drop`: that blocks, which panics inside async tests.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn assert_base64(b64: &str, what: &str) -> Vec<u8> {
    STANDARD
        .decode(b64)
        .unwrap_or_else(|_| panic!("cloudsim: {what} is not standard base64"))
}
