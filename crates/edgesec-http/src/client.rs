//! HTTP/1.1 client for our own Unix-socket services.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client_error::ClientError;
use crate::client_pool::{Checkout, Pool};

/// Pass as `body` to [`UdsClient::request`] when there is none.
pub const NO_BODY: Option<&()> = None;

/// Tuning for [`UdsClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed for a whole exchange, including waiting for a free
    /// connection. Default 60 s.
    pub timeout: Duration,
    /// Most connections open at once; further requests wait. Keep it below
    /// the server's per-uid limit. Default 8.
    pub max_connections: usize,
    /// An idle connection older than this is not reused. Keep it below the
    /// server's `header_read_timeout` (10 s for ours). Default 5 s.
    pub idle_timeout: Duration,
    /// Largest response body accepted. Default 16 MiB.
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(60),
            max_connections: 8,
            idle_timeout: Duration::from_secs(5),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A client for one Unix socket, safe to share between tasks (cloning is
/// cheap and shares the connections).
#[derive(Clone)]
pub struct UdsClient {
    pool: Arc<Pool>,
    options: Arc<ClientOptions>,
}

impl UdsClient {
    /// A client for the socket at `path`. Nothing is connected until the
    /// first request.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_options(path, ClientOptions::default())
    }

    pub fn with_options(path: impl Into<PathBuf>, options: ClientOptions) -> Self {
        UdsClient {
            pool: Arc::new(Pool::new(
                path.into(),
                options.max_connections,
                options.idle_timeout,
            )),
            options: Arc::new(options),
        }
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        self.pool.path()
    }

    /// Sends a request with an optional JSON body and returns the status and
    /// body, whatever the status. `path_and_query` is like `/keys/k1?api-version=1`.
    pub async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let body = body
            .map(|b| serde_json::to_vec(b).map(Bytes::from))
            .transpose()
            .map_err(|e| ClientError::InvalidRequest(format!("cannot serialize body: {e}")))?;
        self.request_bytes(method, path_and_query, body).await
    }

    /// Like [`request`](Self::request), but maps a non-2xx status to
    /// [`ClientError::Api`] and parses a 2xx body as `T` (an empty body
    /// parses as JSON `null`, so `()` and `Option<_>` work for 204).
    pub async fn request_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.request(method, path_and_query, body).await?;
        if !status.is_success() {
            return Err(ClientError::api(status, &bytes));
        }
        let json: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(json).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET` returning JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, ClientError> {
        self.request_json(Method::GET, path_and_query, NO_BODY)
            .await
    }

    /// `POST` a JSON body, returning JSON.
    pub async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path_and_query: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.request_json(Method::POST, path_and_query, Some(body))
            .await
    }

    /// Sends a request with a body that is already JSON (sent with
    /// `Content-Type: application/json`).
    pub async fn request_bytes(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        if !path_and_query.starts_with('/') {
            return Err(ClientError::InvalidRequest(format!(
                "path must start with '/': {path_and_query:?}"
            )));
        }
        let uri: Uri = path_and_query.parse().map_err(|e| {
            ClientError::InvalidRequest(format!("bad path {path_and_query:?}: {e}"))
        })?;
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, uri, body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ClientError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no response from {} within {} s",
                    self.path().display(),
                    timeout.as_secs_f64()
                ),
            ))),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut conn = self.pool.checkout().await?;
        let build = || build_request(method.clone(), uri.clone(), body.clone());
        let response = match conn.sender.try_send_request(build()?).await {
            Ok(response) => response,
            Err(err) => {
                // A reused connection may have been closed by the server just
                // as we sent. Retry once on a fresh one when that is safe: the
                // request never left, or the method is idempotent (RFC 9110
                // section 9.2.2).
                let unsent = err.message().is_some();
                if !(conn.reused && (unsent || method.is_idempotent())) {
                    return Err(ClientError::Http(err.into_error()));
                }
                tracing::debug!("retrying on a new connection: {}", err.error());
                self.pool.reconnect(&mut conn).await?;
                conn.sender
                    .try_send_request(build()?)
                    .await
                    .map_err(|e| ClientError::Http(e.into_error()))?
            }
        };
        self.finish(conn, response).await
    }

    /// Reads the whole response body, then returns the connection to the pool.
    async fn finish(
        &self,
        conn: Checkout<'_>,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let status = response.status();
        let closing = response
            .headers()
            .get(CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let limit = self.options.max_response_bytes;
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|err| match err.downcast::<hyper::Error>() {
                Ok(err) => ClientError::Http(*err),
                Err(_) => ClientError::Decode(format!("response body larger than {limit} bytes")),
            })?
            .to_bytes();
        if !closing {
            self.pool.checkin(conn);
        }
        Ok((status, body))
    }
}

fn build_request(
    method: Method,
    uri: Uri,
    body: Option<Bytes>,
) -> Result<http::Request<Full<Bytes>>, ClientError> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        // HTTP/1.1 requires a Host header; a Unix socket has no host name.
        .header(HOST, HeaderValue::from_static("localhost"));
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| ClientError::InvalidRequest(e.to_string()))
}
