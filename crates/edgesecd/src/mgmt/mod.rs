//! The management API (IoT Edge compatible, api-versions 2018-06-28 to 2022-08-03).
//!
//! Who may call what: changes to modules and identities only the attested agent; reads,
//! start/stop/restart, logs and reprovisioning (`edgesec system reprovision`) also admins
//! (uids or a group from config).
//! Everyone else gets 403 `{"message":"forbidden"}`. Every decision is audited.

pub(crate) mod attestation;
mod identities;
mod logs;
mod modules;
mod status;
mod systeminfo;

use std::sync::Arc;

use edgesec_api::API_VERSIONS;
use edgesec_http::{ApiError, Handler, Peer, Request, Response, api_version, path_segments};
use http::Method;

use crate::attest::Attested;
use crate::audit::AuditRecord;
use crate::daemon::Daemon;

pub struct MgmtApi {
    pub daemon: Arc<Daemon>,
}

/// Who a route is open to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// The agent only.
    Agent,
    /// The agent and admins.
    Reader,
    /// Admins only.
    Admin,
}

/// A matched route: what it needs and what to run.
enum Route {
    ListModules,
    CreateModule,
    GetModule(String),
    UpdateModule(String),
    DeleteModule(String),
    PrepareUpdate(String),
    Action(String, &'static str),
    Logs(String),
    ListIdentities,
    CreateIdentity,
    UpdateIdentity(String),
    DeleteIdentity(String),
    SystemInfo,
    SystemResources,
    Status,
    Reprovision,
    Quote,
}

impl Route {
    fn access(&self) -> Access {
        match self {
            Route::CreateModule
            | Route::UpdateModule(_)
            | Route::DeleteModule(_)
            | Route::PrepareUpdate(_)
            | Route::CreateIdentity
            | Route::UpdateIdentity(_)
            | Route::DeleteIdentity(_) => Access::Agent,
            Route::Quote => Access::Admin,
            _ => Access::Reader,
        }
    }
}

fn route(method: &Method, segs: &[String]) -> Result<Route, ApiError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let owned = |x: &str| x.to_owned();
    Ok(match (method, s.as_slice()) {
        (&Method::GET, ["modules"] | ["modules", ""]) => Route::ListModules,
        (&Method::POST, ["modules"]) => Route::CreateModule,
        (&Method::GET, ["modules", n]) => Route::GetModule(owned(n)),
        (&Method::PUT, ["modules", n]) => Route::UpdateModule(owned(n)),
        (&Method::DELETE, ["modules", n]) => Route::DeleteModule(owned(n)),
        (&Method::POST, ["modules", n, "prepareupdate"]) => Route::PrepareUpdate(owned(n)),
        (&Method::POST, ["modules", n, action]) => {
            let action = match action.to_ascii_lowercase().as_str() {
                "start" => "start",
                "stop" => "stop",
                "restart" => "restart",
                _ => return Err(ApiError::not_found()),
            };
            Route::Action(owned(n), action)
        }
        (&Method::GET, ["modules", n, "logs"]) => Route::Logs(owned(n)),
        (&Method::GET, ["identities"] | ["identities", ""]) => Route::ListIdentities,
        (&Method::POST, ["identities"]) => Route::CreateIdentity,
        (&Method::PUT, ["identities", n]) => Route::UpdateIdentity(owned(n)),
        (&Method::DELETE, ["identities", n]) => Route::DeleteIdentity(owned(n)),
        (&Method::GET, ["systeminfo"]) => Route::SystemInfo,
        (&Method::GET, ["systeminfo", "resources"]) => Route::SystemResources,
        (&Method::POST, ["device", "reprovision"]) => Route::Reprovision,
        (&Method::GET, ["status"]) => Route::Status,
        (&Method::GET, ["attestation", "quote"]) => Route::Quote,
        (
            _,
            [
                "modules" | "identities" | "systeminfo" | "device" | "status" | "attestation",
                ..,
            ],
        ) => {
            return Err(ApiError::method_not_allowed());
        }
        _ => return Err(ApiError::not_found()),
    })
}

