//! JSON request bodies and responses.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::types::{Request, Response};

/// Serializes `body` as a JSON response with `Content-Type: application/json`.
///
/// If serialization fails (a bug in the type, e.g. a map with non-string
/// keys), answers 500 with a logged request id instead.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut resp = Response::new(crate::types::full_body(bytes));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(err) => ApiError::internal_logged(&format_args!("cannot serialize response: {err}"))
            .into_response(),
    }
}

/// Parses the request body as JSON into `T`.
///
/// * empty body: 400 `missing request body`;
/// * `Content-Type` present but not `application/json` (parameters such as
///   `charset` allowed): 415 `request body must be application/json`;
///   a missing `Content-Type` counts as JSON;
/// * invalid JSON or wrong shape: 422 naming the field path, e.g.
///   `invalid request body at "parameters.digest": invalid type: ...`,
///   cut to about 200 characters.
pub fn parse_json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if req.body().is_empty() {
        return Err(ApiError::missing_body());
    }
    if !is_json_or_absent(req.headers()) {
        return Err(ApiError::unsupported_media_type());
    }
    let mut de = serde_json::Deserializer::from_slice(req.body());
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || path == "?" {
            ApiError::unprocessable(format!("invalid request body: {inner}"))
        } else {
            ApiError::unprocessable(format!("invalid request body at \"{path}\": {inner}"))
        }
    })?;
    // Reject trailing data after the JSON value, as `serde_json::from_slice` does.
    de.end()
        .map_err(|err| ApiError::unprocessable(format!("invalid request body: {err}")))?;
    Ok(value)
}

fn is_json_or_absent(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Sign {
        #[serde(rename = "keyId")]
        key_id: String,
        parameters: Params,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Params {
        digest: String,
    }

    fn req(content_type: Option<&str>, body: &str) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/sign");
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        b.body(bytes::Bytes::from(body.to_owned())).unwrap()
    }

    fn err(r: Request) -> ApiError {
        parse_json_body::<Sign>(&r).unwrap_err()
    }

    const GOOD: &str = r#"{"keyId":"k","parameters":{"digest":"abc"}}"#;

    #[test]
    fn accepts_json_with_or_without_content_type() {
        for ct in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
        ] {
            let sign: Sign = parse_json_body(&req(ct, GOOD)).unwrap();
            assert_eq!(sign.parameters.digest, "abc");
        }
    }

    #[test]
    fn empty_body_is_400() {
        let e = err(req(Some("application/json"), ""));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "missing request body");
    }

    #[test]
    fn other_content_type_is_415() {
        let e = err(req(Some("text/plain"), GOOD));
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(e.message, "request body must be application/json");
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let e = err(req(None, r#"{"keyId":"k","parameters":{"digest":5}}"#));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.message
                .starts_with("invalid request body at \"parameters.digest\": invalid type"),
            "{}",
            e.message
        );
    }

    #[test]
    fn invalid_json_and_trailing_data_are_422() {
        let trailing = format!("{GOOD} x");
        for body in ["{not json", trailing.as_str(), "[1,2]"] {
            let e = err(req(None, body));
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                e.message.starts_with("invalid request body"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn echoed_input_is_cut() {
        // serde_json quotes the offending string in its message.
        let long = "x".repeat(10_000);
        let e = parse_json_body::<Vec<u32>>(&req(None, &format!(r#"["{long}"]"#))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("xxxx"), "{}", e.message);
        assert!(e.message.chars().count() <= 203, "{}", e.message.len());
    }

    #[test]
    fn json_response_sets_content_type() {
        let resp = json_response(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    }
}
