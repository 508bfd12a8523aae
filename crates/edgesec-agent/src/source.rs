//! The deployment in force: the last valid content of the deployment file, re-read whenever
//! the file changes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::{error, info, warn};

use crate::deployment::{Deployment, LoadError, load};

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// Watches the deployment file by polling its inode, size and times.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    /// The fingerprint at the last look; `None` before the first.
    seen: Option<Option<Fingerprint>>,
    current: Option<Deployment>,
}

impl Source {
    pub fn new(path: PathBuf) -> Self {
        Source {
            path,
            seen: None,
            current: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The deployment in force: the last valid one read, `None` while there has been none.
    pub fn current(&self) -> Option<&Deployment> {
        self.current.as_ref()
    }

    /// Looks at the file and re-reads it if it changed. Returns whether the deployment in
    /// force changed. A file that does not exist means no modules; an invalid one is
    /// reported and leaves the last valid deployment in force.
    pub fn refresh(&mut self) -> bool {
        let now = fingerprint(&self.path);
        if self.seen == Some(now) {
            return false;
        }
        self.seen = Some(now);
        let path = self.path.display().to_string();
        match load(&self.path) {
            Ok(d) => {
                let n = d.modules.len();
                let changed = self.replace(d);
                if changed {
                    info!("loaded deployment {path}: {n} module(s)");
                }
                changed
            }
            Err(LoadError::Missing) => {
                warn!("deployment file {path} does not exist; running no modules");
                self.replace(Deployment::default())
            }
            Err(e) => {
                let keeping = match &self.current {
                    Some(d) => format!(
                        "keeping the last valid deployment ({} module(s))",
                        d.modules.len()
                    ),
                    None => "no deployment is in force yet, so nothing is changed".to_owned(),
                };
                error!("invalid deployment file {path}: {e}; {keeping}");
                false
            }
        }
    }

    fn replace(&mut self, d: Deployment) -> bool {
        if self.current.as_ref() == Some(&d) {
            return false;
        }
        self.current = Some(d);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str =
        r#"{"schemaVersion":"1.0","modules":{"a":{"type":"process","settings":{"command":"a"}}}}"#;
    const TWO: &str = r#"{"schemaVersion":"1.0","modules":{"a":{"type":"process","settings":{"command":"a"}},
        "b":{"type":"process","settings":{"command":"b"}}}}"#;

    /// Replaces the file through a rename, as editors and deployment tools do, so each
    /// version has its own inode whatever the timestamp granularity.
    fn put(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn count(s: &Source) -> Option<usize> {
        s.current().map(|d| d.modules.len())
    }

    #[test]
    fn missing_file_is_no_modules() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Source::new(dir.path().join("deployment.json"));
        assert!(s.refresh());
        assert_eq!(count(&s), Some(0));
        assert!(!s.refresh());
        put(s.path(), ONE);
        assert!(s.refresh());
        assert_eq!(count(&s), Some(1));
        // removed again: back to no modules
        std::fs::remove_file(s.path()).unwrap();
        assert!(s.refresh());
        assert_eq!(count(&s), Some(0));
    }

    #[test]
    fn invalid_file_keeps_the_last_valid_deployment() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Source::new(dir.path().join("deployment.json"));
        put(s.path(), ONE);
        assert!(s.refresh());
        let before = s.current().cloned();
        put(
            s.path(),
            r#"{"schemaVersion":"1.0","modules":{"a":{"type":"vm"}}}"#,
        );
        assert!(!s.refresh());
        assert_eq!(s.current().cloned(), before);
        put(s.path(), TWO);
        assert!(s.refresh());
        assert_eq!(count(&s), Some(2));
    }

    #[test]
    fn invalid_file_at_start_means_no_deployment() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Source::new(dir.path().join("deployment.json"));
        put(s.path(), "{");
        assert!(!s.refresh());
        assert_eq!(count(&s), None);
        put(s.path(), ONE);
        assert!(s.refresh());
        assert_eq!(count(&s), Some(1));
    }

    #[test]
    fn rewriting_the_same_deployment_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Source::new(dir.path().join("deployment.json"));
        put(s.path(), ONE);
        assert!(s.refresh());
        // same meaning, different text
        put(s.path(), &format!("\n{ONE}\n"));
        assert!(!s.refresh());
        assert_eq!(count(&s), Some(1));
    }
}
