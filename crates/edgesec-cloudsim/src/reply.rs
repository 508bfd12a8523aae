//! Building answers: JSON bodies and the two services' error shapes.
//!
//! DPS errors carry `{"errorCode", "trackingId", "message", "timestampUtc"}`
//! (a six-digit code that starts with the HTTP status). Hub errors carry
//! `{"Message": "ErrorCode:<name>;<text>", "ExceptionMessage"}`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::clock::{now_unix, utc_timestamp};

pub(crate) type Reply = Response<Full<Bytes>>;

/// Why a request was refused, before it is shaped for DPS or the hub.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: StatusCode,
    /// The DPS `errorCode`; ignored for the hub.
    pub code: u32,
    pub message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code: u32::from(status.as_u16()) * 1000 + 1,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Failure {
        Failure {
            code: 401_002,
            ..Failure::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, message)
    }
}

pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut reply = Response::new(Full::new(Bytes::from(bytes)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    reply
}

pub(crate) fn empty_reply(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

pub(crate) fn with_retry_after(mut reply: Reply, seconds: Option<u64>) -> Reply {
    if let Some(seconds) = seconds {
        reply
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    reply
}

pub(crate) fn dps_error(failure: &Failure) -> Reply {
    let now = now_unix();
    json_reply(
        failure.status,
        &json!({
            "errorCode": failure.code,
            "trackingId": tracking_id(now),
            "message": failure.message,
            "timestampUtc": utc_timestamp(now),
        }),
    )
}

pub(crate) fn hub_error(failure: &Failure) -> Reply {
    let name = match failure.status {
        StatusCode::BAD_REQUEST => "ArgumentInvalid",
        StatusCode::UNAUTHORIZED => "IotHubUnauthorizedAccess",
        StatusCode::NOT_FOUND => "ModuleNotFound",
        StatusCode::FORBIDDEN => "IotHubQuotaExceeded",
        StatusCode::CONFLICT => "ModuleAlreadyExistsOnDevice",
        StatusCode::PRECONDITION_FAILED => "PreconditionFailed",
        StatusCode::PAYLOAD_TOO_LARGE => "MessageTooLarge",
        _ => "ServerError",
    };
    let now = now_unix();
    json_reply(
        failure.status,
        &json!({
            "Message": format!("ErrorCode:{name};{}", failure.message),
            "ExceptionMessage": format!("Tracking ID:{}-TimeStamp:{}", tracking_id(now), utc_timestamp(now)),
        }),
    )
}

fn tracking_id(now: u64) -> String {
    format!("cloudsim-{now:x}-{}", crate::state::random_hex(4))
}
