//! Evidence as it travels: the answer of keyd's `POST /attestation/quote` and of edgesecd's
//! `GET /attestation/quote?nonce=HEX`, and the input of `edgesec attest verify`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Where the event log's PCRs live.
pub const LOG_TPM: &str = "tpm";
pub const LOG_SOFTWARE: &str = "software";

/// A quote with everything needed to check it offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The verifier's nonce, hex, as asked for.
    pub nonce: String,
    /// The TPMS_ATTEST the TPM signed, base64.
    pub attest: String,
    /// ECDSA P-256 signature over SHA-256(attest), DER, base64.
    pub signature: String,
    /// The attestation key's public key (SubjectPublicKeyInfo PEM).
    pub ak_public_key: String,
    /// The quoted SHA-256 PCR values at quote time, hex, by index.
    pub pcrs: BTreeMap<u8, String>,
    /// The whole event log.
    pub events: Vec<Event>,
    /// `tpm` or `software`: where the log's PCR values are kept.
    pub log: String,
}

/// `GET /measurements` of keyd: the event log and the current PCR values it replays to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementLog {
    /// `tpm` or `software`.
    pub log: String,
    /// The PCR the events are extended into.
    pub pcr: u8,
    /// Its current value, hex.
    pub value: String,
    pub events: Vec<Event>,
}

/// A client's report for keyd's `POST /measurements`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasurementReport {
    pub kind: String,
    pub name: String,
    /// `sha256:<hex>`.
    pub measurement: String,
}
