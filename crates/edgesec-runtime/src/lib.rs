//! Starting and watching modules.
//!
//! [`ModuleRuntime`] is what edgesecd asks of a backend: create/start/stop/restart/remove,
//! state and logs, which module a pid belongs to, and exit events. The `process` backend
//! ([`ProcessRuntime`], cargo feature `process`, on by default) runs modules as plain child
//! processes; a docker/podman backend will live in its own folder next to it.
//!
//! [`validate_module_name`] is the one check for module names, used wherever a name becomes a
//! path component.

mod error;
mod logs;
mod name;
mod runtime;
mod time_fmt;
mod types;

#[cfg(feature = "process")]
mod process;

pub use edgesec_attest::Measurement;
pub use error::RuntimeError;
pub use logs::{LogLine, LogQuery, LogStream};
pub use name::{MAX_MODULE_NAME_LEN, validate_module_name};
pub use runtime::ModuleRuntime;
pub use time_fmt::{format_rfc3339, parse_rfc3339, rfc3339, rfc3339_opt};
pub use types::{ExitEvent, ModuleSettings, ModuleState, ModuleStatus, ProcessSettings};

#[cfg(feature = "process")]
pub use process::{CgroupMode, ProcessRuntime, ProcessRuntimeConfig};
