//! A small HTTPS client for the sim's tests: one connection per request (or
//! a kept connection), trusting the sim's CA, with an optional client
//! certificate, plus SAS token minting with aws-lc-rs.

#![allow(dead_code)] // each test file uses a different part

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use edgesec_cloudsim::CloudSim;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const DPS_API: &str = "api-version=2021-06-01";
pub const HUB_API: &str = "api-version=2017-11-08-preview";
pub const SCOPE: &str = "0ne00C0FFEE";
/// Generous: the machine running the tests may be slow and busy.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// Everything but unreserved characters is escaped.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// `Value::Null` for an empty body.
    pub body: Value,
}

pub struct Client {
    config: Arc<ClientConfig>,
    port: u16,
}

impl Client {
    pub fn new(sim: &CloudSim) -> Client {
        let config = client_config(sim).with_no_client_auth();
        Client {
            config: Arc::new(config),
            port: sim.port(),
        }
    }

    /// A client that presents `chain_pem` (leaf first) with `key_pem`.
    pub fn with_cert(sim: &CloudSim, chain_pem: &str, key_pem: &str) -> Client {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("client chain PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key PEM");
        let config = client_config(sim)
            .with_client_auth_cert(chain, key)
            .expect("client cert config");
        Client {
            config: Arc::new(config),
            port: sim.port(),
        }
    }

    /// Opens one TLS connection; requests on it reuse it (keep-alive).
    pub async fn connect(&self) -> Result<Connection, String> {
        self.connect_as("localhost").await
    }

    /// Opens a connection expecting the server to be `server_name`.
    pub async fn connect_as(&self, server_name: &str) -> Result<Connection, String> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("server name: {e}"))?;
        let tls = TlsConnector::from(Arc::clone(&self.config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            port: self.port,
        })
    }

    /// One request on a fresh connection.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        self.send_with(method, path_and_query, &headers(authorization), body)
            .await
    }

    /// One request with these headers on a fresh connection.
    pub async fn send_with(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut connection = self.connect().await?;
        connection.send(method, path_and_query, headers, body).await
    }

    /// A DPS register PUT for `registration_id` with `body`.
    pub async fn register(
        &self,
        registration_id: &str,
        authorization: Option<&str>,
        body: &Value,
    ) -> Reply {
        self.send(
            Method::PUT,
            &register_path(registration_id),
            authorization,
            Some(body),
        )
        .await
        .unwrap()
    }

    /// One request with arbitrary headers and a raw body.
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut connection = self.connect().await?;
        connection
            .send_bytes(method, path_and_query, headers, body)
            .await
    }
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    port: u16,
}

impl Connection {
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut headers = headers.to_vec();
        let bytes = match body {
            Some(body) => {
                headers.push(("content-type", "application/json".to_owned()));
                serde_json::to_vec(body).expect("JSON body")
            }
            None => Vec::new(),
        };
        self.send_bytes(method, path_and_query, &headers, bytes)
            .await
    }

    pub async fn send_bytes(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", format!("localhost:{}", self.port));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let exchange = async {
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| format!("reply is not JSON: {e}"))?
            };
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_DEADLINE, exchange)
            .await
            .map_err(|_| "request timed out".to_owned())?
    }
}

fn client_config(
    sim: &CloudSim,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(sim.server_ca_pem().as_bytes()) {
        roots
            .add(cert.expect("server CA PEM"))
            .expect("add server CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
}

pub fn headers(authorization: Option<&str>) -> Vec<(&'static str, String)> {
    authorization
        .map(|a| vec![("authorization", a.to_owned())])
        .unwrap_or_default()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A SAS token the way devices mint them: the audience lowercased and
/// URL-encoded, HMAC-SHA256 over "<sr>\n<se>".
pub fn sas_token(audience: &str, key: &[u8], expiry: u64, key_name: Option<&str>) -> String {
    let sr = utf8_percent_encode(&audience.to_lowercase(), ENCODE).to_string();
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let signature = STANDARD.encode(hmac::sign(&key, format!("{sr}\n{expiry}").as_bytes()));
    let sig = utf8_percent_encode(&signature, ENCODE);
    let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}");
    if let Some(name) = key_name {
        token.push_str(&format!("&skn={name}"));
    }
    token
}

/// A DPS token for `registration_id`, valid for a minute.
pub fn dps_token(registration_id: &str, key: &[u8]) -> String {
    sas_token(
        &format!("{SCOPE}/registrations/{registration_id}"),
        key,
        now() + 60,
        Some("registration"),
    )
}

/// A hub device token, valid for a minute.
pub fn hub_token(sim: &CloudSim, device_id: &str, key: &[u8]) -> String {
    sas_token(
        &format!("{}/devices/{device_id}", sim.hub_hostname()),
        key,
        now() + 60,
        None,
    )
}

/// The register body of `registration_id` with nothing else.
pub fn register_body(registration_id: &str) -> Value {
    serde_json::json!({ "registrationId": registration_id })
}

pub fn register_path(registration_id: &str) -> String {
    format!("/{SCOPE}/registrations/{registration_id}/register?{DPS_API}")
}

pub fn operation_path(registration_id: &str, operation_id: &str) -> String {
    format!("/{SCOPE}/registrations/{registration_id}/operations/{operation_id}?{DPS_API}")
}

pub fn module_path(device_id: &str, module_id: &str) -> String {
    format!("/devices/{device_id}/modules/{module_id}?{HUB_API}")
}

pub fn key_b64(key: &[u8]) -> String {
    STANDARD.encode(key)
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("base64")
}
