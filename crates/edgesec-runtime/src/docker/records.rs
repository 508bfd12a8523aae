//! The containers edgesec created, kept in a state file so that a restarted daemon re-attaches
//! exactly those (by container id, never by name or label: a look-alike container made by hand
//! with the same name and labels is not adopted).

use std::collections::HashMap;
use std::path::Path;

use bollard::models::ContainerCreateBody;
use edgesec_attest::Measurement;
use serde::{Deserialize, Serialize};

use super::module::Shared;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The container id.
    pub id: String,
    /// Its image id when it was created.
    pub image_id: Measurement,
    /// What it was created from: a re-attached container must have been made from exactly the
    /// body the module's registration gives now, else it is replaced.
    pub body: ContainerCreateBody,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    modules: HashMap<String, Record>,
}

/// Reads the records file; a missing file is an empty one, a corrupt one is reported and
/// treated as empty (the containers it named are then reported as orphans, not adopted).
pub(crate) fn load(path: &Path) -> HashMap<String, Record> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<File>(&bytes) {
            Ok(f) => f.modules,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "the container records are corrupt; edgesec's earlier containers will be reported as orphans");
                HashMap::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read the container records");
            HashMap::new()
        }
    }
}

/// Writes the current records (atomically). Failures are logged: the engine is the truth for
/// the running daemon, and a stale file only costs re-creating containers after a restart.
pub(crate) async fn save(shared: &Shared) {
    let Some(path) = shared.config.state_file.clone() else {
        return;
    };
    let _guard = shared.save_lock.lock().await;
    let entries: Vec<_> = shared.modules().values().cloned().collect();
    let mut file = File::default();
    for e in entries {
        file.modules.insert(e.name.clone(), e.record());
    }
    // Records of an earlier run not yet re-attached stay until the daemon decides about them.
    for (name, r) in shared.pending().iter() {
        file.modules
            .entry(name.clone())
            .or_insert_with(|| r.clone());
    }
    let bytes = match serde_json::to_vec_pretty(&file) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the container records");
            return;
        }
    };
    let written = tokio::task::spawn_blocking(move || {
        edgesec_state::write_replace(&path, &bytes, 0o600).map_err(|e| e.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot write the container records"),
        Err(e) => tracing::error!(error = %e, "cannot write the container records"),
    }
}
