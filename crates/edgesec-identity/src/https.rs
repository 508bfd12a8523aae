//! A small HTTPS/1.1 client for DPS and IoT Hub: one TLS connection per request (these calls
//! are rare), through a proxy when one applies, with the whole exchange bounded by a timeout
//! and the answer's body by a size limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{CloudError, service_message};
use crate::proxy::{Proxy, ProxySetting, split_host_port};
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::tls::{ClientIdentity, client_config, root_store};

/// The largest answer body read from the cloud.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How cloud calls are made: trust, proxy, time and size limits, retries.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// CA certificates trusted besides the system's (PEM files).
    pub trusted_ca_files: Vec<std::path::PathBuf>,
    pub proxy: ProxySetting,
    /// One request: connecting, TLS, sending and reading the whole answer.
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub retry: RetryPolicy,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            trusted_ca_files: Vec::new(),
            proxy: ProxySetting::FromEnv,
            timeout: Duration::from_secs(70),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retry: RetryPolicy::default(),
        }
    }
}

/// `https://host[:port][/base]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The path prefix without a trailing `/` (empty for none).
    pub base: String,
}

impl Endpoint {
    /// An `https://` URL, or a bare `host[:port]` (as DPS names an assigned hub).
    pub fn parse(url: &str) -> Result<Endpoint, CloudError> {
        let rest = match url.split_once("://") {
            Some(("https", rest)) => rest,
            Some(_) => {
                return Err(CloudError::Setup(format!(
                    "{url:?}: only https:// endpoints are supported"
                )));
            }
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority, 443)
            .filter(|(h, _)| !h.contains('@'))
            .ok_or_else(|| CloudError::Setup(format!("{url:?} is not a host[:port] URL")))?;
        Ok(Endpoint {
            host,
            port,
            base: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `Host` header value.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// An answer, body read in full.
#[derive(Debug)]
pub struct CloudResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl CloudResponse {
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
    }

    /// The body as `T`, or a protocol error naming the service.
    pub fn json<T: serde::de::DeserializeOwned>(&self, service: &str) -> Result<T, CloudError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CloudError::Protocol(format!("{service} sent an unreadable answer: {e}")))
    }

    /// A [`CloudError::Status`] for this (error) answer.
    pub fn error(&self, service: &'static str) -> CloudError {
        CloudError::Status {
            service,
            status: self.status.as_u16(),
            message: service_message(&self.body),
            retry_after: self.retry_after(),
        }
    }
}

#[derive(Clone)]
pub struct HttpsClient {
    tls: TlsConnector,
    proxy: Option<Proxy>,
    options: CloudOptions,
}

impl HttpsClient {
    /// A client trusting the system's roots and `options.trusted_ca_files`, presenting
    /// `identity` when the server asks for a client certificate.
    pub fn new(
        options: CloudOptions,
        identity: Option<ClientIdentity>,
    ) -> Result<Self, CloudError> {
        let roots = root_store(&options.trusted_ca_files)?;
        let config: ClientConfig = client_config(roots, identity);
        Ok(HttpsClient {
            tls: TlsConnector::from(Arc::new(config)),
            proxy: Proxy::resolve(&options.proxy)?,
            options,
        })
    }

    pub fn options(&self) -> &CloudOptions {
        &self.options
    }

    /// One request (no retries), bounded by the configured timeout.
    pub async fn send(
        &self,
        method: Method,
        endpoint: &Endpoint,
        path_and_query: &str,
        headers: &[(HeaderName, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<CloudResponse, CloudError> {
        let exchange = self.exchange(method.clone(), endpoint, path_and_query, headers, body);
        match tokio::time::timeout(self.options.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CloudError::Unreachable(format!(
                "{method} https://{}{} got no answer within {} s",
                endpoint.authority(),
                strip_query(path_and_query),
                self.options.timeout.as_secs()
            ))),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        endpoint: &Endpoint,
        path_and_query: &str,
        headers: &[(HeaderName, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<CloudResponse, CloudError> {
        let target = format!("{}:{}", endpoint.host, endpoint.port);
        let tcp = match &self.proxy {
            Some(p) if p.applies_to(&endpoint.host) => {
                p.connect(&endpoint.host, endpoint.port).await?
            }
            _ => TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|e| CloudError::Unreachable(format!("cannot connect to {target}: {e}")))?,
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| CloudError::Setup(format!("{:?} is not a host name", endpoint.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| CloudError::Unreachable(format!("TLS with {target} failed: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| CloudError::Unreachable(format!("HTTP with {target}: {e}")))?;
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let _abort_on_return = AbortOnDrop(conn_task);

        let payload = body.map(json_body).unwrap_or_default();
        let uri = format!("{}{}", endpoint.base, path_and_query);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(HOST, endpoint.authority())
            .header(
                http::header::USER_AGENT,
                concat!("edgesec/", env!("CARGO_PKG_VERSION")),
            )
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .header(CONTENT_LENGTH, payload.len());
        }
        for (k, v) in headers {
            let v = HeaderValue::from_str(v).map_err(|_| {
                CloudError::Setup(format!("header {k} has a value HTTP cannot carry"))
            })?;
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(payload))
            .map_err(|e| CloudError::Setup(format!("cannot build the request for {uri:?}: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CloudError::Unreachable(format!("{target} closed the connection: {e}")))?;
        let (parts, body) = resp.into_parts();
        let max = self.options.max_response_bytes;
        let body = Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    CloudError::Protocol(format!("{target} sent an answer over {max} bytes"))
                } else {
                    CloudError::Unreachable(format!("reading the answer of {target}: {e}"))
                }
            })?
            .to_bytes();
        Ok(CloudResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A JSON body in one buffer of exactly its size (so serializing leaves no reallocated copies
/// behind), wiped when hyper is done with it: bodies can carry module keys.
fn json_body(v: &serde_json::Value) -> Bytes {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, v).expect("JSON values serialize");
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(count.0));
    serde_json::to_writer(&mut *buf, v).expect("JSON values serialize");
    Bytes::from_owner(ZeroizedBytes(buf))
}

struct ZeroizedBytes(zeroize::Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn strip_query(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_exact() {
        let v = serde_json::json!({ "a": "x".repeat(1000), "b": [1, 2] });
        let b = json_body(&v);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&b).unwrap(), v);
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("https://global.azure-devices-provisioning.net").unwrap(),
            Endpoint {
                host: "global.azure-devices-provisioning.net".into(),
                port: 443,
                base: String::new()
            }
        );
        let e = Endpoint::parse("https://localhost:8443/dps/").unwrap();
        assert_eq!(
            (e.port, e.base.as_str(), e.authority()),
            (8443, "/dps", "localhost:8443".to_owned())
        );
        assert_eq!(Endpoint::parse("hub.example:9000").unwrap().port, 9000);
        assert!(Endpoint::parse("http://hub").is_err());
        assert!(Endpoint::parse("https://").is_err());
        assert!(Endpoint::parse("https://u@h").is_err());
    }
}
