//! Measurements: keyd measures itself, its config and every client process before serving it,
//! extends each distinct measurement into one PCR (the TPM's, or a software bank without a
//! TPM) and keeps the event log that replays to that PCR. Clients (the daemon) add their own
//! events through `POST /measurements`; those are marked as reported by a client.
//!
//! The hot path stays cheap: a connection that was admitted once is found by its id under a
//! read lock. Only a new connection pins its process and looks up (pid, start time); only a new
//! process measures its executable (itself cached by file identity); only a new measurement is
//! extended. Every cache is bounded.

pub mod log;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use edgesec_http::{ApiError, Peer};
use edgesec_integrity::event::{Reporter, event_digest, format_sha256, parse_sha256};
use edgesec_integrity::evidence::{LOG_SOFTWARE, LOG_TPM, MeasurementLog};
use edgesec_integrity::{Event, EventSource, Evidence, SoftwarePcrs, hex};
use edgesec_keys::tpm::Tpm;

use crate::config::Config;

/// Connections and processes remembered as admitted; past this the cache starts over.
const MAX_CACHED: usize = 4096;

struct State {
    events: Vec<Event>,
    bank: SoftwarePcrs,
    seen: HashSet<[u8; 32]>,
    file: log::LogFile,
}

pub struct Measurements {
    pcr: u8,
    quote_pcrs: Vec<u8>,
    max_events: usize,
    tpm: Option<Tpm>,
    state: Mutex<State>,
    /// Connection id → the caller's executable measurement.
    connections: RwLock<HashMap<u64, Arc<str>>>,
    /// (pid, start time) → executable measurement.
    processes: Mutex<HashMap<(i32, u64), Arc<str>>>,
    /// Held while a new process is measured, so many connections from one new process hash its
    /// executable once (the others then find it in `processes`).
    measuring: Mutex<()>,
}

impl Measurements {
    /// Starts a new log: the PCR is reset (it is one of the resettable PCRs 16 and 23), then
    /// keyd's own executable and its config file are measured and extended.
    pub fn start(config: &Config, tpm: Option<Tpm>) -> Result<Measurements, String> {
        let pcr = config.measure.pcr;
        if let Some(t) = &tpm {
            t.pcr_reset(pcr).map_err(|e| e.to_string())?;
        }
        let file = log::LogFile::create(&config.state_dir.join("measure"))?;
        let mut quote_pcrs = config.tpm.quote_pcrs.clone();
        quote_pcrs.push(pcr);
        quote_pcrs.sort_unstable();
        quote_pcrs.dedup();
        let m = Measurements {
            pcr,
            quote_pcrs,
            max_events: config.measure.max_events,
            tpm,
            state: Mutex::new(State {
                events: Vec::new(),
                bank: SoftwarePcrs::default(),
                seen: HashSet::new(),
                file,
            }),
            connections: RwLock::default(),
            processes: Mutex::default(),
            measuring: Mutex::default(),
        };
        let exe = edgesec_attest::measure_file(std::path::Path::new("/proc/self/exe"))
            .map_err(|e| format!("cannot measure keyd's own executable: {e}"))?;
        let exe_name = std::env::current_exe()
            .map_or_else(|_| "edgesec-keyd".into(), |p| p.display().to_string());
        m.record(
            "keyd-executable",
            &exe_name,
            &exe.to_string(),
            EventSource::Keyd,
            None,
        )?;
        let cfg = edgesec_attest::measure_file(&config.file)
            .map_err(|e| format!("cannot measure {}: {e}", config.file.display()))?;
        // The absolute path, as the executable's: the same file reads the same from any cwd.
        let cfg_name = std::fs::canonicalize(&config.file).unwrap_or_else(|_| config.file.clone());
        m.record(
            "keyd-config",
            &cfg_name.display().to_string(),
            &cfg.to_string(),
            EventSource::Keyd,
            None,
        )?;
        Ok(m)
    }

    pub fn has_tpm(&self) -> bool {
        self.tpm.is_some()
    }

    /// The TPM measurements go to, if any.
    pub fn tpm(&self) -> Option<&Tpm> {
        self.tpm.as_ref()
    }

    pub fn pcr(&self) -> u8 {
        self.pcr
    }

    /// The events so far (keyd's own two come first).
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event unless an identical one is in the log; extends the PCR for a new one.
    /// Returns the new event, or `None` for a repeat.
    pub fn record(
        &self,
        kind: &str,
        name: &str,
        measurement: &str,
        source: EventSource,
        reporter: Option<Reporter>,
    ) -> Result<Option<Event>, String> {
        let digest = event_digest(kind, name, source, measurement)
            .ok_or_else(|| format!("measurement {measurement:?} is not sha256:<64 hex digits>"))?;
        let mut s = self.lock();
        if s.seen.contains(&digest) {
            return Ok(None);
        }
        if s.events.len() >= self.max_events {
            return Err(format!(
                "the measurement log is full ({} events); restart keyd to start a new one",
                self.max_events
            ));
        }
        if let Some(t) = &self.tpm {
            t.pcr_extend(self.pcr, &digest).map_err(|e| e.to_string())?;
        }
        s.bank.extend(self.pcr, &digest);
        let event = Event {
            seq: s.events.len() as u64,
            pcr: self.pcr,
            digest: format_sha256(&digest),
            kind: kind.into(),
            name: name.into(),
            measurement: measurement.into(),
            source,
            reporter,
            time: log::now_rfc3339(),
        };
        s.file.append(&event)?;
        s.seen.insert(digest);
        s.events.push(event.clone());
        tracing::info!(
            seq = event.seq,
            kind,
            name,
            measurement,
            source = source.as_str(),
            "measurement recorded"
        );
        Ok(Some(event))
    }

