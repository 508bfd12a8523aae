//! The `[tpm]` and `[measure]` sections of keyd.toml, and the one TPM connection keyd holds.
//!
//! ```toml
//! [tpm]                             # optional; a TPM is used when this section is present,
//!                                   # the store (or a route) is "tpm", or the master key is sealed
//! tcti = "device:/dev/tpmrm0"       # default; swtpm: "swtpm:host=127.0.0.1,port=2321"
//! srk_handle = 0x81000001           # persistent handle of the storage root key
//! quote_pcrs = []                   # PCRs a quote covers besides the measurement PCR
//! owner_auth_file = "owner.auth"    # the owner hierarchy's authorization value (0600, keyd's
//!                                   # user); needed to seal the master key (see sealing.rs)
//! allow_empty_owner_auth = false    # development only: seal although the owner auth is empty
//!
//! [measure]                         # optional
//! pcr = 23                          # where measurements are extended: 16 or 23 (resettable)
//! max_events = 4096
//! ```

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use edgesec_config::ConfigError;
use edgesec_keys::tpm::{DEFAULT_SRK_HANDLE, DEFAULT_TCTI, Tpm, TpmConfig};
use serde::Deserialize;
use zeroize::Zeroizing;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTpm {
    #[serde(default)]
    tcti: Option<String>,
    #[serde(default)]
    srk_handle: Option<u32>,
    #[serde(default)]
    quote_pcrs: Vec<u8>,
    #[serde(default)]
    owner_auth_file: Option<PathBuf>,
    #[serde(default)]
    allow_empty_owner_auth: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeasure {
    #[serde(default)]
    pcr: Option<u8>,
    #[serde(default)]
    max_events: Option<usize>,
}

/// A validated `[tpm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmSettings {
    /// Whether the section was given.
    pub configured: bool,
    pub tcti: String,
    pub srk_handle: u32,
    pub quote_pcrs: Vec<u8>,
    /// Holds the owner hierarchy's authorization value (absolute path).
    pub owner_auth_file: Option<PathBuf>,
    /// Development only: seal the master key while the owner hierarchy has no authorization.
    pub allow_empty_owner_auth: bool,
}

/// A validated `[measure]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasureSettings {
    pub pcr: u8,
    pub max_events: usize,
}

pub const DEFAULT_PCR: u8 = 23;

impl TpmSettings {
    pub(crate) fn from_raw(file: &Path, raw: Option<RawTpm>) -> Result<Self, ConfigError> {
        let configured = raw.is_some();
        let raw = raw.unwrap_or_default();
        let srk_handle = raw.srk_handle.unwrap_or(DEFAULT_SRK_HANDLE);
        if !(0x8100_0000..=0x81ff_ffff).contains(&srk_handle) {
            return Err(ConfigError::invalid(
                file,
                "tpm.srk_handle",
                "must be a persistent handle, 0x81000000 to 0x81ffffff",
            ));
        }
        if raw.quote_pcrs.len() > 7 || raw.quote_pcrs.iter().any(|&p| p > 23) {
            return Err(ConfigError::invalid(
                file,
                "tpm.quote_pcrs",
                "must list at most 7 PCRs, each 0 to 23",
            ));
        }
        let tcti = raw.tcti.unwrap_or_else(|| DEFAULT_TCTI.into());
        if tcti.is_empty() {
            return Err(ConfigError::invalid(file, "tpm.tcti", "must not be empty"));
        }
        if raw
            .owner_auth_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(
                file,
                "tpm.owner_auth_file",
                "must not be empty",
            ));
        }
        Ok(TpmSettings {
            configured,
            tcti,
            srk_handle,
            quote_pcrs: raw.quote_pcrs,
            owner_auth_file: raw
                .owner_auth_file
                .map(|p| edgesec_config::resolve(file, &p)),
            allow_empty_owner_auth: raw.allow_empty_owner_auth,
        })
    }

    /// Connects to the TPM, with the owner authorization from `owner_auth_file` when given.
    pub fn connect(&self) -> Result<Tpm, String> {
        let tpm = Tpm::connect(&TpmConfig {
            tcti: self.tcti.clone(),
            srk_handle: self.srk_handle,
        })
        .map_err(|e| e.to_string())?;
        if let Some(path) = &self.owner_auth_file {
            let auth = read_owner_auth(path)?;
            tpm.set_owner_auth(Some(&auth))
                .map_err(|e| format!("tpm.owner_auth_file {}: {e}", path.display()))?;
        }
        Ok(tpm)
    }
}

