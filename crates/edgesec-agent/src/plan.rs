//! One reconcile pass, planned: a pure function from what should be and what is to the list
//! of management API calls that close the gap.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use edgesec_api::mgmt::{Identity, ModuleDetails, ModuleSpec};

use crate::backoff::{Due, RestartBook};
use crate::deployment::{Deployment, DesiredModule, DesiredStatus, RestartPolicy};
use crate::name::is_agent;
use crate::observed::{Down, DownKind, Observed, observe};
use crate::spec;

/// One step of a pass. Steps are run in the order `plan` returns them.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `POST /identities`.
    CreateIdentity { name: String },
    /// `POST /modules` (the module is created stopped).
    CreateModule { spec: ModuleSpec },
    /// `PUT /modules/{name}?start=..`: the daemon replaces the module with this spec.
    UpdateModule { spec: ModuleSpec, start: bool },
    /// `POST /modules/{name}/start`.
    Start {
        name: String,
        startup_order: u32,
        why: StartReason,
    },
    /// `POST /modules/{name}/stop`.
    Stop { name: String },
    /// `DELETE /modules/{name}` (the daemon stops it first).
    RemoveModule { name: String },
    /// `DELETE /identities/{name}`.
    RemoveIdentity { name: String },
    /// No call: the module is down and will be restarted when its backoff expires.
    AwaitRestart {
        name: String,
        down: Down,
        policy: RestartPolicy,
        due: Due,
    },
    /// No call: the module is left as it is, for this reason.
    Leave { name: String, why: LeaveReason },
}

#[derive(Clone, Debug, PartialEq)]
pub enum StartReason {
    /// It has not run since it was created (or since the daemon started).
    Initial,
    /// The agent stopped it earlier and the deployment now wants it running.
    Resume,
    /// It went down and its restart policy says to restart it.
    Restart {
        policy: RestartPolicy,
        down: Down,
        attempt: u32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum LeaveReason {
    /// Down, and the restart policy says not to restart it.
    Policy { policy: RestartPolicy, down: Down },
    /// The daemon reports a status the agent cannot act on.
    UnknownStatus(String),
    /// The deployment lists the agent itself, which the agent never touches.
    IsAgent,
}

impl Action {
    /// The module (or identity) the action is about.
    pub fn module(&self) -> &str {
        match self {
            Action::CreateModule { spec } | Action::UpdateModule { spec, .. } => &spec.name,
            Action::CreateIdentity { name }
            | Action::Start { name, .. }
            | Action::Stop { name }
            | Action::RemoveModule { name }
            | Action::RemoveIdentity { name }
            | Action::AwaitRestart { name, .. }
            | Action::Leave { name, .. } => name,
        }
    }

    /// Whether it is a call to the daemon (the rest only inform).
    pub fn is_call(&self) -> bool {
        !matches!(self, Action::AwaitRestart { .. } | Action::Leave { .. })
    }
}

/// Plans one pass.
///
/// * `desired`: the deployment in force;
/// * `modules`, `identities`: what the daemon reported at the start of the pass;
/// * `now`, `restarts`: the clock and the restart bookkeeping, already updated with
///   [`RestartBook::observe`] for `modules`;
/// * `agent`: the agent's own module name, which is never created, changed or removed.
///
/// The actions come in three groups: removals of what the deployment no longer lists, stops
/// of modules that should be stopped, then for each desired module in start order (by
/// `startupOrder`, then name) its identity, its creation or update, and its start.
pub fn plan(
    desired: &Deployment,
    modules: &[ModuleDetails],
    identities: &[Identity],
    now: Instant,
    restarts: &RestartBook,
    agent: &str,
) -> Vec<Action> {
    let actual: BTreeMap<&str, &ModuleDetails> = modules
        .iter()
        .filter(|m| !is_agent(&m.name, agent))
        .map(|m| (m.name.as_str(), m))
        .collect();
    let ids: BTreeSet<&str> = identities
        .iter()
        .map(|i| i.module_id.as_str())
        .filter(|id| !is_agent(id, agent))
        .collect();
    let wanted = |name: &str| desired.modules.contains_key(name);
    let mut out = Vec::new();

    for &name in actual.keys().filter(|n| !wanted(n)) {
        out.push(Action::RemoveModule { name: name.into() });
        if ids.contains(name) {
            out.push(Action::RemoveIdentity { name: name.into() });
        }
    }
    for &name in ids
        .iter()
        .filter(|n| !wanted(n) && !actual.contains_key(*n))
    {
        out.push(Action::RemoveIdentity { name: name.into() });
    }

    let order = desired.in_start_order();
    for &(name, want) in &order {
        if want.status == DesiredStatus::Stopped
            && !is_agent(name, agent)
            && let Some(m) = actual.get(name)
            && observe(m) == Observed::Running
            && spec::matches(&want.spec, m)
        {
            out.push(Action::Stop { name: name.into() });
        }
    }

    for (name, want) in order {
        if is_agent(name, agent) {
            out.push(Action::Leave {
                name: name.into(),
                why: LeaveReason::IsAgent,
            });
            continue;
        }
        if !ids.contains(name) {
            out.push(Action::CreateIdentity { name: name.into() });
        }
        let run = want.status == DesiredStatus::Running;
        match actual.get(name) {
            None => {
                out.push(Action::CreateModule {
                    spec: want.spec.clone(),
                });
                if run {
                    out.push(start(name, want, StartReason::Initial));
                }
            }
            Some(m) if !spec::matches(&want.spec, m) => {
                out.push(Action::UpdateModule {
                    spec: want.spec.clone(),
                    start: run,
                });
            }
            Some(m) if run => out.extend(keep_running(name, want, m, now, restarts)),
            Some(_) => {}
        }
    }
    out
}

fn start(name: &str, want: &DesiredModule, why: StartReason) -> Action {
    Action::Start {
        name: name.into(),
        startup_order: want.startup_order,
        why,
    }
}

/// What to do about an existing, up-to-date module that should be running.
fn keep_running(
    name: &str,
    want: &DesiredModule,
    module: &ModuleDetails,
    now: Instant,
    restarts: &RestartBook,
) -> Option<Action> {
    let down = match observe(module) {
        Observed::Running => return None,
        Observed::Unknown(status) => {
            let why = LeaveReason::UnknownStatus(status);
            return Some(Action::Leave {
                name: name.into(),
                why,
            });
        }
        Observed::Down(down) => down,
    };
    if down.never_started && down.kind == DownKind::Stopped {
        return Some(start(name, want, StartReason::Initial));
    }
    if restarts.stopped_by_agent(name) {
        return Some(start(name, want, StartReason::Resume));
    }
    let policy = want.restart_policy;
    let restart = match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => down.is_failure(),
        RestartPolicy::Never => false,
    };
    if !restart {
        let why = LeaveReason::Policy { policy, down };
        return Some(Action::Leave {
            name: name.into(),
            why,
        });
    }
    let due = restarts.restart_due(name, now);
    if now < due.at {
        return Some(Action::AwaitRestart {
            name: name.into(),
            down,
            policy,
            due,
        });
    }
    let why = StartReason::Restart {
        policy,
        down,
        attempt: due.attempt,
    };
    Some(start(name, want, why))
}

#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_restart;
