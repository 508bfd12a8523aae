//! Turning away a connection over its uid's limit, without involving hyper.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout, timeout_at};

const BODY: &str = r#"{"message":"too many connections for this user"}"#;

/// Most refusals in progress at once per server; past that, connections
/// over the limit are closed without an answer, so a flood of them costs
/// little.
pub(crate) const MAX_REFUSALS_IN_PROGRESS: usize = 64;

/// How long we wait for the request head before answering anyway.
const HEAD_WAIT: Duration = Duration::from_secs(2);
/// How much of the request head we read before answering anyway.
const HEAD_BYTES: usize = 16 * 1024;
/// How long we try to hand the 503 to a client that does not read it.
const WRITE_TIME: Duration = Duration::from_secs(5);
/// How long, and how much, we keep reading a request body after the 503.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 64 * 1024;

/// Reads the request head, answers `503` with a JSON message, and closes.
///
/// Runs in its own task, so a slow client delays nobody else. The order
/// matters for real HTTP clients: hyper's client treats bytes that arrive
/// before it has sent a request as an error (not as our answer), and a
/// client whose request write fails because we already closed reports that
/// instead of the 503. So we wait (briefly) for the request, and after
/// answering keep reading (briefly) whatever body follows.
pub(crate) async fn refuse_overloaded(mut stream: UnixStream) {
    let mut buf = vec![0u8; 4096];

    let mut head = Vec::new();
    let deadline = Instant::now() + HEAD_WAIT;
    while head.len() < HEAD_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            Ok(_) => return, // closed or failed: nobody to answer
            Err(_) => break, // no request yet: answer anyway
        }
    }

    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         connection: close\r\n\
         \r\n\
         {BODY}",
        BODY.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    if !matches!(timeout(WRITE_TIME, write).await, Ok(Ok(()))) {
        return;
    }

    let deadline = Instant::now() + DRAIN_TIME;
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}
