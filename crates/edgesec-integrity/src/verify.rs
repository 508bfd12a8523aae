//! Offline verification of [`Evidence`]: the quote's signature (aws-lc, independent of the TPM
//! stack that made it), the nonce, the quoted PCR digest against the reported PCR values, the
//! event log replayed to those values, and each event against a policy of allowed digests.
//! Every check and every event gets its own verdict; a failure names its reason.

use std::collections::BTreeSet;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::attest::{ALG_SHA256, parse_quote};
use crate::event::{EventSource, parse_sha256};
use crate::{Evidence, from_hex, hex, replay, sha256};

/// Allowed measurements.
///
/// ```json
/// { "allow": [ { "measurement": "sha256:…", "kind": "keyd-executable", "note": "keyd 0.1" } ] }
/// ```
/// An entry without `kind` allows the digest for any kind of event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub allow: Vec<Allowed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    pub measurement: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Policy {
    /// A policy allowing exactly what `evidence`'s log holds (from a golden device).
    pub fn from_evidence(evidence: &Evidence) -> Policy {
        let mut seen = BTreeSet::new();
        let allow = evidence
            .events
            .iter()
            .filter(|e| seen.insert((e.kind.clone(), e.measurement.clone())))
            .map(|e| Allowed {
                measurement: e.measurement.clone(),
                kind: Some(e.kind.clone()),
                note: Some(e.name.clone()),
            })
            .collect();
        Policy { allow }
    }

    fn allows(&self, kind: &str, measurement: &str) -> bool {
        self.allow.iter().any(|a| {
            a.measurement.eq_ignore_ascii_case(measurement)
                && a.kind.as_deref().is_none_or(|k| k == kind)
        })
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// One event's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventVerdict {
    pub seq: u64,
    pub kind: String,
    pub name: String,
    pub measurement: String,
    pub source: EventSource,
    pub ok: bool,
    /// `allowed`, or why not.
    pub verdict: String,
}

/// The whole outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub events: Vec<EventVerdict>,
    pub trusted: bool,
}

impl Report {
    /// The reasons the evidence is not trusted (empty when it is).
    pub fn failures(&self) -> Vec<String> {
        let checks = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail));
        let events = self
            .events
            .iter()
            .filter(|e| !e.ok)
            .map(|e| format!("event {} ({} {}): {}", e.seq, e.kind, e.name, e.verdict));
        checks.chain(events).collect()
    }

    /// Human-readable lines: one per check, one per event, then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
        }
        for e in &self.events {
            let mark = if e.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!(
                "{mark} event {} [{}] {} {} {}: {}\n",
                e.seq,
                e.source.as_str(),
                e.kind,
                e.name,
                e.measurement,
                e.verdict
            ));
        }
        if self.trusted {
            out.push_str("verdict: TRUSTED\n");
        } else {
            out.push_str(&format!(
                "verdict: NOT TRUSTED ({})\n",
                self.failures().join("; ")
            ));
        }
        out
    }
}

/// DER SPKI of a P-256 key up to the point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The DER inside a PEM block.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(b64).ok()
}

fn check_signature(e: &Evidence, attest: &[u8]) -> Result<String, String> {
    let der = pem_der(&e.ak_public_key).ok_or("the AK public key is not PEM")?;
    let point = der
        .strip_prefix(P256_SPKI_PREFIX.as_slice())
        .filter(|p| p.len() == 65)
        .ok_or("the AK public key is not an EC P-256 key")?;
    let sig = STANDARD
        .decode(&e.signature)
        .map_err(|_| "the signature is not base64")?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(attest, &sig)
        .map_err(|_| "the AK signature over the quote does not verify (forged or altered quote)")?;
    Ok(format!("signed by AK sha256:{}", hex(&sha256(&[&der]))))
}

