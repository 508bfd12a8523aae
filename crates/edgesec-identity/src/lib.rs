//! The device's side of the cloud: SAS tokens signed in keyd ([`sas`]), an HTTPS client over
//! rustls whose client key stays in keyd ([`https`], [`tls`], [`proxy`]), retries with backoff
//! ([`retry`]), the Device Provisioning Service client ([`dps`]) and IoT Hub module identities
//! ([`hub`]). No key material passes through this crate except module keys exported to be set
//! in the hub, and those are zeroized.

pub mod dps;
pub mod error;
pub mod https;
pub mod hub;
pub mod proxy;
pub mod retry;
pub mod sas;
pub mod tls;

pub use error::CloudError;
