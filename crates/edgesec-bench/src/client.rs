//! The load generator's HTTP/1.1 client: one keep-alive connection per simulated client, the
//! request bytes built once, the response read by `Content-Length`. Deliberately minimal so the
//! client spends as little as possible of the two cores the servers also need.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::hist::Histogram;

/// Largest response accepted (a certificate response is a few KiB).
const MAX_RESPONSE: usize = 1 << 20;

/// A whole HTTP/1.1 request, ready to write.
pub fn request(method: &str, path_and_query: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!("{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
    match body {
        Some(b) => {
            r.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            );
            r.extend_from_slice(b);
        }
        None => r.extend_from_slice(b"\r\n"),
    }
    r
}

pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// (status, length of the head including the blank line, body length, server closes).
fn parse_head(head: &[u8]) -> io::Result<(u16, usize, bool)> {
    let text = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked responses are not expected here"));
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    Ok((status, length.unwrap_or(0), close))
}

impl Conn {
    pub async fn connect(path: &Path) -> io::Result<Conn> {
        Ok(Conn {
            stream: UnixStream::connect(path).await?,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` and reads the whole response: (status, body). An error leaves the
    /// connection unusable.
    pub async fn call(&mut self, request: &[u8]) -> io::Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let (status, length, close) = parse_head(&self.buf[..head_end])?;
        if length > MAX_RESPONSE {
            return Err(bad("response too large"));
        }
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        if close {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "server closed the connection after status {status}: {}",
                    String::from_utf8_lossy(&self.buf[head_end..head_end + length])
                ),
            ));
        }
        Ok((status, &self.buf[head_end..head_end + length]))
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() > MAX_RESPONSE + 64 * 1024 {
            return Err(bad("response too large"));
        }
        let len = self.buf.len();
        self.buf.resize(len + 16 * 1024, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(len);
                return Err(e);
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

/// One request, on a fresh connection: (status, body).
pub async fn call_once(socket: &Path, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut c = Conn::connect(socket).await?;
    let (status, body) = c.call(request).await?;
    Ok((status, body.to_vec()))
}

/// A load: `connections` clients each sending `request` back to back on its own connection.
/// Responses that arrive after `measure_from` and by `end` are counted.
#[derive(Clone)]
pub struct Load {
    pub socket: PathBuf,
    pub request: Vec<u8>,
    pub expect_status: u16,
    pub connections: usize,
    pub measure_from: Instant,
    pub end: Instant,
}

#[derive(Debug, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub hist: Histogram,
}

impl LoadResult {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    pub fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.hist.merge(&other.hist);
    }
}

/// Runs the load on the current runtime: opens every connection, waits until `start`, then
/// sends (warm-up until `measure_from`, counted until `end`).
pub async fn run(load: Load, start: Instant) -> LoadResult {
    let mut conns = Vec::with_capacity(load.connections);
    let mut out = LoadResult::default();
    for _ in 0..load.connections {
        match Conn::connect(&load.socket).await {
            Ok(c) => conns.push(c),
            Err(e) => out.error(format!("connect {}: {e}", load.socket.display())),
        }
    }
    tokio::time::sleep_until(start.into()).await;
    let load = std::sync::Arc::new(load);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(client(c, load.clone())))
        .collect();
    for t in tasks {
        match t.await {
            Ok(r) => out.merge(r),
            Err(e) => out.error(format!("client task failed: {e}")),
        }
    }
    out
}

async fn client(mut conn: Conn, load: std::sync::Arc<Load>) -> LoadResult {
    let mut out = LoadResult::default();
    loop {
        let t0 = Instant::now();
        if t0 >= load.end {
            return out;
        }
        let result = conn.call(&load.request).await;
        let t1 = Instant::now();
        // Counted by completion: what a client received within the window.
        let counted = t1 > load.measure_from && t1 <= load.end;
        match result {
            Ok((status, _)) if status == load.expect_status => {
                if counted {
                    out.ok += 1;
                    out.hist.record((t1 - t0).as_nanos() as u64);
                }
            }
            Ok((status, body)) => out.error(format!(
                "status {status}: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
            Err(e) => {
                out.error(e.to_string());
                // a new connection, as a real client would open
                loop {
                    if Instant::now() >= load.end {
                        return out;
                    }
                    match Conn::connect(&load.socket).await {
                        Ok(c) => break conn = c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        }
    }
}