/// Verifies `e` against the verifier's `nonce`, `policy` and (optionally) the AK it expects.
pub fn verify(e: &Evidence, nonce: &[u8], policy: &Policy, expected_ak: Option<&str>) -> Report {
    let mut checks = Vec::new();
    let mut push = |name, r: Result<String, String>| {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        checks.push(Check { name, ok, detail });
    };
    let attest = STANDARD
        .decode(&e.attest)
        .map_err(|_| "the attest structure is not base64".to_string());
    let quote = attest.clone().and_then(|a| parse_quote(&a));
    push(
        "signature",
        attest.clone().and_then(|a| check_signature(e, &a)),
    );
    if let Some(ak) = expected_ak {
        let same = pem_der(ak).is_some_and(|d| Some(d) == pem_der(&e.ak_public_key));
        push(
            "attestation key",
            if same {
                Ok("the expected AK".into())
            } else {
                Err("the quote is signed by another AK than the expected one".into())
            },
        );
    }
    push(
        "nonce",
        quote.clone().and_then(|q| {
            if q.extra_data == nonce {
                Ok(format!("the quote carries nonce {}", hex(nonce)))
            } else {
                Err(format!(
                    "the quote carries nonce {}, not the verifier's {} (replayed or stale quote)",
                    hex(&q.extra_data),
                    hex(nonce)
                ))
            }
        }),
    );
    let mut values = std::collections::BTreeMap::new();
    let pcr_check = quote.clone().and_then(|q| {
        let [(ALG_SHA256, selected)] = q.selections.as_slice() else {
            return Err("the quote does not select exactly the SHA-256 bank".into());
        };
        let mut concat = Vec::new();
        for p in selected {
            let v = e
                .pcrs
                .get(p)
                .and_then(|h| from_hex(h))
                .filter(|v| v.len() == 32)
                .ok_or_else(|| format!("the evidence lacks a value for quoted PCR {p}"))?;
            concat.extend_from_slice(&v);
            values.insert(*p, v);
        }
        if sha256(&[&concat]).as_slice() != q.pcr_digest.as_slice() {
            return Err("the reported PCR values do not match the quoted PCR digest (foreign or altered PCR values)".into());
        }
        Ok(format!("PCRs {selected:?} match the quoted digest"))
    });
    let pcrs_ok = pcr_check.is_ok();
    push("pcr digest", pcr_check);
    let replayed = replay(&e.events);
    let altered: Vec<u64> = e
        .events
        .iter()
        .filter(|ev| !ev.is_consistent())
        .map(|ev| ev.seq)
        .collect();
    let replay_check = replayed.and_then(|r| {
        if !pcrs_ok {
            return Err("not checked: the PCR values are not trusted".into());
        }
        let mut done = Vec::new();
        for (pcr, v) in &r {
            let Some(quoted) = values.get(pcr) else {
                return Err(format!("the log extends PCR {pcr}, which the quote does not cover"));
            };
            if quoted.as_slice() != v {
                return Err(format!(
                    "the event log does not replay to the quoted PCR {pcr} value (log altered, reordered or truncated)"
                ));
            }
            done.push(*pcr);
        }
        Ok(format!("{} events replay to the quoted PCRs {done:?}", e.events.len()))
    });
    push("event log replay", replay_check);
    let events = e
        .events
        .iter()
        .map(|ev| {
            let (ok, verdict) = if altered.contains(&ev.seq) {
                (
                    false,
                    "altered: its digest does not match its content".to_string(),
                )
            } else if parse_sha256(&ev.measurement).is_none() {
                (false, "malformed measurement".into())
            } else if policy.allows(&ev.kind, &ev.measurement) {
                (true, "allowed".into())
            } else {
                (false, "not in the policy".into())
            };
            EventVerdict {
                seq: ev.seq,
                kind: ev.kind.clone(),
                name: ev.name.clone(),
                measurement: ev.measurement.clone(),
                source: ev.source,
                ok,
                verdict,
            }
        })
        .collect::<Vec<_>>();
    let trusted = checks.iter().all(|c| c.ok) && events.iter().all(|v| v.ok);
    Report {
        checks,
        events,
        trusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, event_digest, format_sha256};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn event(seq: u64, kind: &str, m: u8) -> Event {
        let measurement = format_sha256(&[m; 32]);
        let d = event_digest(kind, "x", EventSource::Keyd, &measurement).unwrap();
        Event {
            seq,
            pcr: 23,
            digest: format_sha256(&d),
            kind: kind.into(),
            name: "x".into(),
            measurement,
            source: EventSource::Keyd,
            reporter: None,
            time: "t".into(),
        }
    }

    /// Evidence signed by a software key standing in for the AK.
    fn evidence(nonce: &[u8]) -> (Evidence, Policy) {
        let events = vec![event(0, "keyd-executable", 1), event(1, "keyd-config", 2)];
        let pcr23 = replay(&events).unwrap()[&23];
        let pcr16 = [0u8; 32];
        let digest = sha256(&[&pcr16, &pcr23]);
        let attest = crate::attest::tests::sample(nonce, &digest);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let sig = key.sign(&rng, &attest).unwrap();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let e = Evidence {
            nonce: hex(nonce),
            attest: STANDARD.encode(&attest),
            signature: STANDARD.encode(sig.as_ref()),
            ak_public_key: pem,
            pcrs: [(16, hex(&pcr16)), (23, hex(&pcr23))].into_iter().collect(),
            events,
            log: "tpm".into(),
        };
        let policy = Policy::from_evidence(&e);
        (e, policy)
    }

    fn reasons(r: &Report) -> String {
        r.failures().join("\n")
    }

    #[test]
    fn good_evidence_is_trusted() {
        let (e, p) = evidence(b"n1");
        let r = verify(&e, b"n1", &p, Some(&e.ak_public_key.clone()));
        assert!(r.trusted, "{}", r.render());
        assert!(r.render().contains("verdict: TRUSTED"));
    }

    #[test]
    fn each_kind_of_tampering_fails_with_its_reason() {
        let (e, p) = evidence(b"n1");
        let r = verify(&e, b"other", &p, None);
        assert!(
            !r.trusted && reasons(&r).contains("nonce: the quote carries nonce"),
            "{}",
            reasons(&r)
        );

        let mut bad = e.clone();
        bad.events[1].measurement = format_sha256(&[9; 32]);
        let r = verify(&bad, b"n1", &p, None);
        let why = reasons(&r);
        assert!(why.contains("event 1 (keyd-config x): altered"), "{why}");

        // A consistent event that was not what the PCR saw.
        let mut bad = e.clone();
        bad.events[1] = event(1, "keyd-config", 3);
        let r = verify(&bad, b"n1", &p, None);
        assert!(reasons(&r).contains("does not replay"), "{}", reasons(&r));

        let mut bad = e.clone();
        bad.pcrs.insert(23, hex(&[7; 32]));
        let r = verify(&bad, b"n1", &p, None);
        assert!(
            reasons(&r).contains("pcr digest: the reported PCR values do not match"),
            "{}",
            reasons(&r)
        );

        let mut bad = e.clone();
        let mut sig = STANDARD.decode(&bad.signature).unwrap();
        let n = sig.len();
        sig[n - 1] ^= 1;
        bad.signature = STANDARD.encode(sig);
        let r = verify(&bad, b"n1", &p, None);
        assert!(
            reasons(&r).contains("signature: the AK signature"),
            "{}",
            reasons(&r)
        );

        let r = verify(
            &e,
            b"n1",
            &Policy {
                allow: p.allow[..1].to_vec(),
            },
            None,
        );
        assert!(
            reasons(&r).contains("event 1 (keyd-config x): not in the policy"),
            "{}",
            reasons(&r)
        );

        let (other, _) = evidence(b"n1");
        let r = verify(&e, b"n1", &p, Some(&other.ak_public_key));
        assert!(reasons(&r).contains("another AK"), "{}", reasons(&r));
    }
}
