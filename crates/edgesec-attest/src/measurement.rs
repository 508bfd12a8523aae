//! The measurement value: a SHA-256 over a file's bytes.
//!
//! Its one text form is `sha256:<64 lowercase hex>`, the same shape as a container image id,
//! so registrations of process modules and container modules store comparable strings.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PREFIX: &str = "sha256:";

/// SHA-256 of a file plus its size.
///
/// Equality and hashing look at the digest only: equal digests mean equal content and so equal
/// size, and `size` is not part of the text form (a deserialized value has `size == 0`).
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Measurement {
    /// The digest as 64 lowercase hex characters, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

impl PartialEq for Measurement {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256
    }
}

impl Eq for Measurement {}

impl Hash for Measurement {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sha256.hash(state);
    }
}

/// Prints `sha256:<hex>`.
impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

/// Error of parsing a `sha256:<hex>` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMeasurementError;

impl fmt::Display for ParseMeasurementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected \"sha256:\" followed by 64 hex digits")
    }
}

impl std::error::Error for ParseMeasurementError {}

impl FromStr for Measurement {
    type Err = ParseMeasurementError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix(PREFIX).ok_or(ParseMeasurementError)?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut sha256).map_err(|_| ParseMeasurementError)?;
        Ok(Measurement { sha256, size: 0 })
    }
}

impl Serialize for Measurement {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Measurement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
