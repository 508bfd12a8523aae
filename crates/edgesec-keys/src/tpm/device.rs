//! The one connection to the TPM that a process holds, and what every operation family shares:
//! error mapping, the storage root key, loading a wrapped object and flushing it after use.
//!
//! There is no resource manager between us and the TPM (swtpm, or `/dev/tpm0`), so every
//! transient object is flushed right after its one use: a TPM holds only a few (the simulator
//! three). All TPM work goes through one [`Tpm`] (a mutex around the ESYS context), because the
//! TPM executes one command at a time anyway and the context is not shareable.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::tss::{TPM2_PT_PERMANENT, TPMA_PERMANENT_OWNERAUTHSET};
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Auth, CapabilityData, Private, Public};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::{Context, Error as TssError};
use zeroize::Zeroizing;

use super::templates;
use crate::KeyError;

/// The TCTI used when the config names none: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// Where the storage root key is kept (the TCG's usual SRK handle).
pub const DEFAULT_SRK_HANDLE: u32 = 0x8100_0001;

/// How to reach the TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmConfig {
    /// A TCTI string: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `mssim:...`.
    pub tcti: String,
    /// Persistent handle of the storage root key; created there when absent.
    pub srk_handle: u32,
}

impl Default for TpmConfig {
    fn default() -> Self {
        TpmConfig {
            tcti: DEFAULT_TCTI.into(),
            srk_handle: DEFAULT_SRK_HANDLE,
        }
    }
}

/// Turns a TPM or TSS failure into a key store error whose text says what to do about it.
pub fn tpm_error(what: &str, e: TssError) -> KeyError {
    let kind = match e {
        TssError::Tss2Error(rc) => rc.kind(),
        TssError::WrapperError(_) => None,
    };
    let hint = match kind {
        Some(Tss2ResponseCodeKind::Lockout) => {
            " (the TPM is in dictionary-attack lockout: wait for the lockout interval or clear it \
             with the lockout authorization, e.g. `tpm2_dictionarylockout --clear-lockout`)"
        }
        Some(
            Tss2ResponseCodeKind::Retry
            | Tss2ResponseCodeKind::Yielded
            | Tss2ResponseCodeKind::Testing
            | Tss2ResponseCodeKind::ObjectMemory
            | Tss2ResponseCodeKind::SessionMemory
            | Tss2ResponseCodeKind::Memory,
        ) => {
            " (the TPM is busy or out of object slots: try again; is another program using it without a resource manager?)"
        }
        _ => "",
    };
    KeyError::Backend(format!("TPM {what} failed: {e}{hint}"))
}

pub(crate) struct Inner {
    pub(crate) ctx: Context,
    srk: Option<KeyHandle>,
    srk_handle: u32,
    /// The owner hierarchy's authorization value; `None` is the TPM default (empty).
    owner_auth: Option<Zeroizing<Vec<u8>>>,
    /// The persistent keys of DPS TPM attestation (see `dps.rs`), once looked up.
    pub(crate) endorsement_key: Option<KeyHandle>,
    pub(crate) dps_storage_key: Option<KeyHandle>,
}

/// The key a wrapped object was created or imported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parent {
    /// The storage root key (every object the TPM made for us).
    StorageRoot,
    /// The RSA storage key of DPS TPM attestation (the imported authentication key).
    DpsStorage,
}

/// A shared handle to the TPM. Cloning shares the one connection.
#[derive(Clone)]
pub struct Tpm {
    inner: Arc<Mutex<Inner>>,
    tcti: String,
}

impl Tpm {
    /// Connects through the configured TCTI. A missing device or a simulator that is not
    /// listening is a clear error naming the TCTI.
    pub fn connect(config: &TpmConfig) -> Result<Tpm, KeyError> {
        let conf = TctiNameConf::from_str(&config.tcti).map_err(|e| {
            KeyError::Backend(format!(
                "TPM TCTI {:?} is not valid ({e}); expected e.g. \"device:/dev/tpmrm0\" or \
                 \"swtpm:host=127.0.0.1,port=2321\"",
                config.tcti
            ))
        })?;
        if let TctiNameConf::Device(_) = conf {
            let path = config
                .tcti
                .split_once(':')
                .map_or("/dev/tpmrm0", |(_, p)| p);
            if !std::path::Path::new(path).exists() {
                return Err(KeyError::Backend(format!(
                    "no TPM: the TCTI {:?} names {path}, which does not exist (no TPM, or its \
                     driver is not loaded)",
                    config.tcti
                )));
            }
        }
        let ctx = Context::new(conf).map_err(|e| {
            KeyError::Backend(format!(
                "cannot open the TPM through TCTI {:?}: {e} (is the TPM or simulator running \
                 and reachable, and is no other program holding it?)",
                config.tcti
            ))
        })?;
        Ok(Tpm {
            inner: Arc::new(Mutex::new(Inner {
                ctx,
                srk: None,
                srk_handle: config.srk_handle,
                owner_auth: None,
                endorsement_key: None,
                dps_storage_key: None,
            })),
            tcti: config.tcti.clone(),
        })
    }

    /// The TCTI this connection uses.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// Exclusive use of the TPM for one operation.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside an operation leaves at worst a transient object behind; the context
        // itself stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The owner hierarchy's authorization value to present when the TPM asks for it (creating
    /// the SRK, the owner branch of a sealing policy); `None` is the TPM default, empty. Kept in
    /// zeroized memory and handed to the ESYS context only for the commands that need it.
    pub fn set_owner_auth(&self, auth: Option<&[u8]>) -> Result<(), KeyError> {
        let auth = match auth {
            Some(a) if !a.is_empty() => {
                // Auth's limit: a TPM accepts at most the size of its largest digest.
                Auth::try_from(a.to_vec()).map_err(|_| {
                    KeyError::Backend(
                        "the owner authorization value is too long (a TPM takes at most 64 bytes)"
                            .into(),
                    )
                })?;
                Some(Zeroizing::new(a.to_vec()))
            }
            _ => None,
        };
        self.lock().owner_auth = auth;
        Ok(())
    }

