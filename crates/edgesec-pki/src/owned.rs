//! The CA certificates edgesec owns (the quickstart root, the edge CA of quickstart and issued
//! modes): their state file, loading them back, and replacing them crash-safely.
//!
//! `ca-state.toml` says which key in the key store belongs to which certificate. A new key gets
//! a new id (`edgesec/ca/edge-<n>`) and is written to the state as *pending* before it is made;
//! the certificate file is written next and only then does the state name the key as current.
//! The old key is put on a *retired* list and deleted last. Whatever step a crash interrupts,
//! the next start matches the certificate on disk to the current or pending key and finishes
//! or undoes the step.

use std::sync::Arc;

use edgesec_keys::{ImportMaterial, KeyError, KeyId, KeyPairAlgorithm, KeyStore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::certinfo::{CertInfo, raw_public_key};
use crate::config::KeySource;
use crate::error::{PkiError, Result};
use crate::issue::{random_serial, validity};
use crate::remote_key::RemoteKey;
use crate::store::{self, Layout};

/// Which owned certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Root,
    Edge,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::Root => "root",
            Slot::Edge => "edge",
        }
    }

    pub fn path(self, layout: &Layout) -> std::path::PathBuf {
        match self {
            Slot::Root => layout.root_cert(),
            Slot::Edge => layout.edge_cert(),
        }
    }
}

/// The persisted record of the owned certificates' keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CaState {
    pub generation: u64,
    pub root_key: Option<String>,
    pub pending_root_key: Option<String>,
    pub edge_key: Option<String>,
    pub pending_edge_key: Option<String>,
    pub retired_keys: Vec<String>,
}

