//! `logs MODULE [--tail N|all] [--since T] [--until T] [-f]`: the module's output, streamed
//! from the management API and taken out of its Docker-style frames.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::ctx::Ctx;
use crate::error::{CliError, Result};

/// `--since`/`--until`: RFC 3339, unix seconds, or a duration meaning "that long ago"
/// (`90m`, `1 day`). Returned as unix seconds, so the daemon's clock does not matter.
pub fn parse_time_arg(s: &str) -> std::result::Result<u64, String> {
    edgesecd::time::parse_log_time(s, SystemTime::now())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            format!(
                "{s:?} is not a time: give RFC 3339 (2026-05-01T10:00:00Z), unix seconds \
                 (1777600000) or a duration such as 90m or \"1 day\""
            )
        })
}

/// `--tail`: a number or `all`.
pub fn parse_tail(s: &str) -> std::result::Result<String, String> {
    if s == "all" || s.parse::<u64>().is_ok() {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a line count: give a number or `all`"))
    }
}

pub struct LogArgs {
    pub tail: String,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub follow: bool,
}

impl LogArgs {
    pub fn query(&self) -> String {
        let mut q = format!("tail={}&follow={}", self.tail, self.follow);
        if let Some(s) = self.since {
            q.push_str(&format!("&since={s}"));
        }
        if let Some(u) = self.until {
            q.push_str(&format!("&until={u}"));
        }
        q
    }
}

/// Splits Docker log frames (stream byte, 3 zero bytes, u32 BE length, payload) off `buf`.
/// Returns complete frames as (stream, payload); a partial frame stays in `buf`.
pub fn take_frames(buf: &mut BytesMut) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while buf.len() >= 8 {
        let stream = buf[0];
        if !matches!(stream, 0..=2) || buf[1..4] != [0, 0, 0] {
            // not framed: pass it through as it is
            out.push((1, buf.split().freeze()));
            break;
        }
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            break;
        }
        buf.advance(8);
        out.push((stream, buf.split_to(len).freeze()));
    }
    out
}

/// Streams a module's logs, calling `sink` with each frame as it arrives.
pub async fn stream_logs(
    socket: &Path,
    module: &str,
    query: &str,
    mut sink: impl FnMut(u8, &[u8]),
) -> Result<()> {
    let path = format!(
        "/modules/{}/logs?{query}&api-version={}",
        edgesec_http::encode_path_segment(module),
        edgesec_api::LATEST_API_VERSION
    );
    let connect_err = |e: std::io::Error| {
        CliError::mgmt(
            edgesec_http::ClientError::Connect {
                path: socket.to_owned(),
                source: e,
            },
            socket,
        )
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(connect_err)?;
    let http_err = |e: hyper::Error| CliError::mgmt(edgesec_http::ClientError::Http(e), socket);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let resp = sender.send_request(req).await.map_err(http_err)?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body.collect().await.map_err(http_err)?.to_bytes();
        return Err(CliError::mgmt(
            edgesec_http::ClientError::api(status, &bytes),
            socket,
        ));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(http_err)?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            for (stream, payload) in take_frames(&mut buf) {
                sink(stream, &payload);
            }
        }
    }
    if !buf.is_empty() {
        sink(1, &buf);
    }
    Ok(())
}

pub async fn logs(ctx: &Ctx, module: &str, args: LogArgs) -> Result<()> {
    let socket = ctx.mgmt_socket()?;
    let result = stream_logs(&socket, module, &args.query(), |stream, payload| {
        if stream == 2 {
            let _ = std::io::stderr().write_all(payload);
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(payload);
            let _ = out.flush();
        }
    })
    .await;
    match result {
        Err(mut e) if e.message.contains("404") => {
            e.hint = Some(format!(
                "no module named {module:?}; `edgesec list` shows the modules"
            ));
            Err(e)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_partial_ones_kept() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 3]);
        b.extend_from_slice(b"hi\n");
        b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4, b'o']);
        let f = take_frames(&mut b);
        assert_eq!(f, vec![(1, Bytes::from_static(b"hi\n"))]);
        b.extend_from_slice(b"k!\n");
        assert_eq!(take_frames(&mut b), vec![(2, Bytes::from_static(b"ok!\n"))]);
        assert!(b.is_empty());
    }

    #[test]
    fn time_and_tail_arguments() {
        assert_eq!(parse_time_arg("1970-01-01T00:00:10Z"), Ok(10));
        assert_eq!(parse_time_arg("1700000000"), Ok(1_700_000_000));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = parse_time_arg("1 day").unwrap();
        assert!(t <= now - 86_400 && t >= now - 86_400 - 60);
        assert!(parse_time_arg("90m").is_ok());
        assert!(parse_time_arg("soon").unwrap_err().contains("RFC 3339"));
        assert_eq!(parse_tail("all").unwrap(), "all");
        assert!(parse_tail("ten").is_err());
    }
}
