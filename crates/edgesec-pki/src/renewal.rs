//! When to renew the edge CA, and the task that does it.
//!
//! [`check`] is a pure function of the policy, the time and the chain's validity periods. The
//! task started by [`spawn`] wakes when the next renewal is due (and at least every few minutes,
//! so that a clock jump is noticed), renews through the [`CertAuthority`], and reports on the
//! CA's event channel.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::CertAuthority;
use crate::config::{CaMode, RenewalPolicy, Threshold};

/// The shortest retry interval, whatever the policy computes.
pub const MIN_RETRY: Duration = Duration::minutes(1);
/// The longest the task sleeps before it looks at the wall clock again.
pub const MAX_SLEEP: Duration = Duration::minutes(10);
/// How often a wrong clock is looked at again.
pub const CLOCK_POLL: Duration = Duration::minutes(1);

/// Why a certificate is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewReason {
    /// Its not-before is not before its not-after.
    Invalid,
    /// It starts in the future (it was made while the clock ran ahead).
    NotYetValid,
    Expired,
    /// It has reached the policy's threshold.
    Threshold,
}

/// What the renewal task should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Renew now; `root` when the quickstart root needs it too (the edge CA always follows).
    Renew { root: bool, reason: RenewReason },
    /// Nothing is due before this time.
    WaitUntil(OffsetDateTime),
    /// A provided CA: edgesec never renews it.
    NeverRenew { expires: OffsetDateTime },
    /// There is no chain yet: create it.
    Create,
    /// The clock cannot be trusted: do nothing.
    ClockWrong,
}

/// The validity periods of a chain, as [`check`] needs them.
#[derive(Clone, Copy, Debug)]
pub struct ChainTimes {
    pub mode: CaMode,
    pub edge: (OffsetDateTime, OffsetDateTime),
    /// The quickstart root; `None` in the other modes.
    pub root: Option<(OffsetDateTime, OffsetDateTime)>,
    /// The earliest expiry in the whole chain.
    pub earliest_expiry: OffsetDateTime,
}

/// When a certificate valid from `nb` to `na` reaches the threshold.
pub fn renew_at(policy: &RenewalPolicy, nb: OffsetDateTime, na: OffsetDateTime) -> OffsetDateTime {
    match policy.threshold {
        Threshold::Percent(p) => nb + share(na - nb, p),
        Threshold::Before(d) => (na - d).max(nb),
    }
}

/// How long to wait after a failed renewal of a certificate valid from `nb` to `na`.
pub fn retry_interval(policy: &RenewalPolicy, nb: OffsetDateTime, na: OffsetDateTime) -> Duration {
    let d = match policy.retry {
        Threshold::Percent(p) => share(na - nb, p),
        Threshold::Before(d) => d,
    };
    d.max(MIN_RETRY)
}

fn share(lifetime: Duration, percent: u8) -> Duration {
    Duration::seconds(lifetime.whole_seconds().max(0) / 100 * i64::from(percent))
}

/// Whether one certificate is due: `Ok(reason)` if so, else the time it will be.
pub fn due(
    policy: &RenewalPolicy,
    now: OffsetDateTime,
    (nb, na): (OffsetDateTime, OffsetDateTime),
) -> Result<RenewReason, OffsetDateTime> {
    if nb >= na {
        return Ok(RenewReason::Invalid);
    }
    if now >= na {
        return Ok(RenewReason::Expired);
    }
    if now < nb {
        return Ok(RenewReason::NotYetValid);
    }
    let at = renew_at(policy, nb, na);
    if now >= at {
        Ok(RenewReason::Threshold)
    } else {
        Err(at)
    }
}

