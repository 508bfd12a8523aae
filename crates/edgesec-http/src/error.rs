//! The JSON error every API answers with: `{"message": "..."}`.

use std::fmt;

use http::StatusCode;

use crate::json::json_response;
use crate::request_id::request_id;
use crate::types::Response;

/// Longest message we echo back when it may contain caller-supplied text.
pub(crate) const MAX_ECHO_CHARS: usize = 200;

/// An error answer: an HTTP status and a message for the caller.
///
/// The message is shown to the caller as is, so it must never carry secrets or
/// internal details; use [`ApiError::internal`] for unexpected failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `400 Bad Request`, `missing request body`.
    pub fn missing_body() -> Self {
        Self::bad_request("missing request body")
    }

    /// `400 Bad Request`, `method not allowed`: the daemon we stand in for answers a known
    /// path with an unsupported method with 400, not 405.
    pub fn method_not_allowed() -> Self {
        Self::bad_request("method not allowed")
    }

    /// `403 Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// `404 Not Found`, `not found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    /// `404 Not Found` with a specific message (e.g. `key "x" not found`).
    pub fn not_found_msg(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `408 Request Timeout`.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, message)
    }

    /// `409 Conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// `413 Payload Too Large`, naming the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    }

    /// `415 Unsupported Media Type`, `request body must be application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request body must be application/json",
        )
    }

    /// `422 Unprocessable Entity`. The message is cut to about 200
    /// characters because it often quotes caller input.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            truncate_chars(message.into(), MAX_ECHO_CHARS),
        )
    }

    /// `503 Service Unavailable`.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// `500 Internal Server Error` with the message
    /// `internal error (request id <id>)`. The caller
    /// logs the cause together with the same id; the cause is never returned.
    pub fn internal(request_id: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (request id {request_id})"),
        )
    }

    /// Makes a new request id, logs `cause` with it at error level, and returns
    /// the matching [`ApiError::internal`].
    pub fn internal_logged(cause: &dyn fmt::Display) -> Self {
        let id = request_id();
        tracing::error!(request_id = %id, "internal error: {cause}");
        Self::internal(&id)
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> Response {
        json_response(
            self.status,
            &ErrorBody {
                message: &self.message,
            },
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for Response {
    fn from(err: ApiError) -> Response {
        err.into_response()
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `...`.
pub(crate) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn internal_error_hides_cause_and_is_json() {
        let resp = ApiError::internal("00ff00ff00ff00ff").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"message":"internal error (request id 00ff00ff00ff00ff)"}"#
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let err = ApiError::unprocessable("é".repeat(500));
        assert_eq!(err.message.chars().count(), MAX_ECHO_CHARS + 3);
        assert!(err.message.ends_with("..."));
        assert_eq!(truncate_chars("short".into(), 10), "short");
    }
}