    /// Whether the owner hierarchy has an authorization value (TPMA_PERMANENT.ownerAuthSet).
    /// When it has none, anyone who can send commands to the TPM acts as its owner.
    pub fn owner_auth_set(&self) -> Result<bool, KeyError> {
        // Not Context::get_tpm_property: it caches, and this value changes at run time.
        let (data, _) = self
            .lock()
            .ctx
            .execute_without_session(|c| {
                c.get_capability(CapabilityType::TpmProperties, TPM2_PT_PERMANENT, 1)
            })
            .map_err(|e| tpm_error("read TPM_PT_PERMANENT", e))?;
        let value = match data {
            CapabilityData::TpmProperties(list) => {
                list.find(PropertyTag::Permanent).map(|p| p.value())
            }
            _ => None,
        }
        .ok_or_else(|| KeyError::Backend("the TPM did not report TPM_PT_PERMANENT".into()))?;
        Ok(value & TPMA_PERMANENT_OWNERAUTHSET != 0)
    }

    /// Random bytes from the TPM's generator.
    pub fn random(&self, n: usize) -> Result<Vec<u8>, KeyError> {
        let mut g = self.lock();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let chunk = g
                .ctx
                .get_random((n - out.len()).min(32))
                .map_err(|e| tpm_error("get random", e))?;
            out.extend_from_slice(chunk.value());
        }
        Ok(out)
    }
}

impl Inner {
    /// Runs `f` with the owner hierarchy's authorization value set on the ESYS context, and
    /// clears it again afterwards (which also overwrites ESYS's copy).
    pub(crate) fn as_owner<T>(
        &mut self,
        f: impl FnOnce(&mut Context) -> Result<T, TssError>,
    ) -> Result<T, TssError> {
        // Always set: ESYS also remembers a value from HierarchyChangeAuth on this context.
        let auth = match &self.owner_auth {
            Some(a) => Auth::try_from(a.to_vec())?,
            None => Auth::default(),
        };
        self.ctx.tr_set_auth(ObjectHandle::Owner, auth)?;
        let r = f(&mut self.ctx);
        if let Err(e) = self.ctx.tr_set_auth(ObjectHandle::Owner, Auth::default()) {
            tracing::warn!(error = %e, "cannot clear the owner authorization in the ESYS context");
        }
        r
    }

    /// The storage root key, made persistent at its handle on first use.
    pub(crate) fn srk(&mut self) -> Result<KeyHandle, KeyError> {
        if let Some(h) = self.srk {
            return Ok(h);
        }
        let key = self.persistent_primary(
            self.srk_handle,
            Hierarchy::Owner,
            templates::storage_root,
            "storage root key",
        )?;
        self.srk = Some(key);
        Ok(key)
    }

    /// The key at the persistent handle `handle`, or (when there is none) a primary made from
    /// `template` in `hierarchy` and persisted there.
    pub(crate) fn persistent_primary(
        &mut self,
        handle: u32,
        hierarchy: Hierarchy,
        template: fn() -> Result<Public, TssError>,
        what: &str,
    ) -> Result<KeyHandle, KeyError> {
        let persistent = PersistentTpmHandle::new(handle).map_err(|_| {
            KeyError::Backend(format!(
                "0x{handle:08x} is not a persistent TPM handle (0x81000000 to 0x81ffffff)"
            ))
        })?;
        let found = self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(persistent)));
        if let Ok(h) = found {
            return Ok(KeyHandle::from(h));
        }
        tracing::info!(
            handle = format!("0x{handle:08x}"),
            "creating the TPM {what}"
        );
        // Both commands may need the owner hierarchy's password: creating under it, and
        // persisting anything (EvictControl is always authorized by the owner).
        let created = self
            .as_owner(|ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |c| {
                    c.create_primary(hierarchy, template()?, None, None, None, None)
                })
            })
            .map_err(|e| tpm_error(&format!("create the {what}"), e))?;
        let evicted = self.as_owner(|ctx| {
            ctx.execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(
                    Provision::Owner,
                    created.key_handle.into(),
                    Persistent::Persistent(persistent),
                )
            })
        });
        let _ = self.ctx.flush_context(created.key_handle.into());
        let h = evicted.map_err(|e| tpm_error(&format!("persist the {what}"), e))?;
        Ok(KeyHandle::from(h))
    }

    /// Loads a wrapped object under its parent, sets its auth value, runs `f` and flushes the
    /// object whatever `f` returned.
    pub(crate) fn with_loaded<T>(
        &mut self,
        parent: Parent,
        public: &Public,
        private: &Private,
        auth: &Auth,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let parent = match parent {
            Parent::StorageRoot => self.srk()?,
            Parent::DpsStorage => self.dps_storage_key()?,
        };
        let handle = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.load(parent, private.clone(), public.clone())
            })
            .map_err(|e| tpm_error("load a key", e))?;
        let result = self
            .ctx
            .tr_set_auth(ObjectHandle::from(handle), auth.clone())
            .map_err(|e| tpm_error("set a key's auth value", e))
            .and_then(|()| f(&mut self.ctx, handle));
        if let Err(e) = self.ctx.flush_context(handle.into()) {
            tracing::warn!(error = %e, "cannot flush a TPM object");
        }
        result
    }
}
