//! Reading a module's stdout or stderr pipe into its log ring, line by line.
//!
//! A line is cut at `\n` or at the line cap, whichever comes first, so one endless line cannot
//! make the reader buffer without bound; the rest of a long line follows as further lines.
//! A trailing `\r` is dropped (CRLF output). Each line is stamped when read.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;

use super::log_ring::{LogRing, RunLogSender};
use crate::logs::{LogLine, LogStream};

/// Reads until end of file (every writer closed the pipe) or a read error, then drops its
/// share of the run's sender, which is what ends followers.
pub(crate) async fn read_lines(
    pipe: pipe::Receiver,
    stream: LogStream,
    ring: Arc<LogRing>,
    run: RunLogSender,
    max_line: usize,
) {
    let max_line = max_line.max(1);
    let mut reader = BufReader::with_capacity(max_line.min(64 * 1024), pipe);
    let mut cur: Vec<u8> = Vec::new();
    // Set after a line was cut at the cap: a `\n` right after the cut ends that same line and
    // must not produce an empty one.
    let mut just_cut = false;
    let emit = |bytes: &mut Vec<u8>| {
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        bytes.clear();
        ring.push(
            &run,
            LogLine {
                time: SystemTime::now(),
                stream,
                text,
            },
        );
    };
    loop {
        let buf = match reader.fill_buf().await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, ?stream, "module output read failed");
                break;
            }
        };
        if buf.is_empty() {
            break;
        }
        if std::mem::take(&mut just_cut) && buf[0] == b'\n' {
            reader.consume(1);
            continue;
        }
        let room = max_line - cur.len();
        let window = &buf[..buf.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                cur.extend_from_slice(&window[..i]);
                reader.consume(i + 1);
                emit(&mut cur);
            }
            None => {
                let n = window.len();
                cur.extend_from_slice(window);
                reader.consume(n);
                if cur.len() >= max_line {
                    emit(&mut cur);
                    just_cut = true;
                }
            }
        }
    }
    if !cur.is_empty() {
        emit(&mut cur);
    }
}
