//! The docker backend's records: one entry per module, the engine client, the image-id cache
//! and the exit event channel.
//!
//! Locks: `Shared::modules` (std mutex) only to look up, insert or remove; `Entry::ops`
//! (tokio mutex, per module) across the awaits of one create/start/stop/remove; `Entry::inner`
//! (std mutex) for short sections. Order: `ops`, then `modules`, then `inner`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use edgesec_attest::Measurement;
use tokio::sync::broadcast;

use super::DockerRuntimeConfig;
use super::records::Record;
use super::status::Local;
use crate::error::RuntimeError;
use crate::types::{ExitEvent, PullPolicy};

#[derive(Debug)]
pub(crate) struct Shared {
    pub docker: Docker,
    pub config: DockerRuntimeConfig,
    pub modules: Mutex<HashMap<String, Arc<Entry>>>,
    /// Records of an earlier daemon run, not yet re-attached by a `create`.
    pub pending: Mutex<HashMap<String, Record>>,
    /// Container id → image id. A container's image never changes, so an entry stays true
    /// for as long as the container exists; entries go with their container.
    pub images: Mutex<HashMap<String, Measurement>>,
    pub exits: broadcast::Sender<ExitEvent>,
    /// Serializes writes of the records file.
    pub save_lock: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every section leaves the data consistent before anything that could panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn modules(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        lock(&self.modules)
    }

    pub fn pending(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        lock(&self.pending)
    }

    pub fn images(&self) -> MutexGuard<'_, HashMap<String, Measurement>> {
        lock(&self.images)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Entry>, RuntimeError> {
        self.modules()
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound {
                name: name.to_owned(),
            })
    }

    /// The module whose current container is `id`.
    pub fn by_container(&self, id: &str) -> Option<Arc<Entry>> {
        self.modules().values().find(|e| e.lock().id == id).cloned()
    }
}

/// One module.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: String,
    /// The container's name in the engine.
    pub container: String,
    pub image: String,
    pub pull: PullPolicy,
    /// What the container is created from (again, when it is gone).
    pub body: ContainerCreateBody,
    pub ops: tokio::sync::Mutex<()>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Id of the container edgesec created for the module (the only one attributed to it).
    pub id: String,
    pub image_id: Measurement,
    pub local: Local,
    /// Whether a run was started before (the next start counts as a restart).
    pub started_once: bool,
    /// The container was removed outside edgesec (seen by an event or a failed inspect).
    pub gone: bool,
    /// edgesec is removing it: its destroy event is expected.
    pub removing: bool,
}

impl Entry {
    pub fn new(
        name: &str,
        container: String,
        body: ContainerCreateBody,
        image: String,
        pull: PullPolicy,
        id: String,
        image_id: Measurement,
    ) -> Entry {
        Entry {
            name: name.to_owned(),
            container,
            image,
            pull,
            body,
            ops: tokio::sync::Mutex::new(()),
            inner: Mutex::new(Inner {
                id,
                image_id,
                local: Local::default(),
                started_once: false,
                gone: false,
                removing: false,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub fn id(&self) -> String {
        self.lock().id.clone()
    }

    pub fn record(&self) -> Record {
        let inner = self.lock();
        Record {
            id: inner.id.clone(),
            image_id: inner.image_id,
            body: self.body.clone(),
        }
    }
}

/// An engine image id (`sha256:<hex>`; podman may give the bare hex) as a measurement.
pub(crate) fn parse_image_id(id: &str) -> Option<Measurement> {
    let full = if id.contains(':') {
        id.to_owned()
    } else {
        format!("sha256:{id}")
    };
    full.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_ids_parse_with_or_without_prefix() {
        let hex = "e3416e56859d7fddce76d4470ff530a080335085747fd7acd3923a5ccf152b91";
        let m = super::parse_image_id(&format!("sha256:{hex}")).unwrap();
        assert_eq!(m.hex(), hex);
        assert_eq!(super::parse_image_id(hex), Some(m));
        assert_eq!(super::parse_image_id("sha512:abc"), None);
        assert_eq!(super::parse_image_id(""), None);
    }
}
