//! The wire types of the two APIs edgesecd serves with IoT Edge compatibility, shared by the
//! daemon (server side), `edgesec-agent` and the `edgesec` CLI (client side).

pub mod mgmt;
pub mod mgmt_client;
pub mod name;
pub mod versions;
pub mod workload;

pub use versions::{API_VERSIONS, LATEST_API_VERSION};
