//! What can go wrong when calling a server over a Unix socket.

use std::fmt;
use std::io;
use std::path::PathBuf;

use http::StatusCode;

use crate::error::{MAX_ECHO_CHARS, truncate_chars};

/// An error from [`UdsClient`](crate::UdsClient).
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be connected to (missing, refused, no permission).
    Connect { path: PathBuf, source: io::Error },
    /// No complete answer in time, or another I/O failure outside HTTP.
    Io(io::Error),
    /// The connection failed at the HTTP level (closed early, malformed answer).
    Http(hyper::Error),
    /// The request could not be built (bad path, body not serializable).
    InvalidRequest(String),
    /// The server answered with a non-2xx status and this `message`.
    Api { status: StatusCode, message: String },
    /// The answer was not what we expected (not JSON, wrong shape, too large).
    Decode(String),
}

impl ClientError {
    /// Builds [`ClientError::Api`] from an error response, taking the
    /// `{"message": "..."}` field if the body has one.
    pub fn api(status: StatusCode, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            message: String,
        }
        let message = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => parsed.message,
            Err(_) if body.is_empty() => status.canonical_reason().unwrap_or("").to_owned(),
            Err(_) => truncate_chars(String::from_utf8_lossy(body).into_owned(), MAX_ECHO_CHARS),
        };
        ClientError::Api { status, message }
    }

    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { path, source } => {
                write!(
                    f,
                    "cannot connect to {}: {}",
                    path.display(),
                    os_message(source)
                )
            }
            ClientError::Io(err) => write!(f, "{}", os_message(err)),
            ClientError::Http(err) => {
                write!(f, "HTTP error: {err}")?;
                if let Some(cause) = std::error::Error::source(err) {
                    write!(f, ": {cause}")?;
                }
                Ok(())
            }
            ClientError::InvalidRequest(msg) => write!(f, "invalid request: {msg}"),
            ClientError::Api { status, message } => write!(f, "{status}: {message}"),
            ClientError::Decode(msg) => write!(f, "invalid response: {msg}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } => Some(source),
            ClientError::Io(err) => Some(err),
            ClientError::Http(err) => Some(err),
            _ => None,
        }
    }
}

/// The text of an I/O error without std's " (os error N)" suffix, which
/// means nothing to a person reading a CLI message.
fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => text[..cut].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_error_reads_well() {
        let err = ClientError::Connect {
            path: "/run/x.sock".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            err.to_string(),
            "cannot connect to /run/x.sock: No such file or directory"
        );
    }

    #[test]
    fn api_error_takes_message_or_body() {
        let err = ClientError::api(StatusCode::NOT_FOUND, br#"{"message":"not found"}"#);
        assert_eq!(err.to_string(), "404 Not Found: not found");
        let err = ClientError::api(StatusCode::BAD_GATEWAY, b"upstream broke");
        assert_eq!(err.to_string(), "502 Bad Gateway: upstream broke");
        let err = ClientError::api(StatusCode::FORBIDDEN, b"");
        assert_eq!(err.to_string(), "403 Forbidden: Forbidden");
    }
}