impl CaState {
    /// Reads the state; a missing or unreadable file gives an empty state (logged), which at
    /// worst leaves an old key behind in the store.
    pub fn load(layout: &Layout) -> CaState {
        let path = layout.ca_state();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "CA state file is unreadable; starting from an empty one");
                CaState::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CaState::default(),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the CA state file");
                CaState::default()
            }
        }
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        let text = toml::to_string(self)
            .map_err(|e| PkiError::Certificate(format!("cannot encode the CA state: {e}")))?;
        store::write_atomic(&layout.ca_state(), text.as_bytes())
    }

    fn slots(&mut self, slot: Slot) -> (&mut Option<String>, &mut Option<String>) {
        match slot {
            Slot::Root => (&mut self.root_key, &mut self.pending_root_key),
            Slot::Edge => (&mut self.edge_key, &mut self.pending_edge_key),
        }
    }

    /// A fresh key id for `slot`, skipping ids the store already holds (the state file may
    /// have been lost, and `create_key_pair` would hand back an old key under a taken id).
    fn new_key_id(&mut self, store: &dyn KeyStore, slot: Slot) -> Result<KeyId> {
        loop {
            self.generation += 1;
            let id = KeyId::new(format!("edgesec/ca/{}-{}", slot.name(), self.generation))?;
            match store.public_key(&id) {
                Err(KeyError::NotFound(_)) => return Ok(id),
                Ok(_) | Err(KeyError::Corrupted(_)) | Err(KeyError::WrongAlgorithm(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn retire(&mut self, id: Option<String>) {
        if let Some(id) = id
            && !self.retired_keys.contains(&id)
        {
            self.retired_keys.push(id);
        }
    }
}

/// A certificate together with the id of its key in the store.
#[derive(Clone, Debug)]
pub(crate) struct Owned {
    pub cert: CertInfo,
    pub key: KeyId,
}

/// Why an owned certificate has to be made anew.
#[derive(Debug)]
pub(crate) enum Unusable {
    Missing,
    Bad(String),
}

fn same_key(store: &dyn KeyStore, id: &KeyId, cert: &CertInfo) -> Result<bool> {
    match store.public_key(id) {
        Ok(pk) => Ok(raw_public_key(&pk.spki_der).ok() == raw_public_key(&cert.spki).ok()),
        Err(KeyError::NotFound(_)) | Err(KeyError::Corrupted(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Loads an owned certificate and finds its key; finishes an interrupted replacement.
/// `accept` says whether the certificate fits its place in the chain.
pub(crate) fn load_owned(
    store: &dyn KeyStore,
    layout: &Layout,
    state: &mut CaState,
    slot: Slot,
    accept: impl Fn(&CertInfo) -> std::result::Result<(), String>,
) -> Result<std::result::Result<Owned, Unusable>> {
    let path = slot.path(layout);
    let certs = match store::read_certs(&path) {
        Ok(Some(certs)) => certs,
        Ok(None) => return Ok(Err(Unusable::Missing)),
        Err(e @ PkiError::CorruptFile { .. }) => return Ok(Err(Unusable::Bad(e.to_string()))),
        Err(e) => return Err(e),
    };
    let cert = CertInfo::parse(&certs[0])
        .map_err(|e| PkiError::corrupt(&path, format!("certificate does not parse: {e}")))?;
    if let Err(why) = accept(&cert) {
        return Ok(Err(Unusable::Bad(format!("{}: {why}", path.display()))));
    }
    let (current, pending) = state.slots(slot);
    let candidates = [current.clone(), pending.clone()];
    for (i, cand) in candidates.iter().enumerate() {
        let Some(id) = cand.as_deref().and_then(|s| KeyId::new(s).ok()) else {
            continue;
        };
        if !same_key(store, &id, &cert)? {
            continue;
        }
        let (current, pending) = state.slots(slot);
        if i == 1 {
            // The certificate of an interrupted replacement made it to disk: finish the step.
            let old = current.replace(id.to_string());
            *pending = None;
            state.retire(old);
        } else if let Some(p) = pending.take() {
            // The replacement never got its certificate written: drop its key.
            state.retire(Some(p));
        }
        return Ok(Ok(Owned { cert, key: id }));
    }
    // The state file may have been lost: look for the key among the ones edgesec makes.
    if let Some(id) = find_key_by_listing(store, slot, &cert)? {
        tracing::warn!(key = %id, "found the {} CA key by searching the key store", slot.name());
        let (current, pending) = state.slots(slot);
        let old = current.replace(id.to_string());
        let dropped = pending.take();
        state.retire(old);
        state.retire(dropped);
        state.retired_keys.retain(|k| k != id.as_str());
        return Ok(Ok(Owned { cert, key: id }));
    }
    Ok(Err(Unusable::Bad(format!(
        "{}: the certificate does not match any key edgesec made for it",
        path.display()
    ))))
}

fn find_key_by_listing(store: &dyn KeyStore, slot: Slot, cert: &CertInfo) -> Result<Option<KeyId>> {
    let prefix = format!("edgesec/ca/{}-", slot.name());
    let Ok(keys) = store.list() else {
        return Ok(None);
    };
    for key in keys
        .into_iter()
        .filter(|k| k.id.as_str().starts_with(&prefix))
    {
        if same_key(store, &key.id, cert)? {
            return Ok(Some(key.id));
        }
    }
    Ok(None)
}

/// Makes a new certificate for `slot` with `build` and persists it. With `rotate`, or when the
/// current key is missing or of another algorithm, a new key is made first.
pub(crate) fn replace_owned(
    store: &Arc<dyn KeyStore>,
    layout: &Layout,
    state: &mut CaState,
    slot: Slot,
    algorithm: KeyPairAlgorithm,
    rotate: bool,
    build: impl FnOnce(&RemoteKey) -> Result<CertificateDer<'static>>,
) -> Result<Owned> {
    let current = state
        .slots(slot)
        .0
        .as_deref()
        .and_then(|s| KeyId::new(s).ok());
    let reusable = match (&current, rotate) {
        (Some(id), false) => match store.public_key(id) {
            Ok(pk) => pk.algorithm == algorithm,
            Err(KeyError::NotFound(_)) | Err(KeyError::Corrupted(_)) => false,
            Err(e) => return Err(e.into()),
        },
        _ => false,
    };
    let id = match (&current, reusable) {
        (Some(id), true) => id.clone(),
        _ => {
            let id = state.new_key_id(store.as_ref(), slot)?;
            *state.slots(slot).1 = Some(id.to_string());
            state.save(layout)?;
            id
        }
    };
    let made = (|| {
        store.create_key_pair(&id, algorithm)?;
        let key = RemoteKey::load(store.clone(), &id)?;
        let der = build(&key)?;
        let cert = CertInfo::parse(&der).map_err(PkiError::Certificate)?;
        store::write_certs(&slot.path(layout), &[der])?;
        Ok(cert)
    })();
    let cert = match made {
        Ok(cert) => cert,
        Err(e) => {
            if !reusable {
                // Undo: the new key is of no use without its certificate.
                *state.slots(slot).1 = None;
                state.retire(Some(id.to_string()));
                let _ = state.save(layout);
                clean_retired(store.as_ref(), layout, state);
            }
            return Err(e);
        }
    };
    if !reusable {
        let (cur, pending) = state.slots(slot);
        let old = cur.replace(id.to_string());
        *pending = None;
        state.retire(old);
    }
    state.save(layout)?;
    Ok(Owned { cert, key: id })
}

/// Deletes retired keys from the store; a key that cannot be deleted stays listed for later.
pub(crate) fn clean_retired(store: &dyn KeyStore, layout: &Layout, state: &mut CaState) {
    if state.retired_keys.is_empty() {
        return;
    }
    let before = state.retired_keys.len();
    state.retired_keys.retain(|id| {
        let Ok(key) = KeyId::new(id.as_str()) else {
            return false;
        };
        match store.delete(&key) {
            Ok(()) | Err(KeyError::NotFound(_)) => {
                tracing::info!(key = %key, "deleted a retired CA key");
                false
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot delete a retired CA key yet");
                true
            }
        }
    });
    if state.retired_keys.len() != before
        && let Err(e) = state.save(layout)
    {
        tracing::warn!(error = %e, "cannot save the CA state");
    }
}

/// The parameters of a CA certificate.
fn ca_params(
    cn: &str,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    path_len: u8,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A self-signed root CA certificate (pathlen 1).
pub(crate) fn build_root(
    key: &RemoteKey,
    cn: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<CertificateDer<'static>> {
    let params = ca_params(cn, validity(now, lifetime, None, None)?, 1)?;
    let cert = params.self_signed(key).map_err(|e| key.explain(e))?;
    Ok(cert.der().clone())
}

/// A CA certificate for `key`, signed by `parent` (pathlen 0: it signs only leaves).
pub(crate) fn build_sub_ca(
    key: &RemoteKey,
    cn: &str,
    now: OffsetDateTime,
    lifetime: Duration,
    parent: &Owned,
    parent_key: &RemoteKey,
) -> Result<CertificateDer<'static>> {
    let span = validity(
        now,
        lifetime,
        Some(parent.cert.not_before),
        Some(parent.cert.not_after),
    )?;
    let params = ca_params(cn, span, 0)?;
    let issuer = Issuer::from_ca_cert_der(&parent.cert.der, parent_key)?;
    let cert = params
        .signed_by(key, &issuer)
        .map_err(|e| parent_key.explain(e))?;
    Ok(cert.der().clone())
}

/// The store id of a user-provided CA key: the configured id, or one derived from the
/// certificate for a key imported from a file. Checks that the key belongs to `cert`.
pub(crate) fn resolve_user_key(
    store: &dyn KeyStore,
    source: &KeySource,
    cert: &CertInfo,
    role: &str,
) -> Result<KeyId> {
    let (id, path) = match source {
        KeySource::KeyStore(id) => (id.clone(), None),
        KeySource::File(path) => {
            let raw = raw_public_key(&cert.spki).map_err(PkiError::Certificate)?;
            let fp = crate::certinfo::fingerprint(&raw);
            (
                KeyId::new(format!("edgesec/ca/{role}-{}", &fp[..16]))?,
                Some(path),
            )
        }
    };
    let mut imported = false;
    match (store.public_key(&id), path) {
        (Ok(_), _) => {}
        (Err(KeyError::NotFound(_)), Some(path)) => {
            let pem = Zeroizing::new(std::fs::read(path).map_err(|e| PkiError::io(path, e))?);
            store
                .import(&id, ImportMaterial::Pem(pem))
                .map_err(|e| match e {
                    KeyError::InvalidInput(why) => PkiError::corrupt(path, why),
                    e => PkiError::Key(e),
                })?;
            tracing::info!(key = %id, path = %path.display(), "imported a CA key into the key store");
            imported = true;
        }
        (Err(e), _) => return Err(e.into()),
    }
    if !same_key(store, &id, cert)? {
        if imported {
            let _ = store.delete(&id);
        }
        let what = match source {
            KeySource::KeyStore(id) => format!("key store key {id}"),
            KeySource::File(p) => p.display().to_string(),
        };
        return Err(PkiError::Config(format!(
            "the {role} CA key ({what}) does not belong to the certificate {}",
            cert.subject
        )));
    }
    Ok(id)
}
