//! A module's recent output: a bounded ring of lines, queried by tail/since/until, with a
//! broadcast for followers.
//!
//! Bounded by lines and by bytes, whichever is hit first, so a chatty module cannot grow the
//! daemon. The ring outlives runs (logs of the previous run stay readable after a restart, as
//! with docker) and goes with the module on remove.
//!
//! Each run gets its own broadcast sender, owned by that run's two pipe readers; the ring keeps
//! only a weak reference. When both readers reach end of file the sender drops and every
//! follower of that run ends, without any explicit signalling. Lines are appended and broadcast
//! under the ring's lock, and a follower takes its snapshot and subscribes under the same lock,
//! so it sees every line exactly once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{broadcast, mpsc};

use crate::logs::{LogLine, LogQuery};

/// Bookkeeping cost counted per line on top of its text, so a flood of empty lines is
/// bounded by bytes too.
const LINE_OVERHEAD: usize = 64;
/// Lines a follower may fall behind before it skips ahead.
const FOLLOW_BACKLOG: usize = 1024;
/// Lines buffered between the query task and the HTTP writer.
const QUERY_CHANNEL: usize = 256;

pub(crate) type RunLogSender = Arc<broadcast::Sender<LogLine>>;

#[derive(Debug)]
pub(crate) struct LogRing {
    max_lines: usize,
    max_bytes: usize,
    inner: Mutex<RingInner>,
}

#[derive(Debug)]
struct RingInner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    live: Weak<broadcast::Sender<LogLine>>,
}

impl LogRing {
    pub fn new(max_lines: usize, max_bytes: usize) -> LogRing {
        LogRing {
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            inner: Mutex::new(RingInner {
                lines: VecDeque::new(),
                bytes: 0,
                live: Weak::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RingInner> {
        // Appends and evictions keep `bytes` consistent at every step; a poisoned lock (a
        // panic elsewhere while holding it) leaves a usable ring.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a run: returns the sender its readers share. Followers subscribe to it until the
    /// readers drop it.
    pub fn begin_run(&self) -> RunLogSender {
        let tx = Arc::new(broadcast::channel(FOLLOW_BACKLOG).0);
        self.lock().live = Arc::downgrade(&tx);
        tx
    }

    /// Appends a line and hands it to the run's followers.
    pub fn push(&self, run: &broadcast::Sender<LogLine>, line: LogLine) {
        let mut inner = self.lock();
        inner.bytes += line.text.len() + LINE_OVERHEAD;
        inner.lines.push_back(line.clone());
        while inner.lines.len() > self.max_lines || inner.bytes > self.max_bytes {
            match inner.lines.pop_front() {
                Some(old) => inner.bytes -= old.text.len() + LINE_OVERHEAD,
                None => break,
            }
        }
        // No receivers is the normal case; that is not an error.
        let _ = run.send(line);
    }

    /// The matching lines now and, for a follow of a running module, a subscription to what
    /// comes next.
    fn snapshot(&self, q: &LogQuery) -> (Vec<LogLine>, Option<broadcast::Receiver<LogLine>>) {
        let inner = self.lock();
        let mut lines: Vec<LogLine> = inner
            .lines
            .iter()
            .filter(|l| q.admits(l.time))
            .cloned()
            .collect();
        if let Some(n) = q.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let live = if q.follow {
            inner.live.upgrade().map(|tx| tx.subscribe())
        } else {
            None
        };
        (lines, live)
    }

    /// Answers a query through a channel: a task sends the snapshot, then follows. The task
    /// ends when the receiver is dropped, the run's output ends, or a line passes `until`.
    pub fn query(self: &Arc<Self>, q: LogQuery) -> mpsc::Receiver<LogLine> {
        let (tx, rx) = mpsc::channel(QUERY_CHANNEL);
        let (snapshot, live) = self.snapshot(&q);
        tokio::spawn(async move {
            for line in snapshot {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            let Some(mut live) = live else {
                return;
            };
            loop {
                let line = tokio::select! {
                    _ = tx.closed() => return,
                    r = live.recv() => match r {
                        Ok(line) => line,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(skipped = n, "log follower fell behind");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                if q.until.is_some_and(|u| line.time > u) {
                    return;
                }
                if q.admits(line.time) && tx.send(line).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogStream;
    use std::time::{Duration, SystemTime};

    fn line(t: u64, text: &str) -> LogLine {
        LogLine {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(t),
            stream: LogStream::Stdout,
            text: text.into(),
        }
    }

    async fn collect(mut rx: mpsc::Receiver<LogLine>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = rx.recv().await {
            out.push(l.text);
        }
        out
    }

    #[tokio::test]
    async fn bounded_by_lines_and_bytes() {
        let ring = Arc::new(LogRing::new(3, 1 << 20));
        let tx = ring.begin_run();
        for i in 0..5 {
            ring.push(&tx, line(i, &i.to_string()));
        }
        assert_eq!(
            collect(ring.query(LogQuery::default())).await,
            ["2", "3", "4"]
        );

        let ring = Arc::new(LogRing::new(100, 2 * (LINE_OVERHEAD + 10)));
        let tx = ring.begin_run();
        for i in 0..5 {
            ring.push(&tx, line(i, &"x".repeat(10)));
        }
        assert_eq!(collect(ring.query(LogQuery::default())).await.len(), 2);
    }

    #[tokio::test]
    async fn tail_since_until() {
        let ring = Arc::new(LogRing::new(100, 1 << 20));
        let tx = ring.begin_run();
        for i in 0..10 {
            ring.push(&tx, line(i, &i.to_string()));
        }
        let at = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let q = LogQuery {
            tail: Some(2),
            ..LogQuery::default()
        };
        assert_eq!(collect(ring.query(q)).await, ["8", "9"]);
        let q = LogQuery {
            since: at(3),
            until: at(5),
            ..LogQuery::default()
        };
        assert_eq!(collect(ring.query(q)).await, ["3", "4", "5"]);
    }

    #[tokio::test]
    async fn follow_ends_when_run_output_ends() {
        let ring = Arc::new(LogRing::new(100, 1 << 20));
        let tx = ring.begin_run();
        ring.push(&tx, line(1, "old"));
        let q = LogQuery {
            follow: true,
            ..LogQuery::default()
        };
        let mut rx = ring.query(q);
        assert_eq!(rx.recv().await.unwrap().text, "old");
        ring.push(&tx, line(2, "new"));
        assert_eq!(rx.recv().await.unwrap().text, "new");
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
