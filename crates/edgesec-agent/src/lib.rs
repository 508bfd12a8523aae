//! `edgesec-agent`: the default agent of edgesec, the stand-in for IoT Edge's edgeAgent.
//!
//! It reads a deployment file ([`deployment`]) and reconciles the daemon's modules with it
//! through the management API. Each pass lists what the daemon has, [`plan::plan`]s the calls
//! that close the gap (a pure function), and [`execute::execute`]s them in order. The only
//! state kept between passes is the restart backoff ([`backoff`]).

pub mod agent;
pub mod backoff;
pub mod cli;
pub mod deployment;
pub mod execute;
pub mod name;
pub mod notes;
pub mod observed;
pub mod plan;
pub mod source;
pub mod spec;
mod strict;

#[cfg(test)]
mod test_support;
