//! Who is calling: the kernel-backed facts edgesecd uses to attest a caller.
//!
//! - [`PinnedProcess`] pins a caller by pidfd and start time, so a pid that is reused while a
//!   request is in flight can never borrow the earlier process's identity.
//! - [`exe_measurement`] / [`measure_file`] hash executables (SHA-256, size-capped, cached by
//!   file identity) so the daemon can compare what runs with what was registered.
//! - [`cgroup_paths`] / [`container_id`] tell which cgroup, and so which container, a process
//!   belongs to.
//!
//! Everything here is synchronous and cheap on the hot path (a cache hit is an open plus an
//! fstat); a cache miss hashes the file, so async callers measuring new files should use
//! `spawn_blocking`.

mod cgroup;
mod error;
mod measure;
mod measurement;
mod pin;
mod procstat;

pub use cgroup::{
    CgroupEntry, cgroup_paths, container_id, container_id_from_entries, container_id_in_path,
    parse_cgroup_file,
};
pub use error::AttestError;
pub use measure::{
    DEFAULT_CACHE_ENTRIES, DEFAULT_MAX_SIZE, MeasureConfig, MeasureStats, Measurer,
    exe_measurement, exe_measurement_cached, measure_file,
};
pub use measurement::{Measurement, ParseMeasurementError};
pub use pin::{PinnedProcess, has_exited};
pub use procstat::{ProcStat, parse_stat, read_stat};