    /// Measures the caller's process before its first request on a connection. Returns the
    /// caller's executable measurement.
    pub async fn admit(self: &Arc<Self>, peer: &Peer) -> Result<Arc<str>, ApiError> {
        if let Some(m) = self
            .connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer.connection_id)
        {
            return Ok(m.clone());
        }
        let me = self.clone();
        let p = peer.clone();
        let measured = tokio::task::spawn_blocking(move || me.measure_peer(&p))
            .await
            .map_err(|e| ApiError::internal_logged(&e))?;
        let m = measured.map_err(|why| {
            tracing::warn!(uid = peer.caller.uid, pid = ?peer.caller.pid, %why, "refused: cannot measure the caller");
            ApiError::forbidden(format!("keyd could not measure the calling process: {why}"))
        })?;
        let mut c = self.connections.write().unwrap_or_else(|p| p.into_inner());
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(peer.connection_id, m.clone());
        Ok(m)
    }

    fn measure_peer(&self, peer: &Peer) -> Result<Arc<str>, String> {
        let pid = peer.caller.pid.ok_or("the kernel reported no pid")?;
        let pinned = edgesec_attest::PinnedProcess::pin(pid, peer.pidfd.clone())
            .map_err(|e| e.to_string())?;
        let key = (pid, pinned.start_time());
        let cached = || {
            self.processes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned()
        };
        if let Some(m) = cached() {
            return Ok(m);
        }
        let _one_at_a_time = self.measuring.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cached() {
            return Ok(m);
        }
        let exe = pinned.exe_measurement().map_err(|e| e.to_string())?;
        let path = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_or_else(|_| format!("pid {pid}"), |p| p.display().to_string());
        pinned.recheck().map_err(|e| e.to_string())?;
        let text: Arc<str> = exe.to_string().into();
        self.record("client-executable", &path, &text, EventSource::Keyd, None)?;
        let mut procs = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        if procs.len() >= MAX_CACHED {
            procs.clear();
        }
        procs.insert(key, text.clone());
        Ok(text)
    }

    /// The executable measurement of an admitted connection's process.
    pub fn connection_measurement(&self, connection_id: u64) -> Option<String> {
        self.connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&connection_id)
            .map(|m| m.to_string())
    }

    /// The log and the current value of the measurement PCR.
    pub fn log(&self) -> Result<MeasurementLog, String> {
        let (events, soft) = {
            let s = self.lock();
            (s.events.clone(), s.bank.value(self.pcr))
        };
        let value = match &self.tpm {
            Some(t) => t.pcr_read(&[self.pcr]).map_err(|e| e.to_string())?[0].1,
            None => soft,
        };
        Ok(MeasurementLog {
            log: if self.tpm.is_some() {
                LOG_TPM
            } else {
                LOG_SOFTWARE
            }
            .into(),
            pcr: self.pcr,
            value: hex(&value),
            events,
        })
    }

    /// A TPM quote over the measurement PCR (and the configured others) with the log.
    pub fn quote(&self, nonce: &[u8]) -> Result<Evidence, ApiError> {
        let Some(tpm) = &self.tpm else {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                "no TPM: software measurements only",
            ));
        };
        // Holding the log while quoting keeps the log and the quoted PCR in step.
        let s = self.lock();
        let q = tpm.quote(nonce, &self.quote_pcrs).map_err(|e| match e {
            edgesec_keys::KeyError::InvalidInput(m) => ApiError::bad_request(m),
            e => ApiError::internal_logged(&e),
        })?;
        let events = s.events.clone();
        drop(s);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Evidence {
            nonce: hex(nonce),
            attest: b64.encode(&q.attest),
            signature: b64.encode(&q.signature),
            ak_public_key: edgesec_keys::pem_encode("PUBLIC KEY", &q.ak_spki),
            pcrs: q.pcrs.iter().map(|(p, v)| (*p, hex(v))).collect(),
            events,
            log: LOG_TPM.into(),
        })
    }
}

/// Checks a client-reported event's fields; the message names the bad one.
pub fn check_report(kind: &str, name: &str, measurement: &str) -> Result<(), String> {
    if kind.is_empty()
        || kind.len() > 64
        || !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("kind must be 1 to 64 characters of a-z, 0-9 and '-'".into());
    }
    if kind.starts_with("keyd-") || kind == "client-executable" {
        return Err(format!(
            "kind {kind:?} is reserved for keyd's own measurements"
        ));
    }
    if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
        return Err("name must be 1 to 1024 characters without control characters".into());
    }
    if parse_sha256(measurement).is_none() {
        return Err("measurement must be sha256: followed by 64 hex digits".into());
    }
    Ok(())
}
