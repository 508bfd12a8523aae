//! Runs planned actions through the management API, logs what happened, and keeps the
//! restart bookkeeping in step.

use std::collections::HashSet;
use std::time::Instant;

use edgesec_api::mgmt_client::MgmtClient;
use edgesec_http::ClientError;
use http::StatusCode;
use tracing::{debug, info, warn};

use crate::backoff::RestartBook;
use crate::notes::Notes;
use crate::plan::{Action, LeaveReason, StartReason};

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub calls_ok: usize,
    pub calls_failed: usize,
    /// The earliest pending restart, so the next pass can come in time for it.
    pub next_restart: Option<Instant>,
}

/// Runs `actions` in order. A failed call skips the remaining actions of the same module
/// (they are planned again next pass); other modules go on.
pub async fn execute(
    client: &MgmtClient,
    actions: &[Action],
    book: &mut RestartBook,
    notes: &mut Notes,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut failed: HashSet<&str> = HashSet::new();
    for action in actions {
        let name = action.module();
        if !action.is_call() {
            inform(action, notes, &mut outcome);
            continue;
        }
        if failed.contains(name) {
            debug!(
                "skipping: {} (an earlier step for {name} failed)",
                what(action)
            );
            continue;
        }
        announce(action);
        match call(client, action).await {
            Ok(()) => {
                outcome.calls_ok += 1;
                record(action, book);
                report_done(action);
            }
            Err(err) => {
                outcome.calls_failed += 1;
                failed.insert(name);
                report_error(&what(action), &err, notes);
            }
        }
    }
    outcome
}

/// Logs a failed call, once while it keeps failing the same way.
pub fn report_error(what: &str, err: &ClientError, notes: &mut Notes) {
    let text = if err.status() == Some(StatusCode::FORBIDDEN) {
        format!("cannot {what}: the daemon does not accept this process as the agent ({err})")
    } else {
        format!("cannot {what}: {err}; will retry")
    };
    if notes.is_new(&format!("error: {what}"), &text) {
        warn!("{text}");
    } else {
        debug!("{text}");
    }
}

async fn call(client: &MgmtClient, action: &Action) -> Result<(), ClientError> {
    // Answers that mean "already so" count as success.
    let ok_if = |result: Result<(), ClientError>, fine: StatusCode| match result {
        Err(e) if e.status() == Some(fine) => Ok(()),
        other => other,
    };
    match action {
        Action::CreateIdentity { name } => ok_if(
            client.create_identity(name).await.map(drop),
            StatusCode::CONFLICT,
        ),
        Action::CreateModule { spec } => client.create_module(spec).await.map(drop),
        Action::UpdateModule { spec, start } => client.update_module(spec, *start).await.map(drop),
        Action::Start { name, .. } => ok_if(
            client.module_action(name, "start").await,
            StatusCode::NOT_MODIFIED,
        ),
        Action::Stop { name } => ok_if(
            client.module_action(name, "stop").await,
            StatusCode::NOT_MODIFIED,
        ),
        Action::RemoveModule { name } => {
            ok_if(client.delete_module(name).await, StatusCode::NOT_FOUND)
        }
        Action::RemoveIdentity { name } => {
            ok_if(client.delete_identity(name).await, StatusCode::NOT_FOUND)
        }
        Action::AwaitRestart { .. } | Action::Leave { .. } => Ok(()),
    }
}

fn record(action: &Action, book: &mut RestartBook) {
    match action {
        Action::CreateModule { spec } => book.forget(&spec.name),
        Action::UpdateModule { spec, start } => {
            book.forget(&spec.name);
            if !start {
                book.record_stop(&spec.name);
            }
        }
        Action::Start {
            name,
            why: StartReason::Restart { .. },
            ..
        } => book.record_restart(name),
        Action::Start { name, .. } => book.record_start(name),
        Action::Stop { name } => book.record_stop(name),
        Action::RemoveModule { name } => book.forget(name),
        _ => {}
    }
}

/// What the action does, for error messages: "create module demo".
fn what(action: &Action) -> String {
    match action {
        Action::CreateIdentity { name } => format!("create identity {name}"),
        Action::CreateModule { spec } => format!("create module {}", spec.name),
        Action::UpdateModule { spec, .. } => format!("update module {}", spec.name),
        Action::Start { name, .. } => format!("start {name}"),
        Action::Stop { name } => format!("stop {name}"),
        Action::RemoveModule { name } => format!("remove module {name}"),
        Action::RemoveIdentity { name } => format!("remove identity {name}"),
        Action::AwaitRestart { name, .. } | Action::Leave { name, .. } => {
            format!("wait for {name}")
        }
    }
}

/// Logs a start or stop before the call, since it may take a while.
fn announce(action: &Action) {
    match action {
        Action::Start {
            name,
            startup_order,
            why: StartReason::Initial,
        } => {
            info!("starting {name} (startupOrder {startup_order})");
        }
        Action::Start {
            name,
            startup_order,
            why: StartReason::Resume,
        } => {
            info!(
                "starting {name} (startupOrder {startup_order}); its desired status is running again"
            );
        }
        Action::Start {
            name,
            why: StartReason::Restart {
                policy, attempt, ..
            },
            ..
        } => {
            info!("restarting {name} (policy {policy}, restart {attempt})");
        }
        Action::Stop { name } => info!("stopping {name} (desired status stopped)"),
        _ => {}
    }
}

fn report_done(action: &Action) {
    match action {
        Action::CreateIdentity { name } => info!("created identity {name}"),
        Action::CreateModule { spec } => {
            info!("created module {} ({})", spec.name, spec.module_type);
        }
        Action::UpdateModule { spec, start } => {
            let then = if *start { "started" } else { "left stopped" };
            info!("updated module {} to its new spec ({then})", spec.name);
        }
        Action::RemoveModule { name } => {
            info!("removed module {name} (no longer in the deployment)")
        }
        Action::RemoveIdentity { name } => info!("removed identity {name}"),
        _ => {}
    }
}

/// Logs a wait or a module left alone, once while it stays so.
fn inform(action: &Action, notes: &mut Notes, outcome: &mut Outcome) {
    let text = match action {
        Action::AwaitRestart {
            name,
            down,
            policy,
            due,
        } => {
            outcome.next_restart = Some(outcome.next_restart.map_or(due.at, |t| t.min(due.at)));
            format!(
                "{name} {down}; restarting in {}s (policy {policy})",
                due.delay.as_secs()
            )
        }
        Action::Leave {
            name,
            why: LeaveReason::Policy { policy, down },
        } => {
            format!("{name} {down}; not restarting it (policy {policy})")
        }
        Action::Leave {
            name,
            why: LeaveReason::UnknownStatus(status),
        } => {
            format!("{name} reports status {status:?}; leaving it as it is")
        }
        Action::Leave {
            name,
            why: LeaveReason::IsAgent,
        } => {
            format!("the deployment lists {name}, which is this agent; ignoring that entry")
        }
        _ => return,
    };
    let key = format!("state: {}", action.module());
    if notes.is_new(&key, &text) {
        if matches!(
            action,
            Action::Leave {
                why: LeaveReason::IsAgent,
                ..
            }
        ) {
            warn!("{text}");
        } else {
            info!("{text}");
        }
    }
}
