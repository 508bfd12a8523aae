//! `<state_dir>/provisioning.json`: the last DPS assignment, so the device starts when the
//! cloud is away. It holds who the device is and where, never a key: keys stay in keyd. It is
//! written atomically, and belongs to the provisioning settings it was made with (a
//! fingerprint of them), so a changed config is never served from an old assignment.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "provisioning.json";
/// A cache file larger than this is not ours.
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CachedProvisioning {
    pub hub: String,
    pub device_id: String,
    /// `sas`, `x509` or `tpm`.
    pub credential: String,
    pub registration_id: String,
    /// Unix seconds of the assignment.
    pub provisioned_at: u64,
    /// Fingerprint of the provisioning settings it was made with.
    pub settings: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The cached assignment for these `settings`, if there is a valid one. An unreadable or
/// foreign file is ignored with a warning (and replaced at the next assignment).
pub fn load(state_dir: &Path, settings: &str) -> Option<CachedProvisioning> {
    let p = path(state_dir);
    let meta = std::fs::metadata(&p).ok()?;
    if meta.len() > MAX_BYTES {
        tracing::warn!(file = %p.display(), "the provisioning cache is too large; ignoring it");
        return None;
    }
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(file = %p.display(), error = %e, "cannot read the provisioning cache");
            return None;
        }
    };
    match serde_json::from_slice::<CachedProvisioning>(&text) {
        Ok(c) if c.settings == settings => Some(c),
        Ok(_) => {
            tracing::info!(file = %p.display(), "the provisioning settings changed since the cached assignment; not using it");
            None
        }
        Err(e) => {
            tracing::warn!(file = %p.display(), error = %e, "the provisioning cache is invalid; ignoring it");
            None
        }
    }
}

pub fn save(state_dir: &Path, c: &CachedProvisioning) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(c).expect("serializable");
    edgesec_state::write_replace(&path(state_dir), &text, 0o600)
        .map_err(|e| format!("cannot write the provisioning cache: {e}"))
}

pub fn clear(state_dir: &Path) {
    let p = path(state_dir);
    if p.exists()
        && let Err(e) = edgesec_state::remove(&p)
    {
        tracing::warn!(file = %p.display(), error = %e, "cannot remove the provisioning cache");
    }
}

/// A fingerprint of what decides an assignment: endpoint, scope, registration id, method.
pub fn settings_fingerprint(parts: &[&str]) -> String {
    let joined = parts.join("\n");
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(settings: &str) -> CachedProvisioning {
        CachedProvisioning {
            hub: "hub.example".into(),
            device_id: "d1".into(),
            credential: "sas".into(),
            registration_id: "r1".into(),
            provisioned_at: 1_700_000_000,
            settings: settings.into(),
        }
    }

    #[test]
    fn the_cache_round_trips_for_the_same_settings_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = settings_fingerprint(&["https://dps", "scope", "r1", "symmetric_key"]);
        assert_eq!(load(dir.path(), &f), None);
        save(dir.path(), &sample(&f)).unwrap();
        assert_eq!(load(dir.path(), &f), Some(sample(&f)));
        let other = settings_fingerprint(&["https://dps", "scope", "r2", "symmetric_key"]);
        assert_eq!(load(dir.path(), &other), None);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.to_lowercase().contains("key\""), "{text}");
        std::fs::write(path(dir.path()), "{not json").unwrap();
        assert_eq!(load(dir.path(), &f), None);
        clear(dir.path());
        assert!(!path(dir.path()).exists());
    }
}
