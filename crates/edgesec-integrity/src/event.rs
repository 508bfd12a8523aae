//! Measurement events and PCR replay.
//!
//! An event records that something (`kind`, `name`) had the SHA-256 `measurement` and that the
//! event was extended into `pcr`. The value extended is not the bare measurement but a digest of
//! the whole event, so neither its description nor its source can be changed afterwards without
//! the replay failing:
//!
//! ```text
//! digest = SHA-256("edgesec-event-v1" 0x00 kind 0x00 name 0x00 source 0x00 measurement[32])
//! PCR    := SHA-256(PCR || digest)          (a PCR starts as 32 zero bytes)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{from_hex, hex, sha256};

const DOMAIN: &[u8] = b"edgesec-event-v1";

/// Who measured: keyd itself (it hashed the file it names), or a client that reported the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Keyd,
    Client,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Keyd => "keyd",
            EventSource::Client => "client",
        }
    }
}

/// The process that reported a client event, as the kernel told keyd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reporter {
    pub uid: u32,
    pub pid: i32,
    /// The reporter's own executable measurement (`sha256:<hex>`).
    pub executable: String,
}

/// One event of the log: one JSON record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the log, from 0.
    pub seq: u64,
    pub pcr: u8,
    /// The value extended into the PCR, `sha256:<hex>` (see the module docs).
    pub digest: String,
    /// What was measured: `keyd-executable`, `keyd-config`, `client-executable`,
    /// `daemon-config`, `agent`, `module`, ...
    pub kind: String,
    /// Which one: a path or a module name.
    pub name: String,
    /// Its SHA-256, `sha256:<hex>`.
    pub measurement: String,
    pub source: EventSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Reporter>,
    /// When it was recorded (RFC 3339, UTC).
    pub time: String,
}

/// `sha256:<64 hex>` to bytes.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    from_hex(s.strip_prefix("sha256:")?)?.try_into().ok()
}

/// Bytes to `sha256:<hex>`.
pub fn format_sha256(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex(d))
}

/// The digest an event with these fields extends (see the module docs). `None` when the
/// measurement is not `sha256:<hex>`.
pub fn event_digest(
    kind: &str,
    name: &str,
    source: EventSource,
    measurement: &str,
) -> Option<[u8; 32]> {
    let m = parse_sha256(measurement)?;
    Some(sha256(&[
        DOMAIN,
        b"\0",
        kind.as_bytes(),
        b"\0",
        name.as_bytes(),
        b"\0",
        source.as_str().as_bytes(),
        b"\0",
        &m,
    ]))
}

impl Event {
    /// Recomputes the digest from the event's fields; `None` when the fields are malformed.
    pub fn computed_digest(&self) -> Option<[u8; 32]> {
        event_digest(&self.kind, &self.name, self.source, &self.measurement)
    }

    /// True when the recorded digest is the one the fields give.
    pub fn is_consistent(&self) -> bool {
        match (self.computed_digest(), parse_sha256(&self.digest)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// PCR := SHA-256(PCR || digest).
pub fn extend(pcr: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    sha256(&[pcr, digest])
}

/// Replays the recorded digests of `events` into PCR values, from zeros. Events whose digest is
/// not `sha256:<hex>` are an error naming their sequence number.
pub fn replay(events: &[Event]) -> Result<BTreeMap<u8, [u8; 32]>, String> {
    let mut pcrs = BTreeMap::new();
    for e in events {
        let d = parse_sha256(&e.digest)
            .ok_or_else(|| format!("event {}: digest {:?} is not sha256:<hex>", e.seq, e.digest))?;
        let v = pcrs.entry(e.pcr).or_insert([0u8; 32]);
        *v = extend(v, &d);
    }
    Ok(pcrs)
}

/// A software bank of SHA-256 PCRs: what keyd keeps without a TPM (and alongside one, as a
/// mirror of the events it extended).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SoftwarePcrs(BTreeMap<u8, [u8; 32]>);

impl SoftwarePcrs {
    pub fn extend(&mut self, pcr: u8, digest: &[u8; 32]) {
        let v = self.0.entry(pcr).or_insert([0u8; 32]);
        *v = extend(v, digest);
    }

    /// The value of `pcr` (zeros when never extended).
    pub fn value(&self, pcr: u8) -> [u8; 32] {
        self.0.get(&pcr).copied().unwrap_or([0u8; 32])
    }

    pub fn reset(&mut self, pcr: u8) {
        self.0.remove(&pcr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: &str, m: u8) -> Event {
        let measurement = format_sha256(&[m; 32]);
        let d = event_digest(kind, "n", EventSource::Keyd, &measurement).unwrap();
        Event {
            seq,
            pcr: 23,
            digest: format_sha256(&d),
            kind: kind.into(),
            name: "n".into(),
            measurement,
            source: EventSource::Keyd,
            reporter: None,
            time: "2026-12-03T00:00:00Z".into(),
        }
    }

    #[test]
    fn replay_matches_a_software_bank_and_binds_every_field() {
        let events = vec![ev(0, "a", 1), ev(1, "b", 2)];
        let mut bank = SoftwarePcrs::default();
        for e in &events {
            assert!(e.is_consistent());
            bank.extend(e.pcr, &parse_sha256(&e.digest).unwrap());
        }
        assert_eq!(replay(&events).unwrap()[&23], bank.value(23));
        let mut changed = events[1].clone();
        changed.name = "other".into();
        assert!(!changed.is_consistent());
        changed = events[1].clone();
        changed.source = EventSource::Client;
        assert!(!changed.is_consistent());
        // The order matters too.
        let swapped = vec![events[1].clone(), events[0].clone()];
        assert_ne!(replay(&swapped).unwrap()[&23], bank.value(23));
        assert_eq!(bank.value(16), [0u8; 32]);
    }
}
