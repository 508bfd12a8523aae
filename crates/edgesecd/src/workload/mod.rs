//! The workload API (IoT Edge compatible): what modules call to sign, encrypt, get certificates
//! and the trust bundle. Served on the shared workload socket and on one socket per module.
//!
//! Every call that acts for a module attests the caller (see `attest.rs`): the module in the
//! path must be the module whose process is calling, running its registered executable; on a
//! module's own socket only that module is served at all. Every decision is audited.

mod certs;
mod crypto;
pub mod sockets;

use std::sync::Arc;

use edgesec_api::API_VERSIONS;
use edgesec_api::mgmt::ModuleList;
use edgesec_api::workload::TrustBundleResponse;
use edgesec_http::{
    ApiError, Handler, Peer, Request, Response, api_version, json_response, path_segments,
};
use http::{Method, StatusCode};

use crate::attest::Attested;
use crate::audit::AuditRecord;
use crate::daemon::Daemon;

/// Which socket a request came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Socket {
    Shared,
    Module(String),
}

pub struct WorkloadApi {
    pub daemon: Arc<Daemon>,
    pub socket: Socket,
}

enum Route {
    ListModules,
    TrustBundle,
    ManifestTrustBundle,
    Sign(String),
    Encrypt(String, String),
    Decrypt(String, String),
    IdentityCert(String),
    ServerCert(String),
}

impl Route {
    /// The module a route acts for, if any.
    fn module(&self) -> Option<&str> {
        match self {
            Route::Sign(m)
            | Route::Encrypt(m, _)
            | Route::Decrypt(m, _)
            | Route::IdentityCert(m)
            | Route::ServerCert(m) => Some(m),
            _ => None,
        }
    }
}

fn route(method: &Method, segs: &[String]) -> Result<Route, ApiError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let o = |x: &str| x.to_owned();
    Ok(match (method, s.as_slice()) {
        (&Method::GET, ["modules"] | ["modules", ""]) => Route::ListModules,
        (&Method::GET, ["trust-bundle"]) => Route::TrustBundle,
        (&Method::GET, ["manifest-trust-bundle"]) => Route::ManifestTrustBundle,
        (&Method::POST, ["modules", m, "genid", _, "sign"]) => Route::Sign(o(m)),
        (&Method::POST, ["modules", m, "genid", g, "encrypt"]) => Route::Encrypt(o(m), o(g)),
        (&Method::POST, ["modules", m, "genid", g, "decrypt"]) => Route::Decrypt(o(m), o(g)),
        (&Method::POST, ["modules", m, "certificate", "identity"]) => Route::IdentityCert(o(m)),
        (&Method::POST, ["modules", m, "genid", _, "certificate", "server"]) => {
            Route::ServerCert(o(m))
        }
        (_, ["modules" | "trust-bundle" | "manifest-trust-bundle", ..]) => {
            return Err(ApiError::method_not_allowed());
        }
        _ => return Err(ApiError::not_found()),
    })
}

/// Module names compare without a leading `$`, as IoT Edge does (`$edgeHub` is `edgeHub`).
pub fn same_module(a: &str, b: &str) -> bool {
    a.strip_prefix('$').unwrap_or(a) == b.strip_prefix('$').unwrap_or(b)
}

impl WorkloadApi {
    /// Whether the caller may make this call, and why not.
    async fn authorize(&self, peer: &Peer, route: &Route) -> (Result<(), &'static str>, Attested) {
        let needs_caller = match (&self.socket, route.module()) {
            (Socket::Shared, None) => None,
            (Socket::Shared, Some(m)) => Some(m.to_owned()),
            (Socket::Module(own), path) => {
                if path.is_some_and(|p| !same_module(p, own)) {
                    return (
                        Err("path names another module than this socket's"),
                        Attested::Nobody {
                            reason: "",
                            claimed: None,
                        },
                    );
                }
                Some(own.clone())
            }
        };
        let Some(expected) = needs_caller else {
            return (
                Ok(()),
                Attested::Nobody {
                    reason: "open route",
                    claimed: None,
                },
            );
        };
        let attested = self.daemon.attest(peer).await;
        let verdict = match attested.module() {
            Some(m) if same_module(m, &expected) => Ok(()),
            Some(_) => Err("caller is another module"),
            None => Err(attested.reason().unwrap_or("not a module")),
        };
        (verdict, attested)
    }

    async fn dispatch(&self, route: Route, req: &Request) -> Result<Response, ApiError> {
        let d = &self.daemon;
        match route {
            // Open to every local user, as in IoT Edge; module environments often hold
            // credentials, so they are left out here (the management API has them).
            Route::ListModules => {
                let mut modules = d.list_modules().await;
                for m in &mut modules {
                    m.config.env.clear();
                }
                Ok(json_response(StatusCode::OK, &ModuleList { modules }))
            }
            Route::TrustBundle => {
                // The bundle is kept in memory: a clone, nothing that blocks.
                let pem = d.ca.trust_bundle_pem().map_err(|e| {
                    ApiError::not_found_msg(format!("trust bundle not available: {e}"))
                })?;
                Ok(json_response(
                    StatusCode::OK,
                    &TrustBundleResponse { certificate: pem },
                ))
            }
            // No manifest signing is configured: IoT Edge answers an empty bundle then.
            Route::ManifestTrustBundle => Ok(json_response(
                StatusCode::OK,
                &TrustBundleResponse {
                    certificate: String::new(),
                },
            )),
            Route::Sign(m) => crypto::sign(d, &m, req).await,
            Route::Encrypt(m, g) => crypto::encrypt(d, &m, &g, req).await,
            Route::Decrypt(m, g) => crypto::decrypt(d, &m, &g, req).await,
            Route::IdentityCert(m) => certs::identity(d, &m).await,
            Route::ServerCert(m) => certs::server(d, &m, req).await,
        }
    }
}

impl Handler for WorkloadApi {
    async fn call(&self, peer: Peer, req: Request) -> Response {
        let matched = api_version(&req, API_VERSIONS)
            .and_then(|_| path_segments(req.uri().path()))
            .and_then(|segs| route(req.method(), &segs));
        let route = match matched {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        let (verdict, attested) = self.authorize(&peer, &route).await;
        let response = match verdict {
            Ok(()) => self
                .dispatch(route, &req)
                .await
                .unwrap_or_else(ApiError::into_response),
            Err(_) => ApiError::forbidden("forbidden").into_response(),
        };
        let socket = match &self.socket {
            Socket::Shared => "workload".to_owned(),
            Socket::Module(m) => format!("workload:{m}"),
        };
        self.daemon.audit.record(&AuditRecord {
            socket: &socket,
            pid: peer.caller.pid,
            uid: peer.caller.uid,
            module: attested.audit_name(),
            method: req.method().as_str(),
            route: req.uri().path(),
            decision: if verdict.is_ok() { "allow" } else { "deny" },
            reason: verdict.err(),
            status: response.status().as_u16(),
        });
        response
    }
}
