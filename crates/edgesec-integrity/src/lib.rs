//! Measured-boot evidence, shared by the key service (which keeps the log and the PCRs), the
//! daemon (which passes quotes on) and the CLI (which verifies them offline):
//!
//! - [`event`]: one measurement event, how its extended digest is computed, and PCR replay;
//! - [`attest`]: the TPMS_ATTEST structure a TPM signs in a quote;
//! - [`evidence`]: the quote response as it travels (JSON);
//! - [`verify`]: offline verification of evidence against a nonce and a policy of allowed
//!   digests, with a verdict per check and per event.
//!
//! Nothing here talks to a TPM; it is plain data and checks, so a verifier needs no TPM stack.

pub mod attest;
pub mod event;
pub mod evidence;
pub mod verify;

pub use event::{Event, EventSource, SoftwarePcrs, replay};
pub use evidence::Evidence;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (either case); `None` when it is not an even number of hex digits.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().try_into().expect("32 bytes")
}
