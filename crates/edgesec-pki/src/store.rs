//! Crash-safe persistence of certificates and small state files.
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, renamed over
//! the target and followed by a flush of the directory, so a crash leaves the old file or the
//! new one, never a torn one. Directories are created 0700 and files 0600.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{PkiError, Result};

/// Creates `dir` (and its parents) with mode 0700 if it is absent, and refuses a directory
/// that other users may write to.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(PkiError::Config(format!(
                    "{} is not a directory",
                    dir.display()
                )));
            }
            if meta.permissions().mode() & 0o022 != 0 {
                return Err(PkiError::Config(format!(
                    "{} may be written by other users (mode {:o}); make it 0700",
                    dir.display(),
                    meta.permissions().mode() & 0o7777
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| PkiError::io(dir, e)),
        Err(e) => Err(PkiError::io(dir, e)),
    }
}

/// Atomically and durably replaces `path` with `bytes` (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replace(path, bytes, true)
}

/// Atomically replaces `path` with `bytes` (mode 0600) without waiting for the disk: readers
/// see the old file or the new one, but a crash may bring back the old one. For copies that
/// nothing depends on (the record of a module's latest certificate), where an fsync per
/// issuance would cost most of the issuance rate.
pub fn write_replace_lazily(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replace(path, bytes, false)
}

fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::Config(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        unique_suffix()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| PkiError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| PkiError::io(&tmp, e))?;
        if durable {
            f.sync_all().map_err(|e| PkiError::io(&tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))?;
        if durable { sync_dir(dir) } else { Ok(()) }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PkiError::io(dir, e))
}

/// Removes `path` if it exists, then flushes its directory.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Encodes certificates as concatenated PEM blocks.
pub fn certs_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| edgesec_keys::pem_encode("CERTIFICATE", c))
        .collect()
}

/// Decodes every `CERTIFICATE` block of `pem`; text around the blocks is ignored.
/// `what` names the source in errors (a file path, usually).
pub fn certs_from_pem(pem: &[u8], what: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PkiError::corrupt(what, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::corrupt(what, "holds no certificate"));
    }
    for cert in &certs {
        if x509_parser::parse_x509_certificate(cert).is_err() {
            return Err(PkiError::corrupt(
                what,
                "holds a certificate that does not parse",
            ));
        }
    }
    Ok(certs)
}

/// Reads a PEM certificate file. `Ok(None)` when the file does not exist; a file that exists but
/// holds no valid certificate is [`PkiError::CorruptFile`] naming it.
pub fn read_certs(path: &Path) -> Result<Option<Vec<CertificateDer<'static>>>> {
    match fs::read(path) {
        Ok(bytes) => certs_from_pem(&bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Writes certificates as a PEM file, atomically.
pub fn write_certs(path: &Path, certs: &[CertificateDer<'_>]) -> Result<()> {
    write_atomic(path, certs_to_pem(certs).as_bytes())
}

/// The directory layout under the caller's state dir.
#[derive(Clone, Debug)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub modules_dir: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Self {
        let certs_dir = state_dir.join("certs");
        Layout {
            state_dir: state_dir.to_path_buf(),
            modules_dir: certs_dir.join("modules"),
            certs_dir,
        }
    }

    /// Creates every directory of the layout, 0700.
    pub fn create(&self) -> Result<()> {
        ensure_private_dir(&self.state_dir)?;
        ensure_private_dir(&self.certs_dir)?;
        ensure_private_dir(&self.modules_dir)
    }

    pub fn root_cert(&self) -> PathBuf {
        self.certs_dir.join("device-root-ca.pem")
    }

    pub fn edge_cert(&self) -> PathBuf {
        self.certs_dir.join("edge-ca.pem")
    }

    pub fn ca_state(&self) -> PathBuf {
        self.certs_dir.join("ca-state.toml")
    }

    pub fn trust_bundle(&self) -> PathBuf {
        self.certs_dir.join("trust-bundle.pem")
    }

    /// Where a module's latest certificate of one kind is kept. Module names may hold any
    /// character, so the file name is a cleaned-up name plus a hash of the real one.
    pub fn module_cert(&self, module: &str, kind: &str) -> PathBuf {
        let clean: String = module
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, module.as_bytes());
        let tag: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.modules_dir.join(format!("{clean}-{tag}.{kind}.pem"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = sub.join("x.pem");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        remove_file(&f).unwrap();
        remove_file(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn refuses_a_world_writable_dir() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_private_dir(&open).unwrap_err();
        assert!(err.to_string().contains("other users"), "{err}");
    }

    #[test]
    fn corrupt_pem_is_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("edge-ca.pem");
        assert!(read_certs(&f).unwrap().is_none());
        fs::write(&f, "garbage\n").unwrap();
        let err = read_certs(&f).unwrap_err();
        assert!(matches!(err, PkiError::CorruptFile { .. }));
        assert!(err.to_string().contains("edge-ca.pem"), "{err}");
        fs::write(
            &f,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_certs(&f).unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
    }

    #[test]
    fn module_file_names_are_clean_and_distinct() {
        let l = Layout::new(Path::new("/s"));
        let a = l.module_cert("$edgeHub", "server");
        let b = l.module_cert("_edgeHub", "server");
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("_edgeHub-") && name.ends_with(".server.pem"),
            "{name}"
        );
        let odd = l.module_cert("../../etc/passwd", "identity");
        assert_eq!(odd.parent().unwrap(), Path::new("/s/certs/modules"));
    }
}
