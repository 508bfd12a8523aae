//! Splitting a request path into decoded segments for routing.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::{ApiError, MAX_ECHO_CHARS, truncate_chars};

/// Splits a path into percent-decoded segments:
/// `/modules/%24edgeHub/genid/1/sign` gives
/// `["modules", "$edgeHub", "genid", "1", "sign"]`, and `/` gives `[]`.
///
/// Routers match on the result, so a decoded segment can never smuggle in
/// structure: a segment that decodes to invalid UTF-8, contains `/` or NUL,
/// or is `.` or `..` is a 400. Empty segments (`/a//b`, `/a/`) are kept as
/// `""` so they simply match no route.
pub fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/').map(decode_segment).collect()
}

/// Everything but RFC 3986 "unreserved" characters is escaped in a segment.
const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment for a request URI (the client-side
/// counterpart of [`path_segments`]): `$edgeHub` becomes `%24edgeHub`. A `/`
/// inside a name becomes `%2F`, so it cannot add a segment (and
/// [`path_segments`] refuses it).
pub fn encode_path_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT_ESCAPES).to_string()
}

fn decode_segment(raw: &str) -> Result<String, ApiError> {
    let invalid = || {
        let shown = truncate_chars(raw.to_owned(), MAX_ECHO_CHARS);
        ApiError::bad_request(format!("invalid path segment \"{shown}\""))
    };
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid())?;
    if decoded == "." || decoded == ".." || decoded.contains(['/', '\0']) {
        return Err(invalid());
    }
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(
            path_segments("/modules/%24edgeHub/genid/1/sign").unwrap(),
            ["modules", "$edgeHub", "genid", "1", "sign"]
        );
        assert_eq!(path_segments("/a%20b/%C3%A9").unwrap(), ["a b", "é"]);
        assert!(path_segments("/").unwrap().is_empty());
        assert!(path_segments("").unwrap().is_empty());
        assert_eq!(path_segments("/a//b/").unwrap(), ["a", "", "b", ""]);
    }

    #[test]
    fn encoded_segments_round_trip() {
        assert_eq!(encode_path_segment("$edgeHub"), "%24edgeHub");
        for name in ["$edgeHub", "a b?c#d%e", "é-._~"] {
            let path = format!("/modules/{}", encode_path_segment(name));
            assert_eq!(path_segments(&path).unwrap(), ["modules", name]);
        }
        assert_eq!(encode_path_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn dangerous_segments_are_rejected() {
        for path in [
            "/modules/..",
            "/modules/./x",
            "/modules/%2e%2e/x",
            "/modules/%2E",
            "/modules/a%2Fb",
            "/modules/a%2fb",
            "/modules/a%00b",
            "/modules/%ff",
        ] {
            let e = path_segments(path).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{path}");
            assert!(
                e.message.starts_with("invalid path segment"),
                "{}",
                e.message
            );
        }
        // dots inside a name are fine
        assert_eq!(path_segments("/a..b/.x").unwrap(), ["a..b", ".x"]);
    }
}
