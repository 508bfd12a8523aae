//! `unix:///path/to/socket` URIs, as used in configuration files.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, percent_encode};

/// Characters escaped when writing a path into a URI.
const PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'?').add(b'#').add(b'"');

/// A socket URI that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixUriError {
    uri: String,
    reason: &'static str,
}

impl fmt::Display for UnixUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid socket URI \"{}\": {}; expected unix:///absolute/path",
            self.uri, self.reason
        )
    }
}

impl std::error::Error for UnixUriError {}

/// Parses `unix:///run/edgesec/keyd.sock` into `/run/edgesec/keyd.sock`.
///
/// The scheme must be `unix` (any case), the host empty and the path absolute.
/// `%XX` escapes in the path are decoded.
pub fn parse_unix_uri(uri: &str) -> Result<PathBuf, UnixUriError> {
    let err = |reason| UnixUriError {
        uri: uri.to_owned(),
        reason,
    };
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| err("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("unix") {
        return Err(err("only the unix scheme is supported"));
    }
    if !rest.starts_with('/') {
        return Err(err("a host is not allowed, the path must follow unix://"));
    }
    if rest.contains(['?', '#']) {
        return Err(err("a query or fragment is not allowed"));
    }
    let bytes: Vec<u8> = percent_decode_str(rest).collect();
    if bytes.contains(&0) {
        return Err(err("the path contains NUL"));
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// Writes an absolute socket path as a `unix://` URI (the reverse of
/// [`parse_unix_uri`]).
pub fn unix_uri(path: &Path) -> String {
    format!(
        "unix://{}",
        percent_encode(path.as_os_str().as_bytes(), PATH_ESCAPES)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_uris() {
        assert_eq!(
            parse_unix_uri("unix:///run/edgesec/keyd.sock").unwrap(),
            Path::new("/run/edgesec/keyd.sock")
        );
        assert_eq!(
            parse_unix_uri("UNIX:///tmp/a%20b.sock").unwrap(),
            Path::new("/tmp/a b.sock")
        );
    }

    #[test]
    fn rejects_other_forms_clearly() {
        let e = parse_unix_uri("http://localhost/x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid socket URI \"http://localhost/x\": only the unix scheme is supported; \
             expected unix:///absolute/path"
        );
        for bad in [
            "/run/x.sock",
            "unix://run/x.sock",
            "unix:///x?y",
            "unix:///a%00b",
            "fd://x",
        ] {
            assert!(parse_unix_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        let path = Path::new("/var/run/my dir/100%.sock");
        let uri = unix_uri(path);
        assert_eq!(uri, "unix:///var/run/my%20dir/100%25.sock");
        assert_eq!(parse_unix_uri(&uri).unwrap(), path);
    }
}
