//! Everything the sim remembers, behind one lock. Handlers are synchronous
//! and short, so a std mutex is enough.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::auth::Credential;
use crate::model::{Enrollment, RegistrationRecord};

/// Bounds, so a runaway client cannot grow the sim without limit.
const MAX_REQUEST_LOG: usize = 10_000;
const MAX_RECORDS_PER_REGISTRATION: usize = 1_000;
const MAX_RECORDED_REGISTRATIONS: usize = 10_000;
const MAX_OPERATIONS: usize = 4_096;

pub(crate) struct SimState {
    inner: Mutex<Inner>,
    /// "localhost:PORT": the hub DPS assigns unless an enrollment says
    /// otherwise, and the host of hub SAS audiences for manual devices.
    pub hub_hostname: String,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub enrollments: HashMap<String, Enrollment>,
    pub tpm: HashMap<String, TpmRegistration>,
    /// Keyed by operation id, whose counter prefix sorts oldest first.
    pub operations: BTreeMap<String, Operation>,
    pub devices: HashMap<String, HubDevice>,
    pub rejected_devices: HashSet<String>,
    pub injected: Option<InjectedFailure>,
    pub registrations: HashMap<String, Vec<RegistrationRecord>>,
    pub requests: VecDeque<String>,
    next_id: u64,
}

/// What DPS knows about a TPM registration between requests.
#[derive(Default)]
pub(crate) struct TpmRegistration {
    /// The endorsement key first seen, when the enrollment named none.
    pub first_endorsement_key: Option<Vec<u8>>,
    /// The last challenge sent: the blob and the HMAC key inside it.
    pub issued: Option<IssuedAuthKey>,
}

#[derive(Clone)]
pub(crate) struct IssuedAuthKey {
    pub blob: Vec<u8>,
    pub key: Vec<u8>,
}

/// A DPS registration operation, from register PUT to its outcome.
pub(crate) struct Operation {
    pub scope: String,
    pub registration_id: String,
    /// Polls must authenticate like the register request did.
    pub credential: Credential,
    pub polls_left: u32,
    pub outcome: Outcome,
}

pub(crate) enum Outcome {
    Assigned {
        device_id: String,
        hub: String,
        payload: Option<Value>,
        /// TPM: the authentication key blob, returned again when assigned.
        tpm_blob: Option<Vec<u8>>,
    },
    Failed {
        code: u32,
        message: String,
    },
}

/// A device registered in the sim's hub.
pub(crate) struct HubDevice {
    /// The hub name its SAS audience must use.
    pub hub: String,
    pub credential: Credential,
    pub modules: BTreeMap<String, ModuleRecord>,
}

#[derive(Clone)]
pub(crate) struct ModuleRecord {
    pub generation_id: String,
    /// Bumped on every write; the etag is derived from it.
    pub version: u64,
    pub auth_type: String,
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
    pub managed_by: Option<String>,
}

pub(crate) struct InjectedFailure {
    pub remaining: usize,
    pub status: u16,
    pub retry_after_secs: Option<u64>,
}

impl SimState {
    pub fn new(hub_hostname: String) -> SimState {
        SimState {
            inner: Mutex::new(Inner::default()),
            hub_hostname,
        }
    }

    /// The lock; a panic while holding it must not wedge every later test
    /// step, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// A fresh number, unique within this sim.
    pub fn next_number(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn log_request(&mut self, line: String) {
        if self.requests.len() == MAX_REQUEST_LOG {
            self.requests.pop_front();
        }
        self.requests.push_back(line);
    }

    pub fn record_registration(&mut self, registration_id: &str, record: RegistrationRecord) {
        if self.registrations.len() >= MAX_RECORDED_REGISTRATIONS
            && !self.registrations.contains_key(registration_id)
        {
            return; // a flood of made-up ids; the test's own ids came first
        }
        let records = self
            .registrations
            .entry(registration_id.to_owned())
            .or_default();
        if records.len() == MAX_RECORDS_PER_REGISTRATION {
            records.remove(0);
        }
        records.push(record);
    }

    /// Takes one injected failure, if any are left: `(status, retry_after)`.
    pub fn take_injected_failure(&mut self) -> Option<(u16, Option<u64>)> {
        let injected = self.injected.as_mut()?;
        let taken = (injected.status, injected.retry_after_secs);
        injected.remaining -= 1;
        if injected.remaining == 0 {
            self.injected = None;
        }
        Some(taken)
    }

    /// Stores a new operation and returns its id.
    pub fn add_operation(&mut self, operation: Operation) -> String {
        if self.operations.len() >= MAX_OPERATIONS {
            self.operations.pop_first();
        }
        let id = format!("4.{:016x}.{}", self.next_number(), random_hex(16));
        self.operations.insert(id.clone(), operation);
        id
    }

    /// Puts the device in the hub with this credential; a device that is
    /// already there keeps its modules.
    pub fn upsert_device(&mut self, device_id: &str, hub: &str, credential: Credential) {
        match self.devices.get_mut(device_id) {
            Some(device) => {
                device.hub = hub.to_owned();
                device.credential = credential;
            }
            None => {
                let device = HubDevice {
                    hub: hub.to_owned(),
                    credential,
                    modules: BTreeMap::new(),
                };
                self.devices.insert(device_id.to_owned(), device);
            }
        }
    }
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system RNG failing is not something a test service can work around.
    aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` random bytes.
pub(crate) fn random_bytes(bytes: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
    buf
}
