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

impl AuditLog {
    /// Opens (appends to) the log file and starts its writer task.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .await?;
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let mut buf = line.into_bytes();
                // batch whatever else is queued into one write
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(more.as_bytes());
                }
                if let Err(e) = file.write_all(&buf).await {
                    tracing::error!(error = %e, "cannot write the audit log");
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
