//! A container's logs through the engine, demultiplexed into [`LogLine`]s, with the same query
//! as process modules.
//!
//! The engine is asked with `timestamps=true`, so every line carries the time the engine read
//! it; `since`/`until` go to the engine rounded outwards to whole seconds (its unit) and are
//! then applied exactly here. `tail` is the engine's, taken within that window.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::module::Shared;
use crate::logs::{LogLine, LogQuery, LogStream};
use crate::time_fmt::parse_rfc3339;

/// Lines buffered between the engine stream and the HTTP writer.
const CHANNEL: usize = 256;

fn secs(t: SystemTime, round_up: bool) -> i32 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() + u64::from(round_up && d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

pub(crate) fn options(q: &LogQuery) -> LogsOptions {
    LogsOptions {
        follow: q.follow,
        stdout: true,
        stderr: true,
        since: q.since.map_or(0, |t| secs(t, false)),
        until: q.until.map_or(0, |t| secs(t, true)),
        timestamps: true,
        tail: q.tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
    }
}

/// Splits one engine message (`<rfc3339> <text>`, possibly several lines) into lines of at
/// most `max` bytes.
pub(crate) fn lines_of(stream: LogStream, message: &[u8], max: usize) -> Vec<LogLine> {
    let text = String::from_utf8_lossy(message);
    let mut out = Vec::new();
    for raw in text.split_terminator('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (time, rest) = match raw.split_once(' ') {
            Some((ts, rest)) => match parse_rfc3339(ts) {
                Some(t) => (t, rest),
                None => (SystemTime::now(), raw),
            },
            None => match parse_rfc3339(raw) {
                Some(t) => (t, ""),
                None => (SystemTime::now(), raw),
            },
        };
        let mut rest = rest;
        loop {
            let mut cut = rest.len().min(max.max(1));
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (head, tail) = rest.split_at(cut);
            out.push(LogLine {
                time,
                stream,
                text: head.to_owned(),
            });
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
    }
    out
}

pub(crate) fn query(
    shared: &Arc<Shared>,
    module: &str,
    id: &str,
    q: LogQuery,
) -> mpsc::Receiver<LogLine> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let mut stream = shared.docker.logs(id, Some(options(&q)));
    let (module, max) = (module.to_owned(), shared.config.log_line_max);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let (kind, message) = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    (LogStream::Stdout, message)
                }
                Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    tracing::debug!(module, error = %e, "log stream ended");
                    return;
                }
            };
            for line in lines_of(kind, &message, max) {
                if q.until.is_some_and(|u| line.time > u) {
                    if q.follow {
                        return;
                    }
                    continue;
                }
                if !q.admits(line.time) {
                    continue;
                }
                if tx.send(line).await.is_err() {
                    return; // the reader went away
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_carry_the_engine_time_and_are_split() {
        let msg = b"2026-01-02T03:04:05.123456789Z hello world\n";
        let l = lines_of(LogStream::Stderr, msg, 1024);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].text, "hello world");
        assert_eq!(l[0].stream, LogStream::Stderr);
        assert_eq!(
            crate::format_rfc3339(l[0].time),
            "2026-01-02T03:04:05.123456789Z"
        );
        let l = lines_of(LogStream::Stdout, b"2026-01-02T03:04:05Z abcdef\n", 4);
        assert_eq!(
            l.iter().map(|x| x.text.as_str()).collect::<Vec<_>>(),
            ["abcd", "ef"]
        );
        let l = lines_of(LogStream::Stdout, b"2026-01-02T03:04:05Z \n", 4);
        assert_eq!(l[0].text, "", "an empty line stays a line");
        let l = lines_of(LogStream::Stdout, b"no time here\n", 100);
        assert_eq!(l[0].text, "no time here");
    }

    #[test]
    fn query_maps_to_engine_options() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let o = options(&LogQuery {
            tail: Some(5),
            since: Some(t),
            until: Some(t),
            timestamps: false,
            follow: true,
        });
        assert_eq!((o.since, o.until), (1_700_000_000, 1_700_000_001));
        assert_eq!(o.tail, "5");
        assert!(o.timestamps && o.follow && o.stdout && o.stderr);
        assert_eq!(options(&LogQuery::default()).tail, "all");
    }
}
