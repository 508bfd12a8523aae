//! edgesec-keyd: the key service. It is the only process that touches private or symmetric key
//! material; callers hold signed, opaque key handles. This crate holds the service, its wire
//! types ([`api`]) and the async client the daemon uses ([`client`]).

pub mod api;
pub mod client;
pub mod config;
mod handle;
pub mod measure;
pub mod platform;
pub mod principals;
pub mod remote_store;
pub mod sealing;
mod server;
pub mod startup;
pub mod store;

pub use handle::RESERVED_PREFIX;
pub use server::KeyService;