/// What to do about a chain at `now` (with a clock already judged sane).
pub fn check(policy: &RenewalPolicy, now: OffsetDateTime, chain: Option<&ChainTimes>) -> Action {
    let Some(chain) = chain else {
        return Action::Create;
    };
    if chain.mode == CaMode::Provided {
        return Action::NeverRenew {
            expires: chain.earliest_expiry,
        };
    }
    let root = chain.root.map(|r| due(policy, now, r));
    if let Some(Ok(reason)) = root {
        return Action::Renew { root: true, reason };
    }
    match due(policy, now, chain.edge) {
        Ok(reason) => Action::Renew {
            root: false,
            reason,
        },
        Err(edge_at) => match root {
            Some(Err(root_at)) => Action::WaitUntil(edge_at.min(root_at)),
            _ => Action::WaitUntil(edge_at),
        },
    }
}

/// The running renewal task.
pub struct RenewalHandle {
    ca: Arc<CertAuthority>,
    task: tokio::task::JoinHandle<()>,
}

impl RenewalHandle {
    /// Makes the task look at the clock and the chain now (after a clock change, say).
    pub fn wake(&self) {
        self.ca.wake();
    }

    /// Stops the task.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts the renewal task on the current tokio runtime.
pub fn spawn(ca: Arc<CertAuthority>) -> RenewalHandle {
    let task = tokio::spawn(run(ca.clone()));
    RenewalHandle { ca, task }
}

async fn run(ca: Arc<CertAuthority>) {
    let mut retry_at: Option<OffsetDateTime> = None;
    let mut clock_was_wrong = false;
    let mut warned_provided = false;
    let mut just_renewed = false;
    loop {
        let now = ca.now();
        let action = ca.next_action(now);
        let wait = match action {
            Action::ClockWrong => {
                if !clock_was_wrong {
                    ca.report_clock(now);
                }
                CLOCK_POLL
            }
            Action::NeverRenew { expires } => {
                if !warned_provided || expires <= now {
                    tracing::warn!(
                        expires = %crate::rfc3339(expires),
                        "the provided edge CA chain is not renewed by edgesec; replace it before it expires"
                    );
                    warned_provided = true;
                }
                if expires > now {
                    expires - now
                } else {
                    MAX_SLEEP
                }
            }
            Action::WaitUntil(at) => {
                retry_at = None;
                at - now
            }
            Action::Create | Action::Renew { .. } => match retry_at {
                Some(at) if now < at => at - now,
                _ if just_renewed
                    && action
                        == (Action::Renew {
                            root: false,
                            reason: RenewReason::Threshold,
                        }) =>
                {
                    // A certificate made a moment ago is already past its threshold (and the
                    // clock did not jump): the policy cannot be met, so do not spin.
                    let at = now + ca.retry_interval(now);
                    tracing::warn!(
                        "the new edge CA certificate is already due for renewal; check [edge_ca.auto_renew]"
                    );
                    retry_at = Some(at);
                    just_renewed = false;
                    at - now
                }
                _ => {
                    let worker = ca.clone();
                    let result = tokio::task::spawn_blocking(move || worker.renew_due()).await;
                    match result {
                        Ok(Ok(changed)) => {
                            retry_at = None;
                            just_renewed = changed;
                            clock_was_wrong = false;
                            continue;
                        }
                        Ok(Err(e)) => {
                            let at = now + ca.retry_interval(now);
                            ca.report_failure(&e, at);
                            retry_at = Some(at);
                            at - now
                        }
                        Err(join) => {
                            let at = now + ca.retry_interval(now);
                            tracing::error!(error = %join, "the renewal worker failed");
                            retry_at = Some(at);
                            at - now
                        }
                    }
                }
            },
        };
        clock_was_wrong = action == Action::ClockWrong;
        if !matches!(action, Action::Create | Action::Renew { .. }) {
            just_renewed = false;
        }
        let wait = wait.clamp(Duration::seconds(1), MAX_SLEEP);
        let wait = std::time::Duration::from_secs(wait.whole_seconds().unsigned_abs());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ca.woken() => {}
        }
    }
}

#[cfg(test)]
#[path = "renewal_tests.rs"]
mod tests;