impl MgmtApi {
    /// Decides whether the caller may use a route; returns the caller's attestation either way.
    async fn authorize(&self, peer: &Peer, access: Access) -> (bool, Attested, &'static str) {
        let attested = self.daemon.attest(peer).await;
        if access != Access::Admin && attested.module().is_some_and(|m| self.daemon.is_agent(m)) {
            return (true, attested, "agent");
        }
        if access != Access::Agent && self.is_admin(peer) {
            return (true, attested, "admin");
        }
        // What the route needed comes first; an attestation failure says why the caller did
        // not count as the agent.
        let why = match (access, attested.reason()) {
            (Access::Agent, Some("not a process of any module") | None) => "not the agent",
            (Access::Reader, Some("not a process of any module") | None) => {
                "not the agent or an admin"
            }
            (Access::Admin, _) => "not an admin",
            (_, Some(reason)) => reason,
        };
        (false, attested, why)
    }

    fn is_admin(&self, peer: &Peer) -> bool {
        let m = &self.daemon.config.management;
        if m.admin_uids.contains(&peer.caller.uid) {
            return true;
        }
        let Some(gid) = m.admin_gid else { return false };
        gid == peer.caller.gid
            || peer
                .caller
                .pid
                .is_some_and(|pid| in_supplementary_group(pid, peer, gid))
    }

    async fn dispatch(&self, route: Route, req: &Request) -> Result<Response, ApiError> {
        let d = &self.daemon;
        match route {
            Route::ListModules => modules::list(d).await,
            Route::CreateModule => modules::create(d, req).await,
            Route::GetModule(n) => modules::get(d, &n).await,
            Route::UpdateModule(n) => modules::update(d, &n, req).await,
            Route::DeleteModule(n) => modules::delete(d, &n).await,
            Route::PrepareUpdate(n) => modules::prepare_update(d, &n, req).await,
            Route::Action(n, a) => modules::action(d, &n, a).await,
            Route::Logs(n) => logs::logs(d, &n, req).await,
            Route::ListIdentities => identities::list(d).await,
            Route::CreateIdentity => identities::create(d, req).await,
            Route::UpdateIdentity(n) => identities::update(d, &n).await,
            Route::DeleteIdentity(n) => identities::delete(d, &n).await,
            Route::SystemInfo => systeminfo::info(d),
            Route::SystemResources => systeminfo::resources(d),
            Route::Status => status::status(d).await,
            Route::Quote => attestation::quote(d, req).await,
            Route::Reprovision => identities::reprovision(d).await,
        }
    }
}

/// Whether the (pinned) caller has `gid` among its supplementary groups. The pin is checked
/// after reading, so a reused pid cannot lend its groups to the caller.
fn in_supplementary_group(pid: i32, peer: &Peer, gid: u32) -> bool {
    let Ok(pinned) = edgesec_attest::PinnedProcess::pin(pid, peer.pidfd.clone()) else {
        return false;
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let member = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)));
    member && pinned.recheck().is_ok()
}

impl Handler for MgmtApi {
    async fn call(&self, peer: Peer, req: Request) -> Response {
        let matched = api_version(&req, API_VERSIONS)
            .and_then(|_| path_segments(req.uri().path()))
            .and_then(|segs| route(req.method(), &segs));
        let route = match matched {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        let (allowed, attested, why) = self.authorize(&peer, route.access()).await;
        let response = if allowed {
            self.dispatch(route, &req)
                .await
                .unwrap_or_else(ApiError::into_response)
        } else {
            ApiError::forbidden("forbidden").into_response()
        };
        self.daemon.audit.record(&AuditRecord {
            socket: "management",
            pid: peer.caller.pid,
            uid: peer.caller.uid,
            module: attested.audit_name(),
            method: req.method().as_str(),
            route: req.uri().path(),
            decision: if allowed { "allow" } else { "deny" },
            reason: Some(why),
            status: response.status().as_u16(),
        });
        response
    }
}