/// Reads the owner authorization: the file's bytes less one trailing newline. Refuses a file
/// that group or others could read, as the store refuses such a directory. The checks run on
/// the opened file, so a swap between check and read changes nothing.
pub fn read_owner_auth(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let refuse = |why: String| format!("refusing tpm.owner_auth_file {}: {why}", path.display());
    let mut f = std::fs::File::open(path)
        .map_err(|e| format!("cannot read tpm.owner_auth_file {}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read tpm.owner_auth_file {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "it is readable or writable by group or others (mode {mode:04o}); run: chmod 600 {}",
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    // Root (reseal) may read a file keyd's user owns; keyd's user only its own.
    if meta.uid() != euid && euid != 0 {
        return Err(refuse(format!(
            "it is owned by uid {} but keyd runs as uid {euid}; run: chown {euid} {}",
            meta.uid(),
            path.display()
        )));
    }
    // Room for more than the limit up front, so no reallocation leaves a copy behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(1025));
    f.by_ref()
        .take(1024)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read tpm.owner_auth_file {}: {e}", path.display()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(refuse(
            "it is empty (it must hold the value set with `tpm2_changeauth -c owner`)".into(),
        ));
    }
    Ok(bytes)
}

impl MeasureSettings {
    pub(crate) fn from_raw(file: &Path, raw: Option<RawMeasure>) -> Result<Self, ConfigError> {
        let raw = raw.unwrap_or_default();
        let pcr = raw.pcr.unwrap_or(DEFAULT_PCR);
        if pcr != 16 && pcr != 23 {
            return Err(ConfigError::invalid(
                file,
                "measure.pcr",
                "must be 16 or 23 (the PCRs keyd can reset at start)",
            ));
        }
        let max_events = raw.max_events.unwrap_or(4096);
        if !(16..=1_000_000).contains(&max_events) {
            return Err(ConfigError::invalid(
                file,
                "measure.max_events",
                "must be between 16 and 1000000",
            ));
        }
        Ok(MeasureSettings { pcr, max_events })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::read_owner_auth;

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8], mode: u32) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn the_owner_auth_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, want) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret", b"secret"),
            (b"secret\n\n", b"secret\n"),
            (b" s p\r\n", b" s p\r"),
            (b"\x00\xff", b"\x00\xff"),
        ] {
            let p = file(&dir, "owner.auth", bytes, 0o600);
            assert_eq!(&read_owner_auth(&p).unwrap()[..], want, "{bytes:?}");
        }
        let p = file(&dir, "ro.auth", b"secret", 0o400);
        assert_eq!(&read_owner_auth(&p).unwrap()[..], b"secret");
    }

    #[test]
    fn a_readable_empty_or_missing_owner_auth_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o620, 0o644] {
            let p = file(&dir, "owner.auth", b"secret\n", mode);
            let e = read_owner_auth(&p).unwrap_err();
            assert!(
                e.contains(&p.display().to_string())
                    && e.contains(&format!("mode {mode:04o}"))
                    && e.contains(&format!("chmod 600 {}", p.display()))
                    && !e.contains("secret"),
                "{e}"
            );
        }
        for bytes in [&b""[..], b"\n"] {
            let p = file(&dir, "empty.auth", bytes, 0o600);
            let e = read_owner_auth(&p).unwrap_err();
            assert!(e.contains("is empty") && e.contains("empty.auth"), "{e}");
        }
        let e = read_owner_auth(&dir.path().join("missing.auth")).unwrap_err();
        assert!(
            e.contains("cannot read tpm.owner_auth_file") && e.contains("missing.auth"),
            "{e}"
        );
        let e = read_owner_auth(dir.path()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
