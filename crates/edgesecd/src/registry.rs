//! The daemon's persistent records: module registrations and identities, in one JSON file
//! written atomically on every change. A restart keeps identities and generation ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgesec_api::mgmt::ModuleSpec;
use edgesec_attest::Measurement;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// A module as the agent registered it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    pub spec: ModuleSpec,
    /// SHA-256 of the executable at create time; every caller claiming to be this module must
    /// run exactly this file.
    pub measurement: Measurement,
    pub created_at: String,
    /// What the operator last asked for, so a restart of edgesecd resumes it.
    pub desired_running: bool,
}

/// A module identity. Keys are never stored: the module key is derived in keyd from the device
/// key over `<moduleId>:<generationId>:primary`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentityRecord {
    pub module_id: String,
    pub generation_id: String,
    pub managed_by: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Records {
    #[serde(default)]
    pub modules: BTreeMap<String, Registration>,
    #[serde(default)]
    pub identities: BTreeMap<String, IdentityRecord>,
}

/// The records in memory, with the file they persist to. Writers hold the lock across the
/// write, so the file always matches what readers see.
pub struct Registry {
    path: PathBuf,
    records: RwLock<Records>,
}

impl Registry {
    /// Loads `<state_dir>/registry.json`, or starts empty. A corrupted file is an error naming
    /// it: registrations are never thrown away silently.
    pub fn open(state_dir: &Path) -> Result<Self, String> {
        let path = state_dir.join("registry.json");
        let records = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is corrupted ({e}); move it away to start with no modules",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Records::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Registry {
            path,
            records: RwLock::new(records),
        })
    }

    pub async fn read(&self) -> tokio::sync::RwLockReadGuard<'_, Records> {
        self.records.read().await
    }

    /// Applies `change` and persists the result; when persisting fails, memory is left as it
    /// was and the error is returned.
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&mut Records) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut guard = self.records.write().await;
        let mut next = guard.clone();
        let out = change(&mut next)?;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| e.to_string())?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || edgesec_state::write_replace(&path, &bytes, 0o600))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        *guard = next;
        Ok(out)
    }
}

/// A fresh generation id: 20 digits from the clock and randomness, like IoT Hub's numeric ids.
pub fn new_generation_id() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut r = [0u8; 8];
    SystemRandom::new().fill(&mut r).expect("system random");
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    format!(
        "{:016}{:04}",
        micros % 10_u64.pow(16),
        u64::from_le_bytes(r) % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening_and_failed_changes_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        r.update(|rec| {
            rec.identities.insert(
                "m".into(),
                IdentityRecord {
                    module_id: "m".into(),
                    generation_id: "1".into(),
                    managed_by: "x".into(),
                },
            );
            Ok(())
        })
        .await
        .unwrap();
        let e = r.update(|rec| {
            rec.identities.clear();
            Err::<(), _>("refused".into())
        });
        assert_eq!(e.await.unwrap_err(), "refused");
        assert_eq!(r.read().await.identities.len(), 1);
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(again.read().await.identities["m"].generation_id, "1");
    }

    #[test]
    fn a_corrupted_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registry.json"), b"{\"modules\": [").unwrap();
        let e = Registry::open(dir.path()).err().unwrap();
        assert!(e.contains("registry.json is corrupted"), "{e}");
    }

    #[test]
    fn generation_ids_differ() {
        assert_ne!(new_generation_id(), new_generation_id());
        assert_eq!(new_generation_id().len(), 20);
    }
}
