//! edgesec's certificate authority.
//!
//! - [`CertAuthority`] loads or creates the CA chain in one of three modes (quickstart, provided,
//!   issued; see [`config::CaMode`]) with every CA key in the key store, issues module server and
//!   identity certificates, assembles the trust bundle, and renews the edge CA.
//! - [`renewal::spawn`] runs the renewal task; [`CertAuthority::subscribe`] delivers
//!   [`PkiEvent`]s, of which [`PkiEvent::ChainChanged`] means "restart the modules".
//! - Time comes from a [`clock::Clock`]; a clock that reads earlier than this build (or than a
//!   time already seen) stops issuance and renewal instead of producing wrong certificates.

pub mod bundle;
mod ca;
pub mod certinfo;
mod chain;
pub mod clock;
pub mod config;
mod error;
pub mod issue;
mod owned;
mod records;
pub mod remote_key;
pub mod renewal;
pub mod store;

pub use ca::{CaStatus, CertAuthority, ChangeReason, PkiEvent};
pub use clock::{Clock, SystemClock, TestClock};
pub use config::{CaMode, EdgeCaConfig, ModuleCertConfig, PkiConfig, RenewalPolicy, Threshold};
pub use error::{PkiError, Result};
pub use issue::{IssuedCert, module_identity_uri};

use time::OffsetDateTime;

/// A UTC time as RFC 3339 with a `Z`, to the second (`2026-12-03T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_utc_with_z() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_714_557_600).unwrap();
        assert_eq!(super::rfc3339(t), "2024-05-01T10:00:00Z");
    }
}
