//! The on-disk record of each module's latest certificate, written off the issuance path.
//!
//! Issuing a certificate only queues its PEM; a background thread writes the queue out with
//! atomic replaces. Certificates issued to the same module in quick succession collapse into
//! one write. Nothing depends on these files (the module already has its certificate), so the
//! writes skip the fsync; the CA's own certificates are written durably elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

#[derive(Default)]
struct Queue {
    pending: HashMap<PathBuf, String>,
    /// Writes taken off the queue and not finished yet.
    in_flight: usize,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Handle on the writer thread; dropping it writes what is queued and ends the thread.
pub(crate) struct Recorder {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("edgesec-pki-records".into())
            .spawn(move || run(&worker))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the certificate record writer"))
            .ok();
        Recorder { shared, thread }
    }

    /// Queues `pem` to be written to `path`, replacing anything queued for it before.
    pub fn record(&self, path: PathBuf, pem: String) {
        if self.thread.is_none() {
            write(&path, &pem);
            return;
        }
        let mut q = lock(&self.shared);
        q.pending.insert(path, pem);
        self.shared.changed.notify_all();
    }

    /// Waits until everything queued so far is on disk.
    pub fn flush(&self) {
        let mut q = lock(&self.shared);
        while !q.pending.is_empty() || q.in_flight > 0 {
            if self.thread.is_none() {
                return;
            }
            q = self
                .shared
                .changed
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    shared.queue.lock().unwrap_or_else(|p| p.into_inner())
}

fn write(path: &std::path::Path, pem: &str) {
    if let Err(e) = crate::store::write_replace_lazily(path, pem.as_bytes()) {
        tracing::warn!(error = %e, "cannot keep a copy of a module certificate");
    }
}

fn run(shared: &Shared) {
    loop {
        let batch = {
            let mut q = lock(shared);
            while q.pending.is_empty() && !q.stop {
                q = shared.changed.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.pending.is_empty() && q.stop {
                return;
            }
            let batch = std::mem::take(&mut q.pending);
            q.in_flight = batch.len();
            batch
        };
        for (path, pem) in &batch {
            write(path, pem);
        }
        lock(shared).in_flight = 0;
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_latest_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::start();
        let f = dir.path().join("m.server.pem");
        for i in 0..100 {
            r.record(f.clone(), format!("pem {i}"));
        }
        r.flush();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "pem 99");
        r.record(f.clone(), "last".into());
        drop(r);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "last");
    }
}
