//! Reading a request body in full, within the size and time limits.

use std::time::Duration;

use http::header::{CONNECTION, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};

use crate::error::ApiError;
use crate::types::{Request, Response};

/// Turns a streaming hyper request into a [`Request`] with its body in memory.
///
/// A declared `Content-Length` over `max_bytes` is refused before any of the
/// body is read; a chunked body is cut off as soon as it passes the limit
/// (both 413). A body not received within `timeout` is a 408. On error the
/// response also says `Connection: close`, because the rest of the body is
/// still in the socket and the connection cannot be reused.
pub(crate) async fn collect_request(
    req: http::Request<Incoming>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let too_large = body
        .size_hint()
        .exact()
        .is_some_and(|len| len > max_bytes as u64);
    if too_large {
        return Err(closing(ApiError::payload_too_large(max_bytes)));
    }
    let collected =
        match tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(closing(ApiError::payload_too_large(max_bytes)));
            }
            Ok(Err(err)) => {
                tracing::debug!("cannot read request body: {err}");
                return Err(closing(ApiError::bad_request("cannot read request body")));
            }
            Err(_elapsed) => {
                return Err(closing(ApiError::request_timeout(format!(
                    "request body not received within {} s",
                    timeout.as_secs_f64()
                ))));
            }
        };
    Ok(http::Request::from_parts(parts, collected))
}

fn closing(err: ApiError) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}
