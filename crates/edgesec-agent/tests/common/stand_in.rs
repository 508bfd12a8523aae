//! A STAND-IN FOR edgesecd, for these tests only: the daemon does not exist yet.
//!
//! It serves the management API routes the agent uses, over a Unix socket, with edgesec-http,
//! holds the modules and identities in memory, and records every call that changes something.
//! Modules do not run anything: `start` marks a module running, `stop` marks it stopped with
//! exit code 0, and tests mark one failed with [`StandIn::fail`]. Like the real daemon, it
//! accepts changes only from the agent's process (by the kernel-reported pid).
//! End-to-end tests against the real edgesecd are to be added once it exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use edgesec_api::API_VERSIONS;
use edgesec_api::mgmt::{
    ExitStatus, Identity, IdentityList, IdentitySpec, ModuleDetails, ModuleList, ModuleSpec,
    RuntimeStatus, Status,
};
use edgesec_http::{
    ApiError, Handler, Peer, Request, Response, ServerLimits, api_version, bind_unix_socket,
    full_body, json_response, parse_json_body, path_segments, query_param, serve,
};
use http::{Method, StatusCode};
use tokio::sync::oneshot;

/// What the stand-in holds.
#[derive(Default)]
pub struct State {
    pub modules: BTreeMap<String, ModuleDetails>,
    pub identities: BTreeMap<String, Identity>,
    /// Calls that change something, like `POST /modules/web/start` or `PUT /modules/web start=true`.
    pub calls: Vec<String>,
    /// How many `GET /modules` were answered: one per agent pass.
    pub lists: usize,
    /// The pid allowed to make changes; `None` allows nobody.
    pub agent_pid: Option<i32>,
    runs: u32,
}

impl State {
    /// Adds a module that has run before and is running now.
    pub fn add_running(&mut self, name: &str, command: &str) {
        let mut m = details(&ModuleSpec {
            name: name.into(),
            module_type: "process".into(),
            image_pull_policy: None,
            config: edgesec_api::mgmt::ModuleConfig {
                settings: serde_json::json!({"command": command, "args": []}),
                env: vec![],
            },
        });
        self.run(&mut m);
        self.modules.insert(name.into(), m);
    }

    pub fn add_identity(&mut self, name: &str) {
        self.identities.insert(name.into(), identity(name));
    }

    pub fn status(&self, name: &str) -> Option<&str> {
        self.modules
            .get(name)
            .map(|m| m.status.runtime_status.status.as_str())
    }

    /// How many calls were recorded whose text is `call`.
    pub fn count(&self, call: &str) -> usize {
        self.calls.iter().filter(|c| *c == call).count()
    }

    /// Index of the first call `call`.
    pub fn position(&self, call: &str) -> Option<usize> {
        self.calls.iter().position(|c| c == call)
    }

    fn run(&mut self, m: &mut ModuleDetails) {
        self.runs += 1;
        m.status = Status {
            start_time: Some(format!("2026-01-01T00:00:{:02}Z", self.runs % 60)),
            exit_status: None,
            runtime_status: RuntimeStatus {
                status: "running".into(),
                description: None,
            },
        };
    }
}

fn details(spec: &ModuleSpec) -> ModuleDetails {
    ModuleDetails {
        id: "id".into(),
        name: spec.name.clone(),
        module_type: spec.module_type.clone(),
        config: spec.config.clone(),
        status: Status {
            start_time: None,
            exit_status: None,
            runtime_status: RuntimeStatus {
                status: "stopped".into(),
                description: None,
            },
        },
    }
}

fn identity(name: &str) -> Identity {
    Identity {
        module_id: name.into(),
        managed_by: "iotedge".into(),
        generation_id: format!("gen-{name}"),
        auth_type: "sas".into(),
    }
}

fn exited(m: &mut ModuleDetails, status: &str, code: i32) {
    m.status.runtime_status.status = status.into();
    m.status.exit_status = Some(ExitStatus {
        exit_time: "2026-01-01T00:01:00Z".into(),
        status_code: code.to_string(),
    });
}

