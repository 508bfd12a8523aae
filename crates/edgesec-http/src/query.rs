//! Query-string parameters, including the mandatory `api-version`.

use percent_encoding::percent_decode_str;

use crate::error::{ApiError, MAX_ECHO_CHARS, truncate_chars};

/// Returns the decoded value of the first query parameter called `name`.
///
/// Values are decoded as in HTML forms: `+` is a space, then `%XX` escapes.
/// A value that does not decode to UTF-8 is a 400.
pub fn query_param<B>(req: &http::Request<B>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(query) = req.uri().query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key)? == name {
            return decode(value).map(Some);
        }
    }
    Ok(None)
}

/// Checks the `api-version` query parameter against `accepted` and returns the
/// matching entry of `accepted`.
///
/// Missing: 400 `api-version not specified`; not in the list: 400
/// `invalid api-version "<value>"`.
pub fn api_version<'a, B>(
    req: &http::Request<B>,
    accepted: &[&'a str],
) -> Result<&'a str, ApiError> {
    let Some(value) = query_param(req, "api-version")? else {
        return Err(ApiError::bad_request("api-version not specified"));
    };
    accepted
        .iter()
        .find(|v| **v == value)
        .copied()
        .ok_or_else(|| {
            let shown = truncate_chars(value, MAX_ECHO_CHARS);
            ApiError::bad_request(format!("invalid api-version \"{shown}\""))
        })
}

fn decode(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| ApiError::bad_request("query string is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const VERSIONS: &[&str] = &["2020-07-07", "2022-08-03"];

    fn req(uri: &str) -> http::Request<()> {
        http::Request::builder().uri(uri).body(()).unwrap()
    }

    #[test]
    fn accepted_version_is_returned() {
        assert_eq!(
            api_version(&req("/x?api-version=2022-08-03"), VERSIONS),
            Ok("2022-08-03")
        );
        // percent-decoded, and other parameters ignored
        assert_eq!(
            api_version(&req("/x?a=b&api%2Dversion=2020%2D07%2D07&c"), VERSIONS),
            Ok("2020-07-07")
        );
    }

    #[test]
    fn missing_version_is_400() {
        for uri in ["/x", "/x?", "/x?other=1"] {
            let e = api_version(&req(uri), VERSIONS).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.message, "api-version not specified");
        }
    }

    #[test]
    fn unknown_version_is_400_and_quoted() {
        let e = api_version(&req("/x?api-version=2021-05-11"), VERSIONS).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "invalid api-version \"2021-05-11\"");
        let e = api_version(&req("/x?api-version=a%20b+c"), VERSIONS).unwrap_err();
        assert_eq!(e.message, "invalid api-version \"a b c\"");
    }

    #[test]
    fn bad_utf8_in_query_is_400() {
        let e = query_param(&req("/x?api-version=%ff"), "api-version").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
