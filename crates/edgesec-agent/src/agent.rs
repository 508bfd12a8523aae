//! The agent's loop: a pass at start, then one every interval, one as soon as the deployment
//! file changes, and one when a restart's backoff expires.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use edgesec_api::mgmt_client::MgmtClient;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info};

use crate::backoff::RestartBook;
use crate::execute::{execute, report_error};
use crate::notes::Notes;
use crate::plan::plan;
use crate::source::Source;

/// How often the deployment file is looked at.
pub const FILE_POLL: Duration = Duration::from_secs(1);

/// What the agent needs to run.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The management API socket.
    pub socket: PathBuf,
    pub deployment: PathBuf,
    /// The agent's own module name.
    pub agent: String,
    /// Time between passes.
    pub interval: Duration,
}

/// Runs until `shutdown` completes. A pass in progress is abandoned then: the daemon is the
/// truth, so the next agent to start simply plans again from what it reports.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) {
    let client = MgmtClient::new(&config.socket);
    let mut source = Source::new(config.deployment.clone());
    let mut book = RestartBook::new();
    let mut notes = Notes::new();
    info!(
        socket = %config.socket.display(),
        deployment = %config.deployment.display(),
        agent = %config.agent,
        "edgesec-agent started"
    );
    source.refresh();
    tokio::pin!(shutdown);
    loop {
        let next_restart = tokio::select! {
            biased;
            () = &mut shutdown => return,
            next = pass(&client, &source, &mut book, &mut notes, &config.agent) => next,
        };
        let mut next_pass = Instant::now() + config.interval;
        if let Some(at) = next_restart {
            next_pass = next_pass.min(Instant::from_std(at));
        }
        loop {
            let wake = next_pass.min(Instant::now() + FILE_POLL);
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = sleep_until(wake) => {}
            }
            if source.refresh() {
                info!("the deployment changed; reconciling now");
                break;
            }
            if Instant::now() >= next_pass {
                break;
            }
        }
    }
}

/// One reconcile pass. Returns when the earliest pending restart is due, if any.
async fn pass(
    client: &MgmtClient,
    source: &Source,
    book: &mut RestartBook,
    notes: &mut Notes,
    agent: &str,
) -> Option<std::time::Instant> {
    let Some(desired) = source.current() else {
        debug!("no valid deployment yet; nothing to do");
        return None;
    };
    let listed = tokio::try_join!(client.list_modules(), client.list_identities());
    let (modules, identities) = match listed {
        Ok(listed) => listed,
        Err(err) => {
            report_error("list modules and identities", &err, notes);
            notes.end_pass();
            return None;
        }
    };
    if notes.is_new("daemon", "answers") {
        info!("the management API answers");
    }
    let now = std::time::Instant::now();
    book.observe(&modules, now);
    let actions = plan(desired, &modules, &identities, now, book, agent);
    let outcome = execute(client, &actions, book, notes).await;
    let calls = outcome.calls_ok + outcome.calls_failed;
    if calls > 0 {
        debug!(
            ok = outcome.calls_ok,
            failed = outcome.calls_failed,
            "pass done"
        );
    } else {
        let n = desired.modules.len();
        if notes.is_new("converged", "") {
            info!("in step with the deployment ({n} module(s))");
        }
    }
    notes.end_pass();
    outcome.next_restart
}
