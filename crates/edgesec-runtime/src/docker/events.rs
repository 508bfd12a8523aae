//! Exit events from the engine's event stream: `die` of a module's container becomes an
//! [`ExitEvent`]; `destroy` of one that edgesec did not remove is reported (a warning, an exit
//! event with status `dead`, and the module's state says so) — the watchdog and the agent then
//! see it like any other end of a module.
//!
//! The stream is filtered by this daemon's instance label, not by event name: podman 4's
//! compatible API does not match `event=die` and names a removal `remove` where dockerd says
//! `destroy`, so both names are handled here. When it breaks (the engine
//! restarted), it is opened again after a pause, and every module's container is checked once,
//! so a removal during the gap is still noticed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;

use super::create::LABEL_INSTANCE;
use super::lifecycle;
use super::module::Shared;
use super::status::ended_status;
use crate::types::{ExitEvent, ModuleStatus};

const RECONNECT: Duration = Duration::from_secs(2);

pub(crate) fn spawn(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move { watch(weak).await });
}

async fn watch(weak: Weak<Shared>) {
    let mut first = true;
    // Failures in a row: only the first is a warning, so an engine that is down for long does
    // not fill the log.
    let mut failures = 0u32;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "label".to_owned(),
                vec![format!("{LABEL_INSTANCE}={}", shared.config.instance)],
            ),
        ]);
        let mut stream = shared.docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        if !first {
            sweep(&shared).await;
        }
        first = false;
        drop(shared);
        while let Some(ev) = stream.next().await {
            let Some(shared) = weak.upgrade() else { return };
            match ev {
                Ok(ev) => {
                    failures = 0;
                    handle(&shared, ev);
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "container engine event stream failed; reconnecting");
                    } else {
                        tracing::debug!(error = %e, failures, "container engine event stream failed again");
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Checks every module's container once (after a gap in the event stream).
async fn sweep(shared: &Shared) {
    let names: Vec<String> = shared.modules().keys().cloned().collect();
    for name in names {
        let _ = lifecycle::state(shared, &name).await;
    }
}

fn handle(shared: &Shared, ev: EventMessage) {
    let Some(actor) = ev.actor else { return };
    let Some(id) = actor.id else { return };
    let Some(entry) = shared.by_container(&id) else {
        return;
    };
    let time = ev
        .time_nano
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| SystemTime::UNIX_EPOCH + Duration::from_nanos(n))
        .unwrap_or_else(SystemTime::now);
    let event = match ev.action.as_deref() {
        Some("die" | "died") => {
            let code = actor
                .attributes
                .as_ref()
                .and_then(|a| a.get("exitCode"))
                .and_then(|c| c.parse::<i64>().ok());
            let stop_requested = entry.lock().local.stop_requested;
            let status = ended_status(code, stop_requested);
            tracing::info!(module = %entry.name, container = %id, %status, exit_code = ?code, "container module exited");
            ExitEvent {
                name: entry.name.clone(),
                status,
                exit_code: code.and_then(|c| i32::try_from(c).ok()),
                signal: None,
                time,
            }
        }
        Some("destroy" | "remove") => {
            {
                let mut inner = entry.lock();
                if inner.removing || inner.gone {
                    return;
                }
                inner.gone = true;
            }
            shared.images().remove(&id);
            tracing::warn!(module = %entry.name, container = %id, "the module's container was removed outside edgesec");
            ExitEvent {
                name: entry.name.clone(),
                status: ModuleStatus::Dead,
                exit_code: None,
                signal: None,
                time,
            }
        }
        _ => return,
    };
    // No listener is fine.
    let _ = shared.exits.send(event);
}
