//! The audit log: one JSON line per authorization decision. Lines go through a bounded channel
//! to a writer thread, so a request never waits on the disk; if the channel is full the record is
//! counted as dropped and the count is written with the next record that fits. Each caller's
//! decisions of one kind have a budget per second (see `limit.rs`): past it they are counted and
//! summed in one line, so a flood cannot fill the disk or rotate earlier records away.

mod limit;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use serde::Serialize;

/// One decision.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    pub socket: &'a str,
    pub pid: Option<i32>,
    pub uid: u32,
    /// The module the caller was attested as, if any.
    pub module: Option<&'a str>,
    pub method: &'a str,
    pub route: &'a str,
    /// `allow` or `deny`.
    pub decision: &'a str,
    /// Why it was denied, in a few words (e.g. `not the agent`, `measurement mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub status: u16,
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::SyncSender<String>,
    dropped: Arc<AtomicU64>,
    limiter: Arc<limit::Limiter>,
}

/// The longest route written as it was asked; longer ones are cut (the caller chose them).
const MAX_ROUTE_BYTES: usize = 256;

const QUEUE: usize = 4096;
/// How long the writer lets lines gather after a write. A line that arrives while the writer
/// waits is written at once; one that arrives during this pause waits at most this long.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Size at which the audit log is rotated, unless configured otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The writer thread's state: the open file, its size, and the lines not written yet.
struct Writer {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max_bytes: u64,
    pending: Vec<u8>,
}

impl Writer {
    /// Queues a line; rotates first (after writing what is queued) if it would pass the limit.
    fn push(&mut self, line: &str) {
        let queued = self.size + self.pending.len() as u64;
        if queued + line.len() as u64 > self.max_bytes && queued > 0 {
            self.flush();
            self.rotate();
        }
        self.pending.extend_from_slice(line.as_bytes());
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => self.size += self.pending.len() as u64,
            Err(e) => tracing::error!(error = %e, "cannot write the audit log"),
        }
        self.pending.clear();
    }

    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        match std::fs::rename(&self.path, &old) {
            Ok(()) => match open_append(&self.path) {
                Ok(f) => (self.file, self.size) = (f, 0),
                Err(e) => tracing::error!(error = %e, "cannot start a new audit log"),
            },
            Err(e) => tracing::error!(error = %e, "cannot rotate the audit log"),
        }
    }
}

impl AuditLog {
    /// Opens (appends to) the log file and starts its writer thread. When the file passes
    /// `max_bytes` it is renamed to `<name>.1` (replacing the previous one) and a new file is
    /// started, so the log never takes more than about twice that.
    ///
    /// The writer is a plain thread with blocking writes rather than an async task on
    /// `tokio::fs`, which hands every write to the blocking pool and back; after each write it
    /// pauses for [`BATCH_PAUSE`], so a busy daemon wakes it about once per pause, not once per
    /// request.
    pub async fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let mut w = Writer {
            size: file.metadata()?.len(),
            file,
            path: path.to_owned(),
            max_bytes,
            pending: Vec::new(),
        };
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let limiter = Arc::new(limit::Limiter::default());
        let counts = Arc::clone(&limiter);
        std::thread::Builder::new()
            .name("edgesec-audit".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                        Ok(line) => w.push(&line),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    // batch whatever else is queued into one write
                    while let Ok(more) = rx.try_recv() {
                        w.push(&more);
                    }
                    for s in counts.take_ended(std::time::Instant::now()) {
                        tracing::warn!(socket = s.kind.socket, uid = s.kind.uid, decision = s.kind.decision, reason = ?s.kind.reason, suppressed = s.suppressed, "more decisions of this kind than the audit budget; counted, not written one by one");
                        w.push(&summary_line(&s));
                    }
                    w.flush();
                    // Collect lines for a moment before waiting again: a sender wakes this
                    // thread only while it waits, so under load the requests share one wake-up
                    // (and its context switches) per batch instead of paying one each.
                    std::thread::sleep(BATCH_PAUSE);
                }
                w.flush();
            })?;
        Ok(AuditLog {
            tx,
            dropped: Arc::default(),
            limiter,
        })
    }

    pub fn record(&self, r: &AuditRecord<'_>) {
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            #[serde(flatten)]
            record: &'a AuditRecord<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            dropped_before: Option<u64>,
        }
        let kind = limit::Kind {
            socket: r.socket.to_owned(),
            uid: r.uid,
            module: r.module.map(str::to_owned),
            decision: r.decision.to_owned(),
            reason: r.reason.map(str::to_owned),
        };
        if self.limiter.check(&kind, std::time::Instant::now()) == limit::Verdict::Suppress {
            return;
        }
        let route = limit::clip(r.route, MAX_ROUTE_BYTES);
        let r = &AuditRecord {
            route: &route,
            ..*r
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let line = Line {
            time: crate::time::now_rfc3339(),
            record: r,
            dropped_before: (dropped > 0).then_some(dropped),
        };
        let mut text = serde_json::to_string(&line).expect("serializable");
        text.push('\n');
        if self.tx.try_send(text).is_err() {
            self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
        }
        if r.decision == "deny" {
            tracing::warn!(socket = r.socket, pid = ?r.pid, uid = r.uid, route = r.route, reason = ?r.reason, "request denied");
        }
    }
}

/// The line that stands for a window's suppressed decisions.
fn summary_line(s: &limit::Suppressed) -> String {
    #[derive(Serialize)]
    struct Summary<'a> {
        time: String,
        #[serde(flatten)]
        counted: &'a limit::Suppressed,
    }
    let mut text = serde_json::to_string(&Summary {
        time: crate::time::now_rfc3339(),
        counted: s,
    })
    .expect("serializable");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> AuditRecord<'static> {
        AuditRecord {
            socket: "workload",
            pid: Some(1),
            uid: 0,
            module: Some("m"),
            method: "POST",
            route: "/x",
            decision: "allow",
            reason: None,
            status: 200,
        }
    }

    #[tokio::test]
    async fn the_log_rotates_at_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, 4096).await.unwrap();
        // queue them all at once: the writer takes them as one batch and must still rotate
        for _ in 0..200 {
            log.record(&rec());
        }
        drop(log);
        let old = dir.path().join("audit.log.1");
        for _ in 0..500 {
            if old.exists()
                && std::fs::metadata(&path)
                    .map(|m| m.len() > 0)
                    .unwrap_or(false)
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        for p in [&path, &old] {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(
                text.len() as u64 <= 4096 + 512,
                "{} is {} bytes",
                p.display(),
                text.len()
            );
            assert!(
                text.lines()
                    .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
                "whole lines only"
            );
        }
    }
}
