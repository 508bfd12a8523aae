//! edgesecd: the security daemon. It serves the management API (to the agent and admins) and
//! the workload API (to modules), attests every caller through the kernel, runs modules, keeps
//! their identities and certificates, and keeps the agent alive. Keys stay in edgesec-keyd.

mod agent;
pub mod attest;
pub mod audit;
pub mod bootstrap;
pub mod cloud;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod identity;
pub mod keyd_link;
mod mgmt;
pub mod modules;
pub mod notify;
pub mod registry;
pub mod time;
pub mod workload;
