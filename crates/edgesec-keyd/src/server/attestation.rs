//! Measurement and attestation routes: `POST /measurements` (a client reports an event),
//! `GET /measurements` (the log and the PCR value), `POST /attestation/quote` (a TPM quote with
//! the log). Open to root, keyd's own user and the uids that have grants in keyd's config.

use edgesec_http::{ApiError, Peer, Request, Response, parse_json_body};
use edgesec_integrity::EventSource;
use edgesec_integrity::event::Reporter;
use edgesec_integrity::evidence::MeasurementReport;
use serde::{Deserialize, Serialize};

use super::{KeyService, ok};
use crate::measure::{Measurements, check_report};

/// `POST /attestation/quote`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteRequest {
    /// The verifier's nonce, hex (1 to 64 bytes).
    pub nonce: String,
}

/// Answer of `POST /measurements`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportResponse {
    /// False when an identical event was in the log already (nothing was extended).
    pub recorded: bool,
}

impl KeyService {
    fn measurements(&self, uid: u32) -> Result<&std::sync::Arc<Measurements>, ApiError> {
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        if uid != 0 && uid != own && !self.principals.knows(uid) {
            return Err(ApiError::forbidden(format!(
                "uid {uid} may not use measurements"
            )));
        }
        self.measure
            .as_ref()
            .ok_or_else(|| ApiError::not_found_msg("this key service keeps no measurements"))
    }

    pub(super) fn report_measurement(
        &self,
        peer: &Peer,
        req: &Request,
    ) -> Result<Response, ApiError> {
        let m = self.measurements(peer.caller.uid)?;
        let body: MeasurementReport = parse_json_body(req)?;
        check_report(&body.kind, &body.name, &body.measurement).map_err(ApiError::bad_request)?;
        let executable = m
            .connection_measurement(peer.connection_id)
            .unwrap_or_default();
        let reporter = Reporter {
            uid: peer.caller.uid,
            pid: peer.caller.pid.unwrap_or(0),
            executable,
        };
        let recorded = m
            .record(
                &body.kind,
                &body.name,
                &body.measurement,
                EventSource::Client,
                Some(reporter),
            )
            .map_err(ApiError::service_unavailable)?
            .is_some();
        Ok(ok(&ReportResponse { recorded }))
    }

    pub(super) fn measurement_log(&self, uid: u32) -> Result<Response, ApiError> {
        let m = self.measurements(uid)?;
        let log = m.log().map_err(|e| ApiError::internal_logged(&e))?;
        Ok(ok(&log))
    }

    pub(super) async fn quote(&self, uid: u32, req: &Request) -> Result<Response, ApiError> {
        let m = self.measurements(uid)?.clone();
        let body: QuoteRequest = parse_json_body(req)?;
        let nonce = edgesec_integrity::from_hex(&body.nonce)
            .filter(|n| (1..=64).contains(&n.len()))
            .ok_or_else(|| ApiError::bad_request("nonce must be 1 to 64 bytes in hex"))?;
        let evidence = tokio::task::spawn_blocking(move || m.quote(&nonce))
            .await
            .map_err(|e| ApiError::internal_logged(&e))??;
        Ok(ok(&evidence))
    }
}
