//! What can go wrong talking to the cloud, in words an operator can act on. Messages name the
//! service and what it said; they never carry key material or tokens.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudError {
    /// The service could not be reached: name resolution, TCP, TLS, the proxy, or no answer
    /// in time. Worth retrying, and the reason to fall back to the offline cache.
    Unreachable(String),
    /// The service answered with an error status. `message` is the service's own, when it
    /// gave one; `retry_after` is its `Retry-After`.
    Status {
        service: &'static str,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// DPS ended the registration as `failed`.
    RegistrationFailed {
        error_code: Option<u64>,
        message: String,
    },
    /// The service answered something this client cannot read.
    Protocol(String),
    /// The key service could not do its part (sign, derive, export).
    Keys(String),
    /// Local setup: a certificate file, a bad endpoint URL, a proxy URL.
    Setup(String),
}

impl CloudError {
    /// The service was not reached (as opposed to: it said no).
    pub fn is_network(&self) -> bool {
        matches!(self, CloudError::Unreachable(_))
    }

    /// The service refused the device's credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, CloudError::Status { status: 401, .. })
    }

    /// Worth another try: no answer, throttling, or a server-side failure.
    pub fn is_transient(&self) -> bool {
        match self {
            CloudError::Unreachable(_) => true,
            CloudError::Status { status, .. } => {
                *status == 408 || *status == 429 || (500..600).contains(status)
            }
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudError::Unreachable(why) => write!(f, "cannot reach the cloud: {why}"),
            CloudError::Status {
                service,
                status,
                message,
                ..
            } => {
                let hint = match status {
                    401 => " (the credentials were refused)",
                    403 => " (not allowed)",
                    404 => " (not found)",
                    _ => "",
                };
                if message.is_empty() {
                    write!(f, "{service} answered {status}{hint}")
                } else {
                    write!(f, "{service} answered {status}{hint}: {message}")
                }
            }
            CloudError::RegistrationFailed {
                error_code,
                message,
            } => match error_code {
                Some(c) => write!(f, "DPS registration failed (error {c}): {message}"),
                None => write!(f, "DPS registration failed: {message}"),
            },
            CloudError::Protocol(why) => write!(f, "unexpected answer from the cloud: {why}"),
            CloudError::Keys(why) => write!(f, "key service: {why}"),
            CloudError::Setup(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CloudError {}

/// The service's own message from an error body: `{"message": ..}` as DPS and IoT Hub send
/// it (IoT Hub nests it in `Message` as JSON text at times), else the body's text, shortened.
pub fn service_message(body: &[u8]) -> String {
    const MAX: usize = 512;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "Message", "errorMessage"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return shorten(m, MAX);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    shorten(text.trim(), MAX)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_message_is_found_or_the_body_is_shortened() {
        assert_eq!(
            service_message(br#"{"message":"no such scope"}"#),
            "no such scope"
        );
        assert_eq!(
            service_message(br#"{"Message":"unauthorized"}"#),
            "unauthorized"
        );
        assert_eq!(service_message(b"  plain text \n"), "plain text");
        let long = "é".repeat(400);
        let m = service_message(long.as_bytes());
        assert!(m.ends_with("...") && m.len() <= 515, "{}", m.len());
    }

    #[test]
    fn transient_errors_are_network_throttling_and_server_errors() {
        let status = |status| CloudError::Status {
            service: "DPS",
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(CloudError::Unreachable("x".into()).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(401).is_transient());
        assert!(status(401).is_unauthorized());
        assert!(!status(400).is_transient());
        assert_eq!(
            status(401).to_string(),
            "DPS answered 401 (the credentials were refused)"
        );
    }
}
