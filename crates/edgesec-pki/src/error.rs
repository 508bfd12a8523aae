//! The one error type of the certificate authority.
//!
//! No variant carries key material: key store errors are already free of it, and file errors
//! name the file, never its contents.

use std::fmt;
use std::path::PathBuf;

use edgesec_keys::KeyError;
use time::OffsetDateTime;

/// Why a certificate authority operation failed.
#[derive(Debug)]
pub enum PkiError {
    /// The configuration is not usable; the text says which setting and why.
    Config(String),
    /// The system clock cannot be trusted, so nothing is issued, renewed or regenerated.
    ClockNotSane {
        now: OffsetDateTime,
        floor: OffsetDateTime,
        reason: &'static str,
    },
    /// The certificate chain is not there yet (for example the clock was wrong at start).
    NotReady(String),
    /// The issuing CA is expired and its renewal has not happened yet.
    CaExpired { not_after: OffsetDateTime },
    /// The key store refused or failed.
    Key(KeyError),
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate or key file exists but does not hold what it should.
    CorruptFile { path: PathBuf, why: String },
    /// The caller's request cannot be turned into a certificate (bad name, ...).
    InvalidRequest(String),
    /// Building or signing a certificate failed.
    Certificate(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        PkiError::CorruptFile {
            path: path.into(),
            why: why.into(),
        }
    }

    /// True when the operation may succeed later without a change of configuration: a wrong
    /// clock, a chain not created yet, an expired CA waiting for renewal, a key store hiccup.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PkiError::ClockNotSane { .. }
                | PkiError::NotReady(_)
                | PkiError::CaExpired { .. }
                | PkiError::Key(KeyError::Backend(_))
                | PkiError::Io { .. }
        )
    }
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::Config(why) => write!(f, "certificate configuration: {why}"),
            PkiError::ClockNotSane { now, floor, reason } => write!(
                f,
                "the system clock reads {} which is before {} ({reason}); certificates are not \
                 issued or renewed until the clock is set",
                crate::rfc3339(*now),
                crate::rfc3339(*floor),
            ),
            PkiError::NotReady(why) => write!(f, "certificate authority not ready: {why}"),
            PkiError::CaExpired { not_after } => write!(
                f,
                "the issuing CA expired at {}; nothing is issued until it is renewed or replaced",
                crate::rfc3339(*not_after)
            ),
            PkiError::Key(e) => write!(f, "key store: {e}"),
            PkiError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PkiError::CorruptFile { path, why } => {
                write!(f, "{} is unusable: {why}", path.display())
            }
            PkiError::InvalidRequest(why) => write!(f, "invalid certificate request: {why}"),
            PkiError::Certificate(why) => write!(f, "certificate creation failed: {why}"),
        }
    }
}

impl std::error::Error for PkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PkiError::Key(e) => Some(e),
            PkiError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<KeyError> for PkiError {
    fn from(e: KeyError) -> Self {
        PkiError::Key(e)
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Certificate(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, PkiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_reason() {
        let e = PkiError::corrupt("/state/certs/edge-ca.pem", "no certificate in it");
        assert_eq!(
            e.to_string(),
            "/state/certs/edge-ca.pem is unusable: no certificate in it"
        );
        let e = PkiError::ClockNotSane {
            now: OffsetDateTime::UNIX_EPOCH,
            floor: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000),
            reason: "before this build",
        };
        let text = e.to_string();
        assert!(text.contains("1970-01-01T00:00:00Z"), "{text}");
        assert!(text.contains("before this build"), "{text}");
        assert!(e.is_transient());
    }
}
