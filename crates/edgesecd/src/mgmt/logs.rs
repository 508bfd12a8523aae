//! `GET /modules/{name}/logs`: the module's output in Docker's multiplexed frame format, as the
//! IoT Edge daemon returns it (each line is one frame: stream byte 1 for stdout or 2 for
//! stderr, three zero bytes, the payload length as u32 big-endian, then the payload). With
//! `follow=true` the body streams until the module stops or the client goes away.

use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};
use edgesec_http::{ApiError, Request, Response, channel_body, query_param};
use edgesec_runtime::{LogLine, LogQuery, LogStream};
use http::StatusCode;
use tokio::sync::mpsc;

use crate::daemon::Daemon;

fn flag(req: &Request, name: &str) -> Result<bool, ApiError> {
    match query_param(req, name)?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(format!("invalid parameter: {name}"))),
    }
}

fn time(req: &Request, name: &str) -> Result<Option<SystemTime>, ApiError> {
    match query_param(req, name)? {
        None => Ok(None),
        Some(v) => crate::time::parse_log_time(&v, SystemTime::now())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid parameter: {name}"))),
    }
}

/// Parses the IoT Edge logs query.
pub fn parse_query(req: &Request) -> Result<LogQuery, ApiError> {
    let tail = match query_param(req, "tail")?.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request("invalid parameter: tail"))?,
        ),
    };
    Ok(LogQuery {
        tail,
        since: time(req, "since")?,
        until: time(req, "until")?,
        timestamps: flag(req, "timestamps")?,
        follow: flag(req, "follow")?,
    })
}

/// One line as a multiplexed frame.
pub fn frame(line: &LogLine, timestamps: bool) -> Bytes {
    let text = line.render(timestamps);
    let mut b = BytesMut::with_capacity(8 + text.len() + 1);
    b.put_u8(match line.stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    b.put_bytes(0, 3);
    b.put_u32(u32::try_from(text.len() + 1).unwrap_or(u32::MAX));
    b.put_slice(text.as_bytes());
    b.put_u8(b'\n');
    b.freeze()
}

pub async fn logs(d: &Daemon, name: &str, req: &Request) -> Result<Response, ApiError> {
    let query = parse_query(req)?;
    let timestamps = query.timestamps;
    let mut lines = d.runtime.logs(name, query).await.map_err(|e| match e {
        edgesec_runtime::RuntimeError::NotFound { .. } => {
            ApiError::not_found_msg(format!("module {name:?} not found"))
        }
        other => ApiError::internal_logged(&other),
    })?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            if tx.send(frame(&line, timestamps)).await.is_err() {
                break; // the client went away
            }
        }
    });
    Ok(http::Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(channel_body(rx))
        .expect("static response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_length() {
        let line = LogLine {
            time: SystemTime::UNIX_EPOCH,
            stream: LogStream::Stderr,
            text: "oops".into(),
        };
        let f = frame(&line, false);
        assert_eq!(&f[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&f[8..], b"oops\n");
        let f = frame(&line, true);
        assert!(f[8..].starts_with(b"1970-01-01T00:00:00"), "{f:?}");
    }
}
