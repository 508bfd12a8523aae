//! The event log file: one JSON record per line, appended and synced per event (events are
//! rare: only distinct measurements are recorded). A new boot of keyd starts a new log (the PCR
//! starts again too); the previous one is kept beside it as `events.prev.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesec_integrity::Event;

pub struct LogFile {
    path: PathBuf,
    file: File,
}

impl LogFile {
    /// Starts a new log in `dir` (0700), keeping the previous one as `events.prev.jsonl`.
    pub fn create(dir: &Path) -> Result<LogFile, String> {
        edgesec_state::ensure_private_dir(dir).map_err(|e| e.to_string())?;
        let path = dir.join("events.jsonl");
        if path.exists() {
            std::fs::rename(&path, dir.join("events.prev.jsonl"))
                .map_err(|e| format!("cannot rotate {}: {e}", path.display()))?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(LogFile { path, file })
    }

    pub fn append(&mut self, event: &Event) -> Result<(), String> {
        let mut line = serde_json::to_vec(event).expect("serializable");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// Now as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_has_the_right_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