/// The stand-in daemon, serving until dropped.
pub struct StandIn {
    pub socket: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

impl StandIn {
    /// Serves on `dir/mgmt.sock`, starting from `state`. Must be called inside a tokio runtime.
    pub fn start(dir: &Path, state: State) -> StandIn {
        let socket = dir.join("mgmt.sock");
        let listener = bind_unix_socket(&socket, 0o600, None).expect("bind stand-in socket");
        let state = Arc::new(Mutex::new(state));
        let (stop, stopped) = oneshot::channel();
        let handler = Arc::new(Daemon {
            state: Arc::clone(&state),
        });
        tokio::spawn(serve(listener, ServerLimits::default(), handler, async {
            let _ = stopped.await;
        }));
        StandIn {
            socket,
            state,
            stop: Some(stop),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Makes a running module exit with `code` (non-zero: `failed`).
    pub fn fail(&self, name: &str, code: i32) {
        let mut s = self.state();
        let m = s.modules.get_mut(name).expect("module exists");
        exited(m, if code == 0 { "stopped" } else { "failed" }, code);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Daemon {
    state: Arc<Mutex<State>>,
}

impl Handler for Daemon {
    async fn call(&self, peer: Peer, req: Request) -> Response {
        self.route(&peer, &req)
            .unwrap_or_else(ApiError::into_response)
    }
}

fn no_content() -> Response {
    let mut r = Response::new(full_body(""));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn not_modified() -> Response {
    let mut r = Response::new(full_body(""));
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

impl Daemon {
    fn route(&self, peer: &Peer, req: &Request) -> Result<Response, ApiError> {
        api_version(req, API_VERSIONS)?;
        let segments = path_segments(req.uri().path())?;
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let mut s = self.state.lock().unwrap();
        let method = req.method().clone();
        if method != Method::GET {
            if s.agent_pid.is_none() || s.agent_pid != peer.caller.pid {
                return Err(ApiError::forbidden("forbidden"));
            }
            let mut call = format!("{method} /{}", seg.join("/"));
            if let Some(start) = query_param(req, "start")? {
                call = format!("{call} start={start}");
            }
            s.calls.push(call);
        }
        match (method, seg.as_slice()) {
            (Method::GET, ["modules"]) => {
                s.lists += 1;
                let modules = s.modules.values().cloned().collect();
                Ok(json_response(StatusCode::OK, &ModuleList { modules }))
            }
            (Method::POST, ["modules"]) => {
                let spec: ModuleSpec = parse_json_body(req)?;
                if s.modules.contains_key(&spec.name) {
                    return Err(ApiError::conflict("module exists"));
                }
                let m = details(&spec);
                s.modules.insert(spec.name.clone(), m.clone());
                Ok(json_response(StatusCode::CREATED, &m))
            }
            (Method::PUT, ["modules", name]) => {
                let spec: ModuleSpec = parse_json_body(req)?;
                let start = match query_param(req, "start")?.as_deref() {
                    Some("true") => true,
                    Some("false") | None => false,
                    Some(_) => return Err(ApiError::bad_request("invalid parameter: start")),
                };
                if spec.name != *name || !s.modules.contains_key(*name) {
                    return Err(ApiError::not_found());
                }
                let mut m = details(&spec);
                if start {
                    s.run(&mut m);
                }
                s.modules.insert(spec.name.clone(), m.clone());
                Ok(json_response(StatusCode::CREATED, &m))
            }
            (Method::DELETE, ["modules", name]) => match s.modules.remove(*name) {
                Some(_) => Ok(no_content()),
                None => Err(ApiError::not_found()),
            },
            (Method::POST, ["modules", name, action]) => {
                let mut m = s.modules.remove(*name).ok_or_else(ApiError::not_found)?;
                let running = m.status.runtime_status.status == "running";
                let answer = match *action {
                    "start" if running => not_modified(),
                    "stop" if !running => not_modified(),
                    "start" | "restart" => {
                        s.run(&mut m);
                        no_content()
                    }
                    "stop" => {
                        exited(&mut m, "stopped", 0);
                        no_content()
                    }
                    _ => return Err(ApiError::not_found()),
                };
                s.modules.insert(name.to_string(), m);
                Ok(answer)
            }
            (Method::GET, ["identities"]) => {
                let identities = s.identities.values().cloned().collect();
                Ok(json_response(StatusCode::OK, &IdentityList { identities }))
            }
            (Method::POST, ["identities"]) => {
                let spec: IdentitySpec = parse_json_body(req)?;
                let id = identity(&spec.module_id);
                s.identities.insert(spec.module_id, id.clone());
                Ok(json_response(StatusCode::OK, &id))
            }
            (Method::DELETE, ["identities", name]) => match s.identities.remove(*name) {
                Some(_) => Ok(no_content()),
                None => Err(ApiError::not_found()),
            },
            _ => Err(ApiError::not_found()),
        }
    }
}
