//! `GET /attestation/quote?nonce=HEX` (admins only): a TPM quote over keyd's measurement PCR
//! with the verifier's nonce, the quote's signature, the attestation key's public part and the
//! whole event log, as keyd made them (see `edgesec_integrity::Evidence`). Check it offline
//! with `edgesec attest verify`. Without a TPM keyd answers 501 "no TPM: software measurements
//! only".

use std::sync::Arc;

use edgesec_http::{ApiError, Request, Response, json_response, query_param};
use http::StatusCode;

use crate::daemon::Daemon;

pub async fn quote(d: &Arc<Daemon>, req: &Request) -> Result<Response, ApiError> {
    let nonce = query_param(req, "nonce")?
        .ok_or_else(|| ApiError::bad_request("the nonce query parameter is required (hex)"))?;
    let nonce = edgesec_integrity::from_hex(&nonce)
        .filter(|n| (1..=64).contains(&n.len()))
        .ok_or_else(|| ApiError::bad_request("nonce must be 1 to 64 bytes in hex"))?;
    match d.identities.keyd().quote(&nonce).await {
        Ok(evidence) => Ok(json_response(StatusCode::OK, &evidence)),
        Err(e) => match e.status() {
            Some(s) if s == StatusCode::NOT_IMPLEMENTED || s == StatusCode::BAD_REQUEST => {
                Err(ApiError::new(s, e.to_string()))
            }
            _ => Err(ApiError::internal_logged(&e)),
        },
    }
}

/// Reports one measurement into keyd's event log (marked as reported by a client). Failures are
/// logged, never fatal: keyd keeps its own measurements either way.
pub async fn report(keyd: &edgesec_keyd::client::KeydClient, kind: &str, name: &str, m: &str) {
    match keyd.report_measurement(kind, name, m).await {
        Ok(_) => {}
        Err(e) => tracing::warn!(kind, name, error = %e, "cannot report a measurement to keyd"),
    }
}

/// At boot: the daemon's config file and the agent's executable.
pub async fn report_boot(keyd: &edgesec_keyd::client::KeydClient, config: &crate::config::Config) {
    for (kind, path) in [
        ("daemon-config", &config.file),
        ("agent", &config.agent.command),
    ] {
        // Absolute, so the log names the same file whatever the daemon's working directory.
        let name = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        match edgesec_attest::measure_file(path) {
            Ok(m) => report(keyd, kind, &name.display().to_string(), &m.to_string()).await,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot measure for the event log")
            }
        }
    }
}
