//! edgesec-keyd: the key service. It is the only process that touches private or symmetric key
//! material; callers hold signed, opaque key handles. This crate holds the service, its wire
//! types ([`api`]) and the async client the daemon uses ([`client`]).

pub mod api;
pub mod client;
pub mod config;
mod handle;
pub mod principals;
pub mod remote_store;
mod server;

pub use handle::RESERVED_PREFIX;
pub use server::KeyService;
