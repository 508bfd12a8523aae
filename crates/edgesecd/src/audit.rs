//! The audit log: one JSON line per authorization decision. Lines go through a bounded channel
//! to a writer task, so a request never waits on the disk; if the channel is full the record is
//! counted as dropped and the count is written with the next record that fits.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

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
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

const QUEUE: usize = 4096;

/// Size at which the audit log is rotated, unless configured otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;

async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .await
}

impl AuditLog {
    /// Opens (appends to) the log file and starts its writer task. When the file passes
    /// `max_bytes` it is renamed to `<name>.1` (replacing the previous one) and a new file is
    /// started, so the log never takes more than about twice that.
    pub async fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = open_append(path).await?;
        let mut size = file.metadata().await?.len();
        let path = path.to_owned();
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // take whatever else is queued too, and write it in as few calls as the size
                // limit allows: the limit is checked line by line
                let mut lines = vec![first];
                while let Ok(more) = rx.try_recv() {
                    lines.push(more);
                }
                let mut buf = Vec::new();
                for line in lines {
                    if size + (buf.len() + line.len()) as u64 > max_bytes
                        && size + buf.len() as u64 > 0
                    {
                        if let Err(e) = file.write_all(&buf).await {
                            tracing::error!(error = %e, "cannot write the audit log");
                        }
                        buf.clear();
                        let _ = file.flush().await;
                        let mut old = path.clone().into_os_string();
                        old.push(".1");
                        match tokio::fs::rename(&path, &old).await {
                            Ok(()) => match open_append(&path).await {
                                Ok(f) => (file, size) = (f, 0),
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot start a new audit log")
                                }
                            },
                            Err(e) => tracing::error!(error = %e, "cannot rotate the audit log"),
                        }
                    }
                    buf.extend_from_slice(line.as_bytes());
                }
                match file.write_all(&buf).await {
                    Ok(()) => size += buf.len() as u64,
                    Err(e) => tracing::error!(error = %e, "cannot write the audit log"),
                }
            }
            let _ = file.flush().await;
        });
        Ok(AuditLog {
            tx,
            dropped: Arc::default(),
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
