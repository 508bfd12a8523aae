//! `certificate/server` and `certificate/identity`.

use edgesec_api::workload::{CertificateResponse, PrivateKey, ServerCertificateRequest};
use edgesec_http::{ApiError, Request, Response, json_response, parse_json_body};
use edgesec_pki::{IssuedCert, PkiError};
use http::StatusCode;

use crate::daemon::Daemon;

fn pki_error(e: PkiError) -> ApiError {
    match e {
        PkiError::ClockNotSane { .. } | PkiError::NotReady(_) | PkiError::CaExpired { .. } => {
            ApiError::service_unavailable(format!("cannot issue certificates now: {e}"))
        }
        PkiError::InvalidRequest(_) => ApiError::bad_request(e.to_string()),
        other => ApiError::internal_logged(&other),
    }
}

fn response(cert: IssuedCert) -> Response {
    json_response(
        StatusCode::CREATED,
        &CertificateResponse {
            private_key: PrivateKey {
                key_type: "key".into(),
                bytes: cert.private_key_pem.to_string(),
            },
            expiration: cert.expiration_rfc3339(),
            certificate: cert.certificate_pem,
        },
    )
}

async fn issue(
    d: &Daemon,
    f: impl FnOnce(&edgesec_pki::CertAuthority) -> Result<IssuedCert, PkiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let ca = d.ca.clone();
    let cert = tokio::task::spawn_blocking(move || f(&ca))
        .await
        .map_err(|e| ApiError::internal_logged(&e))?
        .map_err(pki_error)?;
    Ok(response(cert))
}

pub async fn server(d: &Daemon, module: &str, req: &Request) -> Result<Response, ApiError> {
    let body: ServerCertificateRequest = parse_json_body(req)?;
    if body.common_name.is_empty() || body.common_name.len() > 253 {
        return Err(ApiError::unprocessable(
            "commonName must be 1 to 253 characters",
        ));
    }
    let module = module.to_owned();
    issue(d, move |ca| {
        ca.issue_server_cert(&module, &body.common_name)
    })
    .await
}

pub async fn identity(d: &Daemon, module: &str) -> Result<Response, ApiError> {
    let (hub, device) = d.hub_and_device();
    let uri = edgesec_pki::module_identity_uri(&hub, &device, module);
    let module = module.to_owned();
    issue(d, move |ca| ca.issue_identity_cert(&module, &uri)).await
}
