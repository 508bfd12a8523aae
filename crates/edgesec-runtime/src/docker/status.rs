//! A container's engine state as a module state, by IoT Edge's mapping: created, paused and
//! restarting → stopped (created and never started: `Unknown`, which the daemon reports as
//! stopped); exited and removing → stopped for exit code 0, else failed; dead → dead;
//! running → running. One difference: a container the daemon itself stopped is `stopped`
//! whatever its exit code (docker's SIGTERM gives 143), as for process modules.

use std::time::SystemTime;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};

use crate::time_fmt::parse_rfc3339;
use crate::types::{ModuleState, ModuleStatus};

/// What the runtime remembers about a module besides the engine's answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local {
    pub stop_requested: bool,
    pub restart_count: u32,
}

/// A docker time, or `None` for docker's "never" (`0001-01-01T00:00:00Z`) and bad values.
pub fn docker_time(s: Option<&str>) -> Option<SystemTime> {
    let t = parse_rfc3339(s?)?;
    (t > SystemTime::UNIX_EPOCH).then_some(t)
}

/// Status of an ended run: stopped by the daemon or exit 0 → stopped, else failed.
pub fn ended_status(code: Option<i64>, stop_requested: bool) -> ModuleStatus {
    if stop_requested || code == Some(0) {
        ModuleStatus::Stopped
    } else {
        ModuleStatus::Failed
    }
}

pub fn state_of(c: &ContainerInspectResponse, local: Local) -> ModuleState {
    let st = c.state.clone().unwrap_or_default();
    let started_at = docker_time(st.started_at.as_deref());
    let finished_at = docker_time(st.finished_at.as_deref());
    let code = st.exit_code;
    use ContainerStateStatusEnum as S;
    let status = match st.status.unwrap_or(S::EMPTY) {
        S::RUNNING => ModuleStatus::Running,
        S::CREATED if started_at.is_none() => ModuleStatus::Unknown,
        S::CREATED | S::PAUSED | S::RESTARTING | S::STOPPING => ModuleStatus::Stopped,
        S::EXITED | S::REMOVING => ended_status(code, local.stop_requested),
        S::DEAD => ModuleStatus::Dead,
        S::EMPTY => ModuleStatus::Unknown,
    };
    let ended = !matches!(status, ModuleStatus::Running | ModuleStatus::Unknown);
    ModuleState {
        status,
        exit_code: if ended {
            code.and_then(|c| i32::try_from(c).ok())
        } else {
            None
        },
        signal: None,
        started_at,
        finished_at: if ended { finished_at } else { None },
        pid: if status == ModuleStatus::Running {
            st.pid
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p > 0)
        } else {
            None
        },
        restart_count: local.restart_count,
        description: st.error.filter(|e| !e.is_empty()),
    }
}

/// The state of a module whose container is gone from the engine.
pub fn gone_state(local: Local) -> ModuleState {
    ModuleState {
        status: ModuleStatus::Dead,
        description: Some("the module's container was removed outside edgesec".into()),
        restart_count: local.restart_count,
        ..ModuleState::created()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerState;

    use super::*;

    fn inspect(
        status: ContainerStateStatusEnum,
        code: i64,
        started: &str,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(ContainerState {
                status: Some(status),
                exit_code: Some(code),
                pid: Some(if status == ContainerStateStatusEnum::RUNNING {
                    4242
                } else {
                    0
                }),
                started_at: Some(started.into()),
                finished_at: Some("2026-01-02T03:04:06.5Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const NEVER: &str = "0001-01-01T00:00:00Z";
    const T: &str = "2026-01-02T03:04:05.123456789Z";

    #[test]
    fn maps_docker_states_as_iot_edge_does() {
        use ContainerStateStatusEnum as S;
        let l = Local::default();
        for (s, code, started, want) in [
            (S::RUNNING, 0, T, ModuleStatus::Running),
            (S::CREATED, 0, NEVER, ModuleStatus::Unknown),
            (S::CREATED, 0, T, ModuleStatus::Stopped),
            (S::PAUSED, 0, T, ModuleStatus::Stopped),
            (S::RESTARTING, 1, T, ModuleStatus::Stopped),
            (S::EXITED, 0, T, ModuleStatus::Stopped),
            (S::EXITED, 137, T, ModuleStatus::Failed),
            (S::REMOVING, 2, T, ModuleStatus::Failed),
            (S::DEAD, 0, T, ModuleStatus::Dead),
        ] {
            assert_eq!(state_of(&inspect(s, code, started), l).status, want, "{s}");
        }
    }

    #[test]
    fn times_codes_and_pid() {
        let l = Local {
            stop_requested: false,
            restart_count: 3,
        };
        let run = state_of(&inspect(ContainerStateStatusEnum::RUNNING, 0, T), l);
        assert_eq!(run.pid, Some(4242));
        assert_eq!(run.exit_code, None);
        assert_eq!(run.finished_at, None);
        assert_eq!(run.restart_count, 3);
        assert_eq!(crate::format_rfc3339(run.started_at.unwrap()), T);
        let ended = state_of(&inspect(ContainerStateStatusEnum::EXITED, 143, T), l);
        assert_eq!(
            (ended.status, ended.exit_code),
            (ModuleStatus::Failed, Some(143))
        );
        assert!(ended.finished_at.is_some());
        let stopped = Local {
            stop_requested: true,
            ..l
        };
        let ended = state_of(&inspect(ContainerStateStatusEnum::EXITED, 143, T), stopped);
        assert_eq!(ended.status, ModuleStatus::Stopped, "the daemon stopped it");
        assert_eq!(docker_time(Some(NEVER)), None);
        assert_eq!(gone_state(l).status, ModuleStatus::Dead);
    }
}
