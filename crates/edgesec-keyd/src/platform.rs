//! The `[tpm]` and `[measure]` sections of keyd.toml, and the one TPM connection keyd holds.
//!
//! ```toml
//! [tpm]                             # optional; a TPM is used when this section is present,
//!                                   # the store (or a route) is "tpm", or the master key is sealed
//! tcti = "device:/dev/tpmrm0"       # default; swtpm: "swtpm:host=127.0.0.1,port=2321"
//! srk_handle = 0x81000001           # persistent handle of the storage root key
//! quote_pcrs = []                   # PCRs a quote covers besides the measurement PCR
//!
//! [measure]                         # optional
//! pcr = 23                          # where measurements are extended: 16 or 23 (resettable)
//! max_events = 4096
//! ```

use std::path::Path;

use edgesec_config::ConfigError;
use edgesec_keys::tpm::{DEFAULT_SRK_HANDLE, DEFAULT_TCTI, Tpm, TpmConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTpm {
    #[serde(default)]
    tcti: Option<String>,
    #[serde(default)]
    srk_handle: Option<u32>,
    #[serde(default)]
    quote_pcrs: Vec<u8>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeasure {
    #[serde(default)]
    pcr: Option<u8>,
    #[serde(default)]
    max_events: Option<usize>,
}

/// A validated `[tpm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmSettings {
    /// Whether the section was given.
    pub configured: bool,
    pub tcti: String,
    pub srk_handle: u32,
    pub quote_pcrs: Vec<u8>,
}

/// A validated `[measure]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasureSettings {
    pub pcr: u8,
    pub max_events: usize,
}

pub const DEFAULT_PCR: u8 = 23;

impl TpmSettings {
    pub(crate) fn from_raw(file: &Path, raw: Option<RawTpm>) -> Result<Self, ConfigError> {
        let configured = raw.is_some();
        let raw = raw.unwrap_or_default();
        let srk_handle = raw.srk_handle.unwrap_or(DEFAULT_SRK_HANDLE);
        if !(0x8100_0000..=0x81ff_ffff).contains(&srk_handle) {
            return Err(ConfigError::invalid(
                file,
                "tpm.srk_handle",
                "must be a persistent handle, 0x81000000 to 0x81ffffff",
            ));
        }
        if raw.quote_pcrs.len() > 7 || raw.quote_pcrs.iter().any(|&p| p > 23) {
            return Err(ConfigError::invalid(
                file,
                "tpm.quote_pcrs",
                "must list at most 7 PCRs, each 0 to 23",
            ));
        }
        let tcti = raw.tcti.unwrap_or_else(|| DEFAULT_TCTI.into());
        if tcti.is_empty() {
            return Err(ConfigError::invalid(file, "tpm.tcti", "must not be empty"));
        }
        Ok(TpmSettings {
            configured,
            tcti,
            srk_handle,
            quote_pcrs: raw.quote_pcrs,
        })
    }

    /// Connects to the TPM.
    pub fn connect(&self) -> Result<Tpm, String> {
        Tpm::connect(&TpmConfig {
            tcti: self.tcti.clone(),
            srk_handle: self.srk_handle,
        })
        .map_err(|e| e.to_string())
    }
}

impl MeasureSettings {
    pub(crate) fn from_raw(file: &Path, raw: Option<RawMeasure>) -> Result<Self, ConfigError> {
        let raw = raw.unwrap_or_default();
        let pcr = raw.pcr.unwrap_or(DEFAULT_PCR);
        if pcr != 16 && pcr != 23 {
            return Err(ConfigError::invalid(
                file,
                "measure.pcr",
                "must be 16 or 23 (the PCRs keyd can reset at start)",
            ));
        }
        let max_events = raw.max_events.unwrap_or(4096);
        if !(16..=1_000_000).contains(&max_events) {
            return Err(ConfigError::invalid(
                file,
                "measure.max_events",
                "must be between 16 and 1000000",
            ));
        }
        Ok(MeasureSettings { pcr, max_events })
    }
}
