//! Shared pieces for the integration tests: a test service, a server in a
//! tempdir, and a raw HTTP/1.1 client that shows exactly what went over the wire.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgesec_http::{
    ApiError, Handler, Peer, Request, Response, ServerLimits, api_version, bind_unix_socket,
    json_response, parse_json_body, path_segments, serve,
};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// Guards every wait in the tests against hanging; never a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const VERSIONS: &[&str] = &["2020-07-07", "2022-08-03"];

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct WhoAmI {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
    /// The pid that the connection's pidfd refers to, per /proc fdinfo.
    pub pidfd_pid: Option<i32>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct SignRequest {
    #[serde(rename = "keyId")]
    pub key_id: String,
    pub parameters: SignParameters,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct SignParameters {
    pub digest: String,
}

/// The service the tests talk to. It records which connections it has seen.
#[derive(Default)]
pub struct TestService {
    pub connections: Mutex<HashSet<u64>>,
    pub requests: Mutex<usize>,
    /// `/slow` signals `entered`, then waits for `release`.
    pub entered: Notify,
    pub release: Notify,
}

impl TestService {
    pub fn connection_count(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    pub fn request_count(&self) -> usize {
        *self.requests.lock().unwrap()
    }

    async fn route(&self, peer: Peer, req: Request) -> Result<Response, ApiError> {
        let segments = path_segments(req.uri().path())?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (req.method().clone(), segments.as_slice()) {
            (Method::GET, ["whoami"]) => Ok(json_response(StatusCode::OK, &whoami(&peer))),
            (Method::POST, ["sign"]) => {
                api_version(&req, VERSIONS)?;
                let sign: SignRequest = parse_json_body(&req)?;
                Ok(json_response(StatusCode::OK, &sign))
            }
            (Method::GET, ["segments", ..]) => Ok(json_response(StatusCode::OK, &segments)),
            (Method::GET, ["slow"]) => {
                self.entered.notify_one();
                self.release.notified().await;
                Ok(json_response(StatusCode::OK, &"released"))
            }
            (_, ["whoami" | "sign" | "slow"]) => Err(ApiError::method_not_allowed()),
            _ => Err(ApiError::not_found()),
        }
    }
}

impl Handler for TestService {
    async fn call(&self, peer: Peer, req: Request) -> Response {
        self.connections.lock().unwrap().insert(peer.connection_id);
        *self.requests.lock().unwrap() += 1;
        self.route(peer, req)
            .await
            .unwrap_or_else(ApiError::into_response)
    }
}

fn whoami(peer: &Peer) -> WhoAmI {
    let pidfd_pid = peer.pidfd.as_ref().and_then(|fd| {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("Pid:"))
            .and_then(|pid| pid.trim().parse().ok())
    });
    WhoAmI {
        pid: peer.caller.pid,
        uid: peer.caller.uid,
        gid: peer.caller.gid,
        pidfd_pid,
    }
}

/// A running server on a socket in its own tempdir.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub service: Arc<TestService>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(limits: ServerLimits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        let listener = bind_unix_socket(&path, 0o660, None).unwrap();
        let service = Arc::new(TestService::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, limits, Arc::clone(&service), async {
            let _ = stopped.await;
        }));
        TestServer {
            dir,
            path,
            service,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks the server to shut down; returns the serve task to await.
    pub fn shutdown(&mut self) -> JoinHandle<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap()
    }
}

/// A response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// Sends raw bytes on a new connection and reads everything until the server
/// closes it. Write errors are ignored: the server may answer and close early.
pub async fn raw_exchange(path: &Path, request: &[u8]) -> RawResponse {
    let mut stream = UnixStream::connect(path).await.unwrap();
    let _ = stream.write_all(request).await;
    let bytes = read_until_close(&mut stream).await;
    parse_response(&bytes).unwrap_or_else(|| {
        panic!(
            "no complete response: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Reads until EOF (or a reset after data), with the hang guard.
pub async fn read_until_close(stream: &mut UnixStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return bytes,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => panic!("server neither answered nor closed"),
        }
    }
}

/// Reads exactly one response (by Content-Length) from a kept-alive connection.
pub async fn read_one_response(stream: &mut UnixStream) -> RawResponse {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(resp) = parse_response(&bytes) {
            return resp;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "connection closed mid-response");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Parses one complete response with a Content-Length body.
fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(bytes);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let resp = RawResponse {
        status,
        head: head.to_owned(),
        body: String::new(),
    };
    let len: usize = resp.header("content-length")?.parse().ok()?;
    if rest.len() < len {
        return None;
    }
    Some(RawResponse {
        body: rest[..len].to_owned(),
        ..resp
    })
}

/// A complete HTTP/1.1 request with a JSON body.
pub fn post(path_and_query: &str, content_type: Option<&str>, body: &str) -> Vec<u8> {
    let ct = content_type
        .map(|ct| format!("Content-Type: {ct}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn get(path_and_query: &str) -> Vec<u8> {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The `message` field of a JSON error body.
pub fn message(resp: &RawResponse) -> String {
    let value: serde_json::Value = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.body));
    value["message"].as_str().expect("no message").to_owned()
}

pub fn body_bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
