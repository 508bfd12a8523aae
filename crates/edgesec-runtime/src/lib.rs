//! Starting and watching modules.
//!
//! [`ModuleRuntime`] is what edgesecd asks of a backend: create/start/stop/restart/remove,
//! state and logs, which module a pid belongs to, and exit events. The `process` backend
//! ([`ProcessRuntime`], cargo feature `process`, on by default) runs modules as plain child
//! processes; the `docker` backend ([`DockerRuntime`], cargo feature `docker`) runs them as
//! containers through the Docker Engine API (dockerd or podman). [`CompositeRuntime`] puts
//! several backends behind one `ModuleRuntime`, dispatching by module.
//!
//! [`validate_module_name`] is the one check for module names, used wherever a name becomes a
//! path component.

mod composite;
mod error;
mod logs;
mod runtime;
mod time_fmt;
mod types;

#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "process")]
mod process;

pub use composite::CompositeRuntime;
pub use edgesec_api::name::{MAX_MODULE_NAME_LEN, validate_module_name};
pub use edgesec_attest::Measurement;
pub use error::RuntimeError;
pub use logs::{LogLine, LogQuery, LogStream};
pub use runtime::ModuleRuntime;
pub use time_fmt::{format_rfc3339, parse_rfc3339, rfc3339, rfc3339_opt};
pub use types::{
    BindMount, DockerSettings, ExitEvent, ModuleSettings, ModuleState, ModuleStatus,
    ProcessSettings, PullPolicy,
};

#[cfg(feature = "docker")]
pub use docker::{
    DockerRuntime, DockerRuntimeConfig, LABEL_INSTANCE, LABEL_MODULE, LABEL_ORIGINAL_IMAGE,
    LABEL_OWNER, OWNER_VALUE, Orphan, container_name,
};

#[cfg(feature = "process")]
pub use process::{CgroupMode, ProcessRuntime, ProcessRuntimeConfig};
